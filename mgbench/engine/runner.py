"""The model runner: prompts (plus optional per-row edits, captures or a decoder cut) -> audio."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import torch

from ..errors import unknown
from ..zoo.loading import LoadedMusicgen
from .batching import is_oom
from .decode import decode_audio, decode_codes, foreign_hooks, greedy
from .hooks import Capture, FrameClock, RowEdit, cut_decoder, edit_hooks, has_windows, installed
from .levers import NO_LEVERS, Levers, codec, to_host
from .sampling import CommonNoiseSampler, SamplerLastList, prompt_key
from .sites import TRANSFORMERS_SITES
from .stepper import fixed_codes
from .taps import install
from .workspace import TEXT_BUCKET, bucket, fixed_text, padded

#: ``own``: mgbench's decode loop (``decode.py``, one decoder forward per frame); ``generate``: transformers'.
#: Both give the same codes (``tests/test_decode.py``), so the engine is no part of any cache key.
ENGINES = ("own", "generate")


@dataclass(frozen=True)
class GenerationSettings:
    """How clips are generated. Defaults: the paper's (4 s, MusicGen's top-k 250, temperature 1, guidance 3)."""

    seconds: float = 4.0
    seed: int = 0
    top_k: int = 250
    temperature: float = 1.0
    guidance_scale: float = 3.0
    greedy: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


#: how a batch's padded text positions enter cross-attention: ``masked`` (transformers: ignored) or
#: ``audiocraft`` (attended to as zero vectors, as audiocraft does; docs/backends.md)
TEXT_PADDINGS = ("masked", "audiocraft")


class Runner(Protocol):
    """What the experiments use of a runner, whichever library runs MusicGen (``backends.make_runner``)."""

    settings: GenerationSettings

    @property
    def guided(self) -> bool: ...

    def fit_text(self, prompts: Sequence[str]) -> None: ...

    def generate(self, prompts: Sequence[str], edits: "Sequence[RowEdit | None] | None" = None,
                 capture: "Capture | None" = None, cut: "int | None" = None,
                 noise_keys: "Sequence[str] | None" = None) -> torch.Tensor: ...


class RunnerBase:
    """The library-independent part of a runner: settings, step count, argument checks, site hooks, the sampler."""

    def __init__(self, loaded: LoadedMusicgen, settings: GenerationSettings = GenerationSettings()):
        self.loaded = loaded
        self.settings = settings

    @property
    def guided(self) -> bool:
        """Whether the decoder batch is doubled for classifier-free guidance (unconditional rows ``B..2B-1``)."""
        return self.settings.guidance_scale > 1

    @property
    def max_new_tokens(self) -> int:
        """Frames for ``seconds`` of audio plus the delay pattern's extra steps (codebooks - 1)."""
        return round(self.settings.seconds * self.loaded.frame_rate) + self.loaded.num_codebooks - 1

    @staticmethod
    def noise_keys(prompts: Sequence[str], edits: "Sequence[RowEdit | None] | None",
                   noise_keys: "Sequence[str] | None") -> Sequence[str]:
        """Check one edit and one noise key (or None) per prompt; return the texts that key each row's noise."""
        if edits is not None and len(edits) != len(prompts):
            raise ValueError(f"got {len(edits)} edits for {len(prompts)} prompts; pass one (or None) per prompt")
        if noise_keys is not None and len(noise_keys) != len(prompts):
            raise ValueError(f"got {len(noise_keys)} noise keys for {len(prompts)} prompts; pass one per prompt")
        return prompts if noise_keys is None else noise_keys

    def site_hooks(self, layers: torch.nn.ModuleList, edits: "Sequence[RowEdit | None] | None",
                   capture: "Capture | None", components: "dict[str, str]" = TRANSFORMERS_SITES,
                   clock: "FrameClock | None" = None) -> list:
        """Forward hooks for ``edits`` and ``capture`` on ``layers`` (sites located by ``components``); ``clock``
        counts frames for edits limited to frames."""
        hooks = [] if edits is None else edit_hooks(layers, edits, self.guided, components, clock)
        return hooks + ([] if capture is None else capture.hooks(layers, components))

    def fit_text(self, prompts: Sequence[str]) -> None:
        """Prepare for every batch holding prompts of ``prompts`` (a runner of fixed shapes sizes its text for the
        longest); nothing by default."""

    def sampler(self, keys: Sequence[str]) -> "CommonNoiseSampler | None":
        """The common-random-number sampler for rows keyed by ``keys`` (None for greedy decoding)."""
        s = self.settings
        if s.greedy:
            return None
        return CommonNoiseSampler([prompt_key(k) for k in keys], self.loaded.num_codebooks, s.seed, s.top_k,
                                  s.temperature)


