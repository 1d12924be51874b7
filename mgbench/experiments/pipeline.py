"""Run a selection of experiments for one session and write the tidy tables."""

from __future__ import annotations

import json
import math
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from .. import __version__
from ..backends import Backend
from ..engine.runner import GenerationSettings
from ..engine.sites import COMPONENTS, PAPER_COMPONENTS, all_sites
from ..errors import ConfigError, unknown
from ..paths import atomic_write_bytes, atomic_write_with
from ..stats.intervals import with_intervals
from ..zoo.architectures import ModelFacts
from ..zoo.loading import RANDOM_MODELS, planted_truth
from .ceiling import ceiling_grid, run_ceiling
from .decoderlens import decoderlens_grid, run_decoderlens, run_similarity
from .interventions import SWEEP_IDS, TECHNIQUES, UNSCALED, intervention_grid, run_interventions, store_table
from .session import Session
from .tunedlens import FIT_COLUMNS, check_backend, run_tunedlens, tuned_lens

EXPERIMENTS = ("decoderlens", "similarity", "interventions", "ceiling", "tunedlens")


def default_experiments(backend: Backend) -> tuple[str, ...]:
    """Every experiment that ``backend`` runs (the tuned lens' hooks need the loaded model's decoder layers)."""
    return tuple(e for e in EXPERIMENTS if e != "tunedlens" or "decoder layers" in backend.capabilities)


@dataclass(frozen=True)
class Selection:
    """Which experiments, concepts, techniques, components and layers to run (None: all)."""

    experiments: tuple[str, ...] = EXPERIMENTS
    concepts: "tuple[str, ...] | None" = None
    techniques: tuple[str, ...] = tuple(TECHNIQUES)
    components: tuple[str, ...] = PAPER_COMPONENTS
    layers: "tuple[int, ...] | None" = None
    alphas: "tuple[float, ...] | None" = None  # strengths of the additive techniques (None: 1, no alpha column)
    frames: "tuple[int, int] | None" = None  # edit only decode steps t0 <= t < t1 (None: every step, no column)

    def validate(self, session: Session) -> "Selection":
        """Raise a one-line error for anything the session cannot run, before any generation."""
        for e in self.experiments:
            if e not in EXPERIMENTS:
                raise unknown("experiment", e, EXPERIMENTS)
        if "tunedlens" in self.experiments:
            check_backend(session)
        for t in self.techniques:
            if t not in TECHNIQUES:
                raise unknown("technique", t, list(TECHNIQUES))
        for c in self.components:
            if c not in COMPONENTS or c == "resid":
                raise unknown("component", c, PAPER_COMPONENTS)
        for concept in session.concepts.select(list(self.concepts or [])):
            session.prompts(concept.name)  # raises when the concept has fewer prompts than asked for
        paired = [e for e in ("interventions", "ceiling") if e in self.experiments]
        if self.concepts is not None and len(self.concepts) < 2 and paired:
            raise ConfigError(f"{' and '.join(paired)}: at least two concepts are needed (an original and a "
                              "desired one)")
        all_sites(session.facts.num_layers, self.components, list(self.layers) if self.layers else None)
        check_clip_length(session.facts, session.config.generation, session.config.model)
        if self.alphas is not None and all(t in UNSCALED for t in self.techniques):
            scaled = ", ".join(t for t in TECHNIQUES if t not in UNSCALED)
            raise ConfigError(f"--alphas scales {scaled}; {', '.join(self.techniques)} has no strength: add "
                              f"{scaled} to --techniques")
        if self.frames is not None:
            check_frames(session, self.frames)
        return self


def check_frames(session: Session, frames: tuple[int, int]) -> None:
    """A frame window needs the uncompiled transformers backend and must start within the clip."""
    c = session.config
    if c.compile_mode is not None:
        raise ConfigError(f"--frames runs edits uncompiled (compiled edit slots edit every frame): drop --compile "
                          f"{c.compile_mode} or --frames")
    session.backend.require("frame windows", "--frames", "--frames")
    steps = session.facts.steps(c.generation.seconds)
    if frames[0] >= steps:
        raise ConfigError(f"--frames {frames[0]}-{frames[1]} starts after the clip: a {c.generation.seconds:g} s clip "
                          f"has decode steps 0 to {steps - 1}")


def check_clip_length(facts: ModelFacts, settings: GenerationSettings, model: str) -> None:
    """Clips must hold at least one frame and fit the decoder's positions (``max_position_embeddings``)."""
    rate, positions = facts.frame_rate, facts.max_positions
    steps = facts.steps(settings.seconds)  # frames + the delay pattern's codebooks - 1
    frames = steps - (facts.num_codebooks - 1)
    longest = (positions - facts.num_codebooks + 1) / rate
    if frames < 1 or steps > positions:
        raise ConfigError(f"clip length {settings.seconds:g} s does not fit model {model}: give between "
                          f"{1 / rate:g} and {longest:g} seconds ({rate} frames/s, {positions} decoder positions)")


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


#: the experiments whose rows are stored in the result store, by table name: wanted row ids -> their table
ROW_TABLES = {"decoderlens": run_decoderlens, "interventions": run_interventions, "ceiling": run_ceiling,
              "tunedlens": run_tunedlens}


