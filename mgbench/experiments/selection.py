"""A selection: which experiments, concepts (or ordered pairs), techniques, components, layers, strengths and frame
window a run asks for; what ``mgbench run`` reads off its options and the bench off its chosen cases."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

from ..engine.runner import GenerationSettings
from ..engine.sites import PAPER_COMPONENTS
from ..errors import ConfigError
from ..zoo.architectures import ModelFacts
from .techniques import TECHNIQUES


@dataclass(frozen=True)
class Selection:
    """Which rows to run. ``None`` means all: every experiment the backend runs, every concept and ordered pair of
    them, every layer; ``pairs`` narrows the pairs of the paired experiments (their concepts are then the pairs')."""

    experiments: "tuple[str, ...] | None" = None
    concepts: "tuple[str, ...] | None" = None
    pairs: "tuple[tuple[str, str], ...] | None" = None
    techniques: tuple[str, ...] = tuple(TECHNIQUES)
    components: tuple[str, ...] = PAPER_COMPONENTS
    layers: "tuple[int, ...] | None" = None
    alphas: "tuple[float, ...] | None" = None  # strengths of the additive techniques (None: 1, no alpha column)
    frames: "tuple[int, int] | None" = None  # edit only decode steps t0 <= t < t1 (None: every step, no column)

    def concept_names(self, every: list[str]) -> list[str]:
        """The selected concepts among ``every`` (the concept set's order), those of the pairs included."""
        named = set(self.concepts or []) | {c for pair in self.pairs or [] for c in pair}
        return [c for c in every if c in named] if named or self.concepts is not None else list(every)

    def pair_list(self, every: list[str]) -> list[tuple[str, str]]:
        """The selected ordered pairs (original, desired)."""
        if self.pairs is not None:
            return list(self.pairs)
        concepts = self.concept_names(every)
        return [(o, d) for o in concepts for d in concepts if o != d]

    @staticmethod
    def union(selections: Iterable["Selection"]) -> "Selection":
        """The smallest selection covering ``selections``: per field the union, ``None`` (all) where any is."""
        selections = list(selections)

        def joined(name: str):
            values = [getattr(s, name) for s in selections]
            if any(v is None for v in values):
                return None
            merged = dict.fromkeys(x for v in values for x in v)
            return tuple(sorted(merged)) if name == "layers" else tuple(merged)

        union = {f.name: joined(f.name) for f in fields(Selection) if f.name not in ("alphas", "frames")}
        if union["pairs"] is not None and union["concepts"] is not None:
            union["concepts"] = tuple(dict.fromkeys([*union["concepts"], *(c for p in union["pairs"] for c in p)]))
        return replace(selections[0], **union)


def parse_layers(text: "str | None") -> "tuple[int, ...] | None":
    """``"all"``/None -> None; ``"0,3,10-12"`` -> (0, 3, 10, 11, 12)."""
    if text in (None, "", "all"):
        return None
    layers: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(f"cannot read layers {text!r}; write e.g. 0,3,10-12 or all") from None
        if first > last:
            raise ConfigError(f"layer range {part.strip()!r} runs backwards; write low-high, e.g. {last}-{first}")
        layers.extend(range(first, last + 1))
    return tuple(dict.fromkeys(layers))


def parse_alphas(text: "str | None") -> "tuple[float, ...] | None":
    """None/``""`` -> None (no sweep); ``"0,0.5,1,2,4"`` -> those strengths, sorted, each once."""
    if not text:
        return None
    alphas = []
    for part in text.split(","):
        try:
            alpha = float(part)
        except ValueError:
            raise ConfigError(f"cannot read alphas {text!r}; write strengths of 0 or more, comma separated, e.g. "
                              "0,0.5,1,2,4") from None
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ConfigError(f"alpha {part.strip()!r} is not allowed; give finite strengths of 0 or more, e.g. "
                              "0,0.5,1,2,4")
        alphas.append(alpha)
    return tuple(sorted(set(alphas)))


def parse_frames(text: "str | None") -> "tuple[int, int] | None":
    """None/``""`` -> None (every frame); ``"0-50"`` -> (0, 50): decode steps 0 <= t < 50."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if match is None:
        raise ConfigError(f"cannot read frames {text!r}; write T0-T1 with whole numbers from 0 (decode steps "
                          "T0 <= t < T1), e.g. 0-50")
    t0, t1 = int(match[1]), int(match[2])
    if t0 >= t1:
        raise ConfigError(f"frame window {text!r} holds no frame (it is T0 <= t < T1); write T0-T1 with T0 < T1, "
                          f"e.g. {min(t0, t1)}-{max(t0, t1) + (t0 == t1)}")
    return t0, t1


def check_clip_length(facts: ModelFacts, settings: GenerationSettings, model: str) -> None:
    """Clips must hold at least one frame and fit the decoder's positions (``max_position_embeddings``)."""
    rate, positions = facts.frame_rate, facts.max_positions
    steps = facts.steps(settings.seconds)  # frames + the delay pattern's codebooks - 1
    frames = steps - (facts.num_codebooks - 1)
    longest = (positions - facts.num_codebooks + 1) / rate
    if frames < 1 or steps > positions:
        raise ConfigError(f"clip length {settings.seconds:g} s does not fit model {model}: give between "
                          f"{1 / rate:g} and {longest:g} seconds ({rate} frames/s, {positions} decoder positions)")