def _unmasked_text(module, args, kwargs):
    """A decoder pre-hook: cross-attention without the text padding mask (``text_padding="audiocraft"``)."""
    kwargs["encoder_attention_mask"] = None
    return args, kwargs


class MusicgenRunner(RunnerBase):
    """Generates batches of clips from a loaded MusicGen through transformers, with common-random-number sampling.

    With fixed shapes (on by default when compiling or with a lever; ``fixed_shapes=True`` asks for them
    eagerly, e.g. on a GPU, where kernels may depend on the batch size) the own engine pads the text to buckets and
    every batch to ``batch_size`` prompts, and reuses one KV cache per shape (``workspace.py``): a sweep then runs
    one compiled graph, recorded once, and a prompt's rows see the same kernels in every batch.
    """

    def __init__(self, loaded: LoadedMusicgen, settings: GenerationSettings = GenerationSettings(),
                 text_padding: str = "masked", engine: str = "own", cache: str = "dynamic",
                 compile_mode: "str | None" = None, levers: Levers = NO_LEVERS, batch_size: "int | None" = None,
                 fixed_shapes: "bool | None" = None):
        super().__init__(loaded, settings)
        if text_padding not in TEXT_PADDINGS:
            raise unknown("text padding", text_padding, TEXT_PADDINGS)
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
        if (compile_mode is not None or levers != NO_LEVERS or fixed_shapes) and engine != "own":
            raise ValueError("only the own engine compiles its decoder step, has fixed shapes and levers")
        self.text_padding, self.engine, self.cache, self.compile_mode = text_padding, engine, cache, compile_mode
        self.levers, self.batch_size = levers, batch_size
        self.fixed = compile_mode is not None or levers != NO_LEVERS if fixed_shapes is None else fixed_shapes
        if compile_mode is not None and not self.fixed:
            raise ValueError("a compiled step needs fixed shapes")
        self.text_tokens = 0  # the text bucket never shrinks: pinned by ``fit_text``, grown by a longer batch
        # installed before anything compiles: hooks registered after compiling would be skipped silently
        self.slots, self.taps, self.gates = (None, None, None) if compile_mode is None else \
            install(loaded.decoder_layers)

    def fit_text(self, prompts: Sequence[str]) -> None:
        """Pad every batch's text to at least the bucket of the longest of ``prompts`` (a session's prompts: then all
        its batches share one text length, hence one graph and the same cross-attention arithmetic). Only a
        fixed-shape (compiled) runner pads; another ignores this."""
        if prompts and self.fixed:
            tokens = self.loaded.processor(text=list(prompts), padding=True, return_tensors="pt")["input_ids"]
            self.text_tokens = max(self.text_tokens, bucket(tokens.shape[1], TEXT_BUCKET))

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], edits: "Sequence[RowEdit | None] | None" = None,
                 capture: "Capture | None" = None, cut: "int | None" = None,
                 noise_keys: "Sequence[str] | None" = None) -> torch.Tensor:
        """Generate one clip per prompt; return mono audio ``(len(prompts), samples)`` on the CPU (on the device with
        ``Levers.audio_on_device``).

        ``edits[b]`` intervenes on prompt ``b``'s rows; ``capture`` records site outputs;
        ``cut`` runs only the first ``cut`` decoder layers (DecoderLens); ``noise_keys[b]`` is the text
        whose ``prompt_key`` seeds row ``b``'s sampling noise (default: the prompt itself).
        With ``compile_mode`` every pass (plain, edited, captured, cut) runs the one compiled step, edits, captures
        and cuts through tensor-driven hooks (``taps.install``), so a baseline and an edit differ by the edit alone.
        A pass whose decoder carries hooks of its own (a tuned lens's translator, recorded states) runs the eager
        step, as the compiled step would skip them. Edits limited to frames (``RowEdit.frames``) run uncompiled only:
        refused with ``compile_mode``.
        """
        keys = self.noise_keys(prompts, edits, noise_keys)
        if has_windows(edits) and self.compile_mode is not None:
            raise ValueError("edits limited to frames run uncompiled only; drop compile_mode or the frames")
        if self.engine == "own" and self.fixed:
            try:
                return self._fixed(list(prompts), edits, capture, cut, list(keys))
            except (RuntimeError, MemoryError) as e:
                if is_oom(e) and self.batch_size:  # the backoff's smaller pieces: a smaller compiled size from now on
                    self.batch_size = max(1, len(prompts) // 2)
                raise
        return self._plain(prompts, edits, capture, cut, keys)

    def _plain(self, prompts: Sequence[str], edits: "Sequence[RowEdit | None] | None", capture: "Capture | None",
               cut: "int | None", keys: Sequence[str]) -> torch.Tensor:
        """A batch as it comes, through the own loop (dynamic or static cache, eager) or ``generate``."""
        loaded, s = self.loaded, self.settings
        inputs = loaded.processor(text=list(prompts), padding=True, return_tensors="pt").to(loaded.device)
        decoder = loaded.model.decoder.model.decoder
        clock = FrameClock() if has_windows(edits) else None
        hooks = self.site_hooks(loaded.decoder_layers, edits, capture, clock=clock)
        pre_hooks = [] if clock is None else [clock.pre_hook(decoder)]
        if capture is not None and self.engine == "generate":  # it runs frame 0 twice: count it once
            pre_hooks.append(capture.restart_hook(decoder))
        if self.text_padding == "audiocraft":
            pre_hooks.append((loaded.model.decoder, _unmasked_text))
        sampler = self.sampler(keys)
        with installed(hooks, pre_hooks), (cut_decoder(decoder, cut) if cut else contextlib.nullcontext()):
            if self.engine == "own":
                codes = decode_codes(loaded.model, inputs["input_ids"], inputs["attention_mask"], self.max_new_tokens,
                                     s.guidance_scale, greedy if sampler is None else sampler.sample, self.cache)
                audio = decode_audio(loaded.model, codes)
            else:
                processors = SamplerLastList([] if sampler is None else [sampler])
                audio = loaded.model.generate(**inputs, do_sample=False, guidance_scale=s.guidance_scale,
                                              max_new_tokens=self.max_new_tokens, logits_processor=processors,
                                              top_k=None, temperature=None)
        return audio[:, 0].float().cpu()

    def _fixed(self, prompts: list[str], edits: "Sequence[RowEdit | None] | None", capture: "Capture | None",
               cut: "int | None", keys: list[str]) -> torch.Tensor:
        """A batch padded to ``batch_size`` prompts and its text to its bucket, through ``stepper.fixed_codes``."""
        loaded, s, n = self.loaded, self.settings, len(prompts)
        size = max(n, self.batch_size or n)
        edits = None if edits is None else list(edits) + [None] * (size - n)
        tokens = loaded.processor(text=padded(prompts, size), padding=True, return_tensors="pt")
        self.text_tokens = max(self.text_tokens, bucket(tokens["input_ids"].shape[1], TEXT_BUCKET))
        text = fixed_text(tokens["input_ids"], tokens["attention_mask"], self.text_tokens,
                          loaded.processor.tokenizer.pad_token_id, self.text_padding)
        ids, mask, cross = (None if t is None else t.to(loaded.device) for t in text)
        decoder = loaded.model.decoder.model.decoder
        compiled = self.compile_mode is not None and not foreign_hooks(loaded.model)
        rows = 2 * size if self.guided else size
        real = torch.cat([torch.arange(n), size + torch.arange(n)]) if self.guided else torch.arange(n)
        if compiled:  # every pass through the one compiled step: edits, captures and cuts by tensors
            self.taps.start(rows)
            passes = [self.slots.applied(edits or [None] * size, self.guided), self.gates.cut(cut)]
        else:
            clock = FrameClock() if has_windows(edits) else None
            passes = [installed(self.site_hooks(loaded.decoder_layers, edits, capture, clock=clock),
                                [] if clock is None else [clock.pre_hook(decoder)]),
                      cut_decoder(decoder, cut) if cut else contextlib.nullcontext()]
        with contextlib.ExitStack() as stack:
            for context in passes:
                stack.enter_context(context)
            codes = fixed_codes(loaded.model, ids, mask, cross, self.max_new_tokens, s.guidance_scale,
                                self.sampler(padded(keys, size)), self.levers,
                                self.compile_mode if compiled else None)
        if capture is not None:
            real = real.to(loaded.device)
            if compiled:
                self.taps.read(capture, real, self.max_new_tokens, cut or loaded.num_layers)
            else:
                capture.sums = {site: sums.index_select(0, real) for site, sums in capture.sums.items()}
        audio = decode_audio(loaded.model, codes, codec(loaded.model, self.compile_mode)
                             if self.levers.codec_bfloat16 else None)[:n, 0].float()
        return audio if self.levers.audio_on_device else to_host(audio)
