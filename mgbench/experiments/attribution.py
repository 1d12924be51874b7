"""Attribution patching: a linear estimate of every site's replace intervention from one forward and one backward.

For an original concept's prompt ``p`` and a desired concept, the metric is ``M = LL(desired codes) - LL(original
codes)``: the log-likelihood, under teacher forcing with the original prompt's text (conditional rows, no guidance),
of the codes the model generated for the desired concept's prompt ``p`` minus that of the codes it generated for
the original prompt ``p`` itself. Replacing a site's output by the desired concept's mean (the ``replace``
intervention) moves ``M`` by about

    sum over both sequences and every position t of (desired mean - a_t) . dM/da_t

(first order in the change of the site's output ``a``; exact where ``M`` is linear in ``a``). The estimate is
signed: positive when the replacement makes the desired concept's codes likelier relative to the original's, as a
positive intervention effect says the desired concept became likelier in the classifier's eyes (the rankings use
its size, ``rankings.py``).

One teacher-forced pass per original prompt serves every desired concept: its batch holds every concept's codes
for prompt ``p`` under the original prompt's text, each row's gradient is its own log-likelihood's (rows do not
interact), and each pair's estimate combines two rows.

Cost: a backward counts as two forwards, so a pass is one decoder call and 3 forwards of each of its sequences
(``attribution_forwards``); the work is 3 x sequences x positions row-positions. The codes are those of the run's
baseline clips (generated again here, as every method reuses them: not counted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import pandas as pd
import torch

from ..engine.decode import decode_codes, delay_pattern, encode_text, greedy
from ..engine.hooks import installed, output_tensor
from ..engine.sites import Site, all_sites, site_module
from .session import Session

#: a backward pass costs about two forwards (the usual convention)
BACKWARD_FORWARDS = 2


def delayed(model: torch.nn.Module, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Undelayed codes ``(batch, codebooks, frames)`` back in MusicGen's delay pattern: ``(sequence, pattern)``, both
    ``(batch * codebooks, steps + 1)``; ``pattern`` is -1 where a code was generated."""
    batch, books, frames = codes.shape
    pattern = delay_pattern(model, batch, frames + books - 1, codes.device)
    sequence = pattern.clone()
    sequence[:, 0] = model.generation_config.decoder_start_token_id
    sequence[pattern == -1] = codes.reshape(-1)
    return sequence, pattern


def generated_codes(session: Session, prompts: Sequence[str]) -> torch.Tensor:
    """The codes the session's runner generates for ``prompts`` (the same sampling noise, so the codes of the run's
    baseline clips), undelayed ``(prompts, codebooks, frames)``."""
    loaded, runner, s = session.musicgen, session.runner, session.config.generation
    inputs = loaded.processor(text=list(prompts), padding=True, return_tensors="pt").to(loaded.device)
    sampler = runner.sampler(list(prompts))
    with torch.no_grad():
        return decode_codes(loaded.model, inputs["input_ids"], inputs["attention_mask"], runner.max_new_tokens,
                            s.guidance_scale, greedy if sampler is None else sampler.sample)


