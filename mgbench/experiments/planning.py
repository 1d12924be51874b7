"""``mgbench plan``: how much work a run is, how long it will take here, and how much disk it needs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..model.architectures import NUM_LAYERS, SHAPES
from ..model.cost import flops_per_clip
from ..model.sites import all_sites
from ..stats.power import resolvable_difference
from .interventions import IDS as IV_IDS
from .interventions import InterventionRows, intervention_grid
from .pipeline import Selection, selected_concepts
from .session import Session
from .shards import missing_work, pass_concepts

ROW_BYTES = 160  # one parquet result row, measured on tiny runs (compressed columns)
#: The standard deviation of per-prompt intervention effects that ``mgbench plan`` assumes when the session has
#: no cached interventions rows. From the toy world: ``mgbench run --model toy --concepts guitar,piano,jazz,rock
#: --experiments interventions --components cross_attn --layers 2 --prompts 4`` (mgbench 0.2.0, CPU; both
#: techniques, 12 pairs, 4 prompts: 96 rows) gives a pooled within-(technique, pair, site) sd of 0.7993
#: (``effect_sd`` of its interventions.parquet); the sd over all rows, 7.2, mixes pairs and sites and is not
#: the spread a paired comparison over prompts sees.
DEFAULT_EFFECT_SD = 0.80


@dataclass
class Plan:
    generations: dict[str, int]  # experiment -> clips still to generate (cached ones excluded)
    clips_per_s: float
    tensor_bytes: int
    row_bytes: int
    prompts: int = 0  # per concept
    effect_sd: float = DEFAULT_EFFECT_SD  # of per-prompt intervention effects
    effect_sd_source: str = "default, from the toy world"
    worker_clips: list[int] = field(default_factory=list)  # clips each of N workers (shards) still generates

    @property
    def worker_seconds(self) -> float:
        """Time of the selection on ``len(worker_clips)`` workers, one device each: the busiest worker's clips."""
        return max(self.worker_clips, default=0) / self.clips_per_s

    @property
    def resolvable(self) -> float:
        """The smallest difference in mean effect (two sites, techniques or runs, paired over the prompts) that
        the run detects with power 0.8 at alpha 0.05 (``stats.resolvable_difference``)."""
        return resolvable_difference(self.effect_sd, self.prompts)

    @property
    def total(self) -> int:
        return sum(self.generations.values())

    @property
    def seconds(self) -> float:
        return self.total / self.clips_per_s


def make_plan(session: Session, selection: Selection, workers: int = 1) -> Plan:
    """Count the clips the selection still needs (in all, and per shard of ``workers``) and time a short
    calibration batch on this device."""
    selection.validate(session)
    concepts = selected_concepts(session, selection)
    n, layers = session.config.prompts, session.musicgen.num_layers
    per_worker = missing_work(session, selection, workers)
    generations = {name: sum(w[name] for w in per_worker) for name in per_worker[0]}
    worker_clips = [sum(w.values()) for w in per_worker]
    passes = [c for c in pass_concepts(session, selection) if not session.store.tensor_path(f"pass-{c}").exists()]
    clips_per_s = calibrate(session, concepts[:2], min(session.batch_size, 256))
    hidden = session.musicgen.model.decoder.config.hidden_size
    tensor_bytes = len(passes) * 4 * hidden * (2 * 4 * layers + n * layers) + 4 * 527 * n * len(passes)
    cached = session.store.read("interventions")
    sd = effect_sd(cached)
    source = ("default, from the toy world" if math.isnan(sd)
              else f"from this session's {len(cached):,d} cached interventions rows")
    return Plan(generations, clips_per_s, tensor_bytes, ROW_BYTES * sum(generations.values()), n,
                DEFAULT_EFFECT_SD if math.isnan(sd) else sd, source, worker_clips)


def effect_sd(rows: pd.DataFrame) -> float:
    """The spread of per-prompt intervention effects: the pooled standard deviation over prompts within each
    (technique, pair, site), i.e. the root of the mean within-group variance (rows of one prompt averaged
    first). nan when no group has two prompts (no rows, or one prompt)."""
    ids = [c for c in IV_IDS if c != "prompt_id"]
    if rows.empty or any(c not in rows.columns for c in [*IV_IDS, "effect"]):
        return math.nan
    per_prompt = rows.groupby(IV_IDS, observed=True).effect.mean().reset_index()
    variances = per_prompt.groupby(ids, observed=True).effect.var(ddof=1).dropna()
    return float(np.sqrt(variances.mean())) if len(variances) else math.nan


def calibrate(session: Session, concepts: list[str], rows: int) -> float:
    """Clips per second of intervention batches of ``batch_size`` rows, timed on one batch of ``rows`` rows.

    One concept (a narrow selection) times interventions of the concept with itself: the same work.
    """
    pairs = [(concepts[0], concepts[0])] if len(concepts) == 1 else None
    grid = intervention_grid(concepts, ["replace"], all_sites(session.musicgen.num_layers, ["mlp"]), 1, pairs)
    batch = pd.concat([grid] * (rows // len(grid) + 1)).iloc[:rows].reset_index(drop=True)
    compute = InterventionRows(session)
    compute(batch.iloc[:1])  # warm-up (and the two concepts' means)
    start = time.perf_counter()
    compute(batch)
    return rows / (time.perf_counter() - start)


def paper_generations(size: str, prompts: int = 100, concepts: int = 10) -> int:
    """Clips of the paper's full intervention sweep for one size (both techniques, all ordered pairs)."""
    return concepts * (concepts - 1) * 2 * 3 * NUM_LAYERS[size] * prompts


def scaled_rate(rate: float, measured: str, target: str, seconds: float) -> float:
    """Rate of ``target`` from a measured rate of ``measured``, scaled by decoder FLOPs per clip."""
    return rate * flops_per_clip(SHAPES[measured], seconds) / flops_per_clip(SHAPES[target], seconds)
