"""mgbench's transformers MusicGen against audiocraft's, the library the paper ran (docs/backends.md).

Both models hold the same numbers: the tiny MusicGen (float64, as mgbench runs it on the CPU) and an audiocraft
``LMModel`` built around its weights, T5 encoder and tokenizer (``mgbench.engine.audiocraft_lm``). The audiocraft
side is audiocraft's own code throughout: its forward pass, its ``generate`` (delay pattern, classifier-free
guidance with ``cfg_coef``, top-k sampling) and plain forward hooks at the paper's hook points. Codes on the
transformers side are the ones mgbench's runner hands to EnCodec, i.e. the codes behind mgbench's audio.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import pytest
import torch

pytestmark = pytest.mark.extra("audiocraft")  # (selected by `pytest -m extra`)
pytest.importorskip("audiocraft", reason="needs the audiocraft extra, which is not installed: pip install -e "
                                         "\".[audiocraft]\" && pip install --no-deps audiocraft==1.3.0")

from audiocraft.modules.conditioners import ConditioningAttributes  # noqa: E402

from mgbench.backends.audiocraft import keys as audiocraft_keys  # noqa: E402
from mgbench.backends.audiocraft.keys import audiocraft_to_transformers, transformers_to_audiocraft  # noqa: E402
from mgbench.backends.audiocraft.lm import TEXT_CONDITION, audiocraft_lm, audiocraft_site_module  # noqa: E402
from mgbench.engine.hooks import ADD, REPLACE, RowEdit, installed  # noqa: E402
from mgbench.engine.runner import GenerationSettings, MusicgenRunner  # noqa: E402
from mgbench.engine.sites import Site, all_sites, site_module  # noqa: E402
from mgbench.zoo.loading import load_musicgen  # noqa: E402

SECONDS = 0.5
GUIDANCE = 3.0
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def tiny64():
    return load_musicgen("tiny", dtype=torch.float64)


@pytest.fixture(scope="module")
def lm(tiny64):
    return audiocraft_lm(tiny64, cfg_coef=GUIDANCE)


@pytest.fixture(scope="module")
def prompt_sets(tiny64, concepts) -> dict[str, list[str]]:
    """The paper's prompts: one alone, two of equal token length, two of different token lengths."""
    guitar = concepts.prompts("guitar", 4)
    lengths = [len(tiny64.processor.tokenizer(p)["input_ids"]) for p in guitar]
    assert lengths[0] == lengths[1] < lengths[3], lengths  # the sets below are what their names say
    return {"one": guitar[:1], "equal": guitar[:2], "unequal": [guitar[0], guitar[3]]}


def _conditions(prompts: list[str]) -> list[ConditioningAttributes]:
    return [ConditioningAttributes(text={TEXT_CONDITION: p}) for p in prompts]


def _frames(loaded) -> int:
    return round(SECONDS * loaded.frame_rate)


def _tensor(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def recorded_codes(loaded) -> Iterator[list[torch.Tensor]]:
    """The audio codes ``(batch, codebooks, frames)`` that transformers' ``generate`` hands to EnCodec."""
    codec, seen = loaded.model.audio_encoder, []
    decode = codec.decode

    def recording(audio_codes, *args, **kwargs):
        seen.append(audio_codes[0])
        return decode(audio_codes, *args, **kwargs)

    codec.decode = recording
    try:
        yield seen
    finally:
        del codec.decode


def mgbench_codes(loaded, prompts: list[str], edits=None, guidance: float = GUIDANCE) -> torch.Tensor:
    """Greedy codes from mgbench's runner (with ``edits`` through mgbench's hooks)."""
    runner = MusicgenRunner(loaded, GenerationSettings(seconds=SECONDS, greedy=True, guidance_scale=guidance))
    with recorded_codes(loaded) as seen:
        runner.generate(prompts, edits)
    return seen[0]


def audiocraft_codes(lm, prompts: list[str], frames: int, guidance: float = GUIDANCE, **sampling) -> torch.Tensor:
    """Codes from audiocraft's own ``generate`` (greedy unless ``sampling`` says otherwise)."""
    sampling.setdefault("use_sampling", False)
    return lm.generate(conditions=_conditions(prompts), max_gen_len=frames, cfg_coef=guidance, **sampling)


def _forward_both(loaded, lm, prompts: list[str], steps: int = 12):
    """Both decoders on the same token sequence (first step MusicGen's start token): logits ``(B, K, S, card)``."""
    k = loaded.num_codebooks
    tokens = torch.randint(0, lm.card, (len(prompts), k, steps), generator=torch.Generator().manual_seed(5))
    tokens[..., 0] = lm.special_token_id
    with torch.no_grad():
        ours = lm(tokens, _conditions(prompts))
        inputs = loaded.processor(text=prompts, padding=True, return_tensors="pt")
        theirs = loaded.model(**inputs, decoder_input_ids=tokens.reshape(-1, steps)).logits
    return ours, theirs.reshape(ours.shape)


# -- weights ------------------------------------------------------------------------------------------------


def test_every_key_converts_both_ways(tiny64, lm):
    decoder, projection = tiny64.model.decoder.state_dict(), tiny64.model.enc_to_dec_proj.state_dict()
    to_ac = transformers_to_audiocraft(decoder, projection)
    assert set(to_ac) == set(lm.state_dict())
    back, back_projection = audiocraft_to_transformers(lm.state_dict())
    assert set(back) == set(decoder) and set(back_projection) == set(projection)
    for key, value in back.items():
        assert torch.equal(value, decoder[key]), key
    for key, value in back_projection.items():
        assert torch.equal(value, projection[key]), key


def test_audiocraft_numbers_carry_into_transformers(tiny64, prompt_sets):
    """The other direction: an audiocraft LM with its own random numbers, converted, gives transformers the same
    logits."""
    theirs = copy.deepcopy(tiny64)
    ours = audiocraft_lm(theirs)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(11)
        for parameter in ours.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * 0.2)
    decoder, projection = audiocraft_to_transformers(ours.state_dict())
    theirs.model.decoder.load_state_dict(decoder, strict=True)
    theirs.model.enc_to_dec_proj.load_state_dict(projection, strict=True)
    a, b = _forward_both(theirs, ours, prompt_sets["equal"])
    assert (a - b).abs().max() < TOLERANCE