def log_likelihoods(model: torch.nn.Module, states: torch.Tensor, text_mask: torch.Tensor,
                    sequence: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Teacher-forced log-likelihood of each sequence's generated codes, ``(batch,)``: ``sequence`` and ``pattern``
    ``(batch * codebooks, steps + 1)``, the text ``states`` ``(batch, tokens, hidden)`` with their mask."""
    books = model.decoder.num_codebooks
    out = model.decoder(input_ids=sequence[:, :-1], encoder_hidden_states=states, encoder_attention_mask=text_mask)
    logp = torch.log_softmax(out.logits.double(), dim=-1)
    target = sequence[:, 1:].clamp(max=logp.shape[-1] - 1)
    token = logp.gather(-1, target[..., None]).squeeze(-1) * (pattern[:, 1:] == -1)
    return token.reshape(-1, books, token.shape[-1]).sum(dim=(1, 2))


def site_gradients(forward: Callable[[], torch.Tensor], modules: dict[Site, torch.nn.Module],
                   first: torch.nn.Module) -> tuple[torch.Tensor, dict[Site, torch.Tensor], dict[Site, torch.Tensor]]:
    """One forward (``forward()``: a metric per batch row) and one backward: the metrics and, per site, its module's
    outputs and the gradients of their row's metric. ``first``'s input starts the graph (the weights need no
    gradients), so every site after it gets its total gradient, through the later sites too."""
    outputs: dict[Site, torch.Tensor] = {}

    def keep(site: Site):
        def hook(module, args, output):
            outputs[site] = output_tensor(output)
        return hook

    def start(module, args, kwargs):
        return (args[0].detach().requires_grad_(True), *args[1:]), kwargs

    with torch.enable_grad(), installed([(m, keep(s)) for s, m in modules.items()], [(first, start)]):
        metric = forward()
        grads = torch.autograd.grad(metric.sum(), [outputs[s] for s in modules], allow_unused=True)
    return (metric.detach(), {s: outputs[s].detach() for s in modules},
            {s: torch.zeros_like(outputs[s]) if g is None else g for s, g in zip(modules, grads)})


def estimate(mean: torch.Tensor, output: torch.Tensor, grad: torch.Tensor) -> float:
    """The linear estimate of the metric's change when ``output`` (positions x hidden) is replaced by ``mean`` at
    every position: the sum over positions of (mean - output) . gradient."""
    return float(((mean.to(output) - output) * grad).sum())


def attribution_rows(session: Session, pairs: list[tuple[str, str]],
                     sites: "list[Site] | None" = None) -> pd.DataFrame:
    """Per (pair, site, prompt): the attribution-patching estimate of replacing the site's output by the desired
    concept's mean (``attribution``) and the metric ``M`` it estimates the change of (``metric``)."""
    loaded, concepts = session.musicgen, session.concepts
    model, layers = loaded.model, loaded.decoder_layers
    sites = sites or all_sites(loaded.num_layers)
    names = sorted({c for pair in pairs for c in pair}, key=concepts.names.index)
    codes = {c: generated_codes(session, session.prompts(c)) for c in names}
    rows = []
    for original in sorted({o for o, _ in pairs}, key=names.index):
        desired = [d for o, d in pairs if o == original]
        for p, prompt in enumerate(session.prompts(original)):
            batch = torch.stack([codes[c][p] for c in names])
            sequence, pattern = delayed(model, batch)
            inputs = loaded.processor(text=[prompt], return_tensors="pt").to(loaded.device)
            states, _ = encode_text(model, inputs["input_ids"], inputs["attention_mask"], guided=False)
            text, mask = states.expand(len(names), -1, -1), inputs["attention_mask"].expand(len(names), -1)
            ll, acts, grads = site_gradients(partial(log_likelihoods, model, text, mask, sequence, pattern),
                                             {s: site_module(layers, s) for s in sites}, layers[0])
            o = names.index(original)
            for d_name in desired:
                d = names.index(d_name)
                for site in sites:
                    mean = session.means(concepts.get(d_name), site)[0]
                    change = estimate(mean, acts[site][d], grads[site][d]) - estimate(mean, acts[site][o],
                                                                                     grads[site][o])
                    rows.append((original, d_name, site.layer, site.component, p, change, float(ll[d] - ll[o])))
    return pd.DataFrame(rows, columns=["original", "desired", "layer", "component", "prompt_id", "attribution",
                                       "metric"])


def attribution_forwards(concepts: int, originals: int, prompts: int) -> tuple[int, int]:
    """(decoder forwards, sequences) of attribution patching: per original concept and prompt one teacher-forced
    call over ``concepts`` sequences and its backward (``BACKWARD_FORWARDS`` forwards)."""
    calls = originals * prompts * (1 + BACKWARD_FORWARDS)
    return calls, calls * concepts