def stored_name(name: str, grid: pd.DataFrame) -> str:
    """The stored table of experiment ``name``'s wanted rows ``grid`` (intervention sweeps are stored apart)."""
    return store_table(grid) if name == "interventions" else name


def selected_concepts(session: Session, selection: Selection) -> list[str]:
    """The names of the selection's concepts, in the concept file's order."""
    return [c.name for c in session.concepts.select(list(selection.concepts or []))]


def selection_grids(session: Session, selection: Selection) -> dict[str, pd.DataFrame]:
    """The wanted row ids of each selected experiment whose rows are stored (``ROW_TABLES``), in a fixed order."""
    concepts, n = selected_concepts(session, selection), session.config.prompts
    layers = list(selection.layers) if selection.layers else None
    grids: dict[str, pd.DataFrame] = {}
    for lens in ("decoderlens", "tunedlens"):
        if lens in selection.experiments:
            grids[lens] = decoderlens_grid(concepts, layers or list(range(session.facts.num_layers)), n)
    if "interventions" in selection.experiments:
        sites = all_sites(session.facts.num_layers, selection.components, layers)
        grids["interventions"] = intervention_grid(concepts, list(selection.techniques), sites, n,
                                                   alphas=selection.alphas, frames=selection.frames)
    if "ceiling" in selection.experiments:
        grids["ceiling"] = ceiling_grid(concepts, n)
    return grids


def run_selection(session: Session, selection: Selection) -> dict[str, pd.DataFrame]:
    """Compute (or read from the cache) every selected experiment; return its tidy tables by name."""
    selection.validate(session)
    grids = selection_grids(session, selection)
    tables: dict[str, pd.DataFrame] = {}
    for name in EXPERIMENTS:
        if name == "similarity" and name in selection.experiments:
            tables[name] = run_similarity(session, selected_concepts(session, selection))
        elif name in grids:
            tables[name] = ROW_TABLES[name](session, grids[name])
    if "tunedlens" in tables:
        tables["tunedlens_fit"] = tuned_lens(session)[1].assign(model=session.config.model)[["model", *FIT_COLUMNS]]
    return tables


def run_info(session: Session) -> dict:
    """The settings and versions a run's tables came from."""
    import torch
    import transformers

    c = session.config
    return {"model": c.model, "model_identity": session.musicgen.identity, "classifier": c.classifier_name,
            "recognizer": c.recognizer,
            "classifier_identity": session.classifier.identity, "prompts": c.prompts, **c.generation.as_dict(),
            "device": c.device, "backend": c.backend, "text_padding": c.resolved_text_padding,
            "dtype": c.resolved_dtype, "odds": c.odds, "both_halves": c.both_halves,
            "batch_size": session.batch_size, "planted": planted_truth(c.model),
            "random_weights": c.model in RANDOM_MODELS,  # then the numbers are meaningless (the report says so)
            "concepts_file": session.concepts.source, "versions": {"mgbench": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            **({"audiocraft": metadata.version("audiocraft")} if c.backend == "audiocraft" else {})}}


def write_tables(out: Path, tables: dict[str, pd.DataFrame], info: dict) -> list[Path]:
    """Write each table as CSV and parquet plus ``run.json``; return the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        for suffix, write in ((".csv", lambda t, p: t.to_csv(p, index=False)),
                              (".parquet", lambda t, p: t.to_parquet(p, index=False))):
            path = out / f"{name}{suffix}"
            atomic_write_with(path, lambda tmp, t=table, w=write: w(t, tmp))
            written.append(path)
    atomic_write_bytes(out / "run.json", json.dumps(info, indent=2, default=str).encode())
    return written + [out / "run.json"]


def summarize(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Aggregates over prompts, the numbers behind the paper's figures, each with its 95% bootstrap interval.

    Tidy: one row per aggregate, indexed by its keys (concept and layer; technique, component and layer; ...),
    with ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` per metric and ``n`` (prompts), from
    ``stats.with_intervals`` (prompts resampled with a fixed seed; rows of one prompt averaged first). Tidy
    rather than a pivot: each value sits beside its own interval, a pivot by concept or site would triple an
    already wide table, and the rows have the same shape as the per-prompt tables and ``report.aggregates``.
    """
    out = {}

    def aggregate(name: str, table: pd.DataFrame, by: list[str], metrics: list[str]) -> None:
        if not table.empty:  # (a narrow selection may have no MLP rows: no empty table)
            out[name] = with_intervals(table, by, metrics).set_index(by)

    for lens in ("decoderlens", "tunedlens"):
        if lens in tables:
            aggregate(lens, tables[lens], ["concept", "layer"], ["ndcg"])
    if "interventions" in tables and not tables["interventions"].empty:
        iv = tables["interventions"]
        sweep = [c for c in SWEEP_IDS if c in iv.columns]  # (--alphas, --frames: one aggregate per alpha, window)
        aggregate("profile", iv, ["technique", "component", "layer", *sweep], ["effect", "precision"])
        aggregate("pair_type", iv[iv.component == "mlp"], ["technique", "pair_type", *sweep],
                  ["effect", "effect_original", "effect_desired"])
    if "ceiling" in tables:
        metrics = ["effect", "effect_original", "effect_desired", "precision"]
        aggregate("ceiling", tables["ceiling"], ["original", "desired"], metrics)
        aggregate("ceiling_pair_type", tables["ceiling"], ["pair_type"], metrics)
    return out