def test_a_wrong_mapping_is_caught(tiny64, lm, prompt_sets, monkeypatch):
    """A key left out of the table is an error; a table that swaps two same-shaped modules converts every key but
    the logits check above fails on it."""
    monkeypatch.delitem(audiocraft_keys.LAYER_MODULES, "norm_cross")
    with pytest.raises(KeyError, match="norm_cross"):
        audiocraft_to_transformers(lm.state_dict())
    monkeypatch.setitem(audiocraft_keys.LAYER_MODULES, "norm_cross", "encoder_attn_layer_norm")
    monkeypatch.setitem(audiocraft_keys.LAYER_MODULES, "self_attn", "encoder_attn")
    monkeypatch.setitem(audiocraft_keys.LAYER_MODULES, "cross_attention", "self_attn")
    swapped = copy.deepcopy(lm)
    swapped.load_state_dict(transformers_to_audiocraft(tiny64.model.decoder.state_dict(),
                                                       tiny64.model.enc_to_dec_proj.state_dict()))
    a, b = _forward_both(tiny64, swapped, prompt_sets["equal"])
    assert (a - b).abs().max() > 100 * TOLERANCE


# -- forward pass -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("which", ["one", "equal"])
def test_decoder_logits_agree(tiny64, prompt_sets, which, dtype):
    loaded = tiny64
    if dtype == torch.float32:
        loaded = copy.deepcopy(tiny64)
        loaded.model.float()
    a, b = _forward_both(loaded, audiocraft_lm(loaded), prompt_sets[which])
    assert (a - b).abs().max() < TOLERANCE


def test_every_site_output_agrees(tiny64, lm, prompt_sets):
    """The paper's hook points (audiocraft ``self_attn.out_proj``, ``cross_attention.out_proj``, ``linear2``, the
    layer) against mgbench's sites (``self_attn``, ``encoder_attn``, ``fc2``, the layer)."""
    sites = all_sites(tiny64.num_layers, ("self_attn", "cross_attn", "mlp", "resid"))
    outputs: dict[tuple[str, Site], torch.Tensor] = {}

    def keep(side: str, site: Site):
        def hook(module, args, output):
            outputs[side, site] = _tensor(output).detach().clone()
        return hook

    hooks = [(audiocraft_site_module(lm, s), keep("audiocraft", s)) for s in sites]
    hooks += [(site_module(tiny64.decoder_layers, s), keep("transformers", s)) for s in sites]
    with installed(hooks):
        _forward_both(tiny64, lm, prompt_sets["equal"])
    for site in sites:
        assert (outputs["audiocraft", site] - outputs["transformers", site]).abs().max() < TOLERANCE, site


# -- generation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("guidance", [GUIDANCE, 6.0])
@pytest.mark.parametrize("which", ["one", "equal"])
def test_greedy_codes_identical(tiny64, lm, prompt_sets, which, guidance):
    """Greedy decoding with the delay pattern and classifier-free guidance (``cfg_coef`` = ``guidance_scale``)."""
    prompts = prompt_sets[which]
    ours = audiocraft_codes(lm, prompts, _frames(tiny64), guidance)
    assert torch.equal(mgbench_codes(tiny64, prompts, guidance=guidance), ours)


