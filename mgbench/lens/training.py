"""Fitting a tuned lens on the model's own generations: each layer's residual states, recorded while the model
generates, and translators fitted to the final layer's token distributions (Belrose et al.'s KL objective,
summed over MusicGen's codebooks)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd
import torch

from ..engine.hooks import installed, output_tensor
from ..engine.runner import MusicgenRunner
from ..progress import progress
from ..zoo.loading import LoadedMusicgen
from .translators import TunedLens


@dataclass(frozen=True)
class LensTraining:
    """How a lens is trained: on ``prompts_per_concept`` prompts of every concept (the last of its list: runs
    use the first ones), ``frames_per_clip`` evenly spaced frames of each clip (every row: conditional and
    unconditional), ``steps`` Adam steps on random batches of ``batch_rows`` states."""

    prompts_per_concept: int = 8
    frames_per_clip: int = 16
    steps: int = 100
    batch_rows: int = 128
    learning_rate: float = 1e-2
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class StepStates:
    """Forward hooks that record every decoder layer's output (the last position, all rows) at chosen calls."""

    def __init__(self, num_layers: int, calls: set[int]):
        self.calls, self.counts = calls, [0] * num_layers
        self.states: list[list[torch.Tensor]] = [[] for _ in range(num_layers)]

    def hooks(self, layers: torch.nn.ModuleList) -> list:
        def make(k: int):
            def hook(module, args, output):
                if self.counts[k] in self.calls:
                    out = output_tensor(output)[:, -1].detach()
                    self.states[k].append(out.to(torch.promote_types(out.dtype, torch.float32)).cpu())
                self.counts[k] += 1
            return hook

        return [(layer, make(k)) for k, layer in enumerate(layers)]

    def stacked(self) -> torch.Tensor:
        """``(layers, rows, hidden)``: every recorded row of every call, per layer."""
        return torch.stack([torch.cat(per_layer) for per_layer in self.states])


def record_states(runner: MusicgenRunner, prompts: Sequence[str], batch_size: int,
                  frames_per_clip: int) -> torch.Tensor:
    """Each decoder layer's output at ``frames_per_clip`` evenly spaced generation steps of every prompt's clip
    (all decoder rows), ``(layers, rows, hidden)`` on the CPU."""
    layers, steps = runner.loaded.decoder_layers, runner.max_new_tokens
    calls = set(torch.linspace(0, steps - 1, min(frames_per_clip, steps)).round().long().tolist())
    recorded = []
    for start in progress(range(0, len(prompts), batch_size), "tuned lens: recording states"):
        states = StepStates(len(layers), calls)
        with installed(states.hooks(layers)):
            runner.generate(list(prompts[start:start + batch_size]))
        recorded.append(states.stacked())
    return torch.cat(recorded, dim=1)


def kl_to_final(target: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """KL(final || lens) of log-probabilities ``(codebooks, rows, vocab)``: summed over codebooks, mean over
    rows."""
    return torch.nn.functional.kl_div(log_probs, target, log_target=True, reduction="sum") / target.shape[1]


def fit_lens(loaded: LoadedMusicgen, states: torch.Tensor, training: LensTraining) -> tuple[TunedLens, pd.DataFrame]:
    """Translators that bring each layer's states (``record_states``) to the final layer's token distributions
    through the decoder's own final norm and codebook heads (frozen copies); and per layer the KL divergence
    before (the plain cut) and after training, on all states. Trained in float32 (the hook casts)."""
    decoder = loaded.model.decoder
    states = states.to(device=loaded.device, dtype=torch.float32)
    norm = copy.deepcopy(decoder.model.decoder.layer_norm).to(states.dtype).requires_grad_(False)
    heads = copy.deepcopy(decoder.lm_heads).to(states.dtype).requires_grad_(False)

    def log_probs(h: torch.Tensor) -> torch.Tensor:
        normed = norm(h)
        return torch.stack([head(normed) for head in heads]).log_softmax(-1)

    num_layers, rows = states.shape[0], states.shape[1]
    lens = TunedLens(states.shape[2], num_layers).to(device=states.device, dtype=states.dtype)

    def kls(picked: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            target = log_probs(states[-1, picked])
        return [kl_to_final(target, log_probs(lens(states[k, picked], k))) for k in range(num_layers - 1)]

    everything = torch.arange(rows, device=states.device)
    with torch.no_grad():
        before = [kl.item() for kl in kls(everything)]
    generator = torch.Generator().manual_seed(training.seed)
    optimizer = torch.optim.Adam(lens.parameters(), lr=training.learning_rate)
    for _ in progress(range(training.steps), "tuned lens: fitting", unit="step"):
        picked = torch.randperm(rows, generator=generator)[:training.batch_rows].to(states.device)
        loss = torch.stack(kls(picked)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = [kl.item() for kl in kls(everything)]
    fit = pd.DataFrame({"layer": range(num_layers - 1), "kl_cut": before, "kl_tuned": after, "states": rows})
    return lens.requires_grad_(False), fit