@pytest.mark.parametrize("which", ["one", "equal"])
def test_seeded_sampling_identical(tiny64, lm, prompt_sets, which):
    """Top-k sampling (k 250, temperature 1, guidance 3) from one torch seed, as the paper's code sampled.

    mgbench samples with its own common-random-number Gumbel noise (``model/sampling.py``), which no audiocraft
    call reproduces; what this shows is that transformers' own seeded sampling, which mgbench's sampler replaces
    only in where its noise comes from, draws the same tokens as audiocraft's from the same seed: the guided
    top-k distributions are equal at every step and both consume the generator identically.
    """
    prompts, frames = prompt_sets[which], _frames(tiny64)
    inputs = tiny64.processor(text=prompts, padding=True, return_tensors="pt")
    torch.manual_seed(1)
    with recorded_codes(tiny64) as seen:
        tiny64.model.generate(**inputs, do_sample=True, top_k=250, temperature=1.0, guidance_scale=GUIDANCE,
                              max_new_tokens=frames + tiny64.num_codebooks - 1)
    torch.manual_seed(1)
    ours = audiocraft_codes(lm, prompts, frames, use_sampling=True, top_k=250, temp=1.0)
    assert torch.equal(seen[0], ours)
    torch.manual_seed(2)  # and the check can fail: another seed draws other tokens
    assert not torch.equal(audiocraft_codes(lm, prompts, frames, use_sampling=True, top_k=250, temp=1.0), ours)


def audiocraft_edit_hook(mode: str, cond: torch.Tensor, uncond: torch.Tensor, prompts: int):
    """The edit as the paper's code writes it: a forward hook that sets (or adds to) the conditional rows' and
    the unconditional rows' output at every generation step."""
    def hook(module, args, output):
        out = output.clone()
        for rows, vector in ((slice(0, prompts), cond), (slice(prompts, 2 * prompts), uncond)):
            out[rows] = out[rows] + vector if mode == ADD else vector.expand_as(out[rows])
        return out
    return hook


@pytest.mark.parametrize("mode", [REPLACE, ADD])
@pytest.mark.parametrize("site", ["L1.self_attn", "L2.cross_attn", "L3.mlp"])
def test_edit_equals_audiocraft_hook(tiny64, lm, prompt_sets, site, mode):
    """mgbench's replace/adjust edit (``RowEdit`` through mgbench's hooks and runner) gives audiocraft's codes for
    the same edit written as a plain hook on audiocraft's model, and the edit does change the codes."""
    prompts, frames, site = prompt_sets["equal"], _frames(tiny64), Site.parse(site)
    generator = torch.Generator().manual_seed(7)
    cond, uncond = (torch.randn(tiny64.model.decoder.config.hidden_size, generator=generator,
                                dtype=torch.float64) for _ in range(2))
    theirs = mgbench_codes(tiny64, prompts, [RowEdit(site, mode, cond, uncond)] * len(prompts))
    with installed([(audiocraft_site_module(lm, site), audiocraft_edit_hook(mode, cond, uncond, len(prompts)))]):
        ours = audiocraft_codes(lm, prompts, frames)
    assert torch.equal(theirs, ours)
    assert not torch.equal(ours, audiocraft_codes(lm, prompts, frames))
    elsewhere = Site(site.layer - 1, site.component)  # a wrong edit: the same vectors one layer down
    with installed([(audiocraft_site_module(lm, elsewhere), audiocraft_edit_hook(mode, cond, uncond, len(prompts)))]):
        assert not torch.equal(theirs, audiocraft_codes(lm, prompts, frames))


# -- the one difference: padded text ------------------------------------------------------------------------


@contextlib.contextmanager
def unmasked_text(loaded) -> Iterator[None]:
    """transformers' decoder without the text padding mask in cross-attention, as audiocraft runs it."""
    def drop_mask(module, args, kwargs):
        kwargs["encoder_attention_mask"] = None
        return args, kwargs

    with installed([], [(loaded.model.decoder, drop_mask)]):
        yield


def test_padding_is_the_one_difference(tiny64, lm, prompt_sets):
    """In a batch of prompts of different token lengths audiocraft lets the shorter prompt attend to its zeroed
    padding, transformers masks it: the shorter prompt's clip differs, the longest's does not. mgbench's clip
    for each prompt is audiocraft's clip of that prompt generated alone, and transformers without the mask is
    audiocraft's batch."""
    prompts, frames = prompt_sets["unequal"], _frames(tiny64)
    ours, theirs = audiocraft_codes(lm, prompts, frames), mgbench_codes(tiny64, prompts)
    assert not torch.equal(ours[0], theirs[0])
    assert torch.equal(ours[1], theirs[1])
    for i, prompt in enumerate(prompts):
        assert torch.equal(theirs[i], audiocraft_codes(lm, [prompt], frames)[0]), prompt
    with unmasked_text(tiny64):
        assert torch.equal(mgbench_codes(tiny64, prompts), ours)
    a, b = _forward_both(tiny64, lm, prompts)
    assert (a[0] - b[0]).abs().max() > 100 * TOLERANCE and (a[1] - b[1]).abs().max() < TOLERANCE
