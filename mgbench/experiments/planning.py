"""``mgbench plan``: how much work a run is, how long it will take (here, or on a GPU that is not here), and how much
disk it needs; answered in seconds on any machine, before the weights are downloaded (the model's shapes come from
its configuration) and before a GPU is at hand (then from a device profile, labelled as projected)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..engine.batching import auto_batch_size, memory_budget
from ..perf.calibration import calibrate
from ..perf.cost import DEVICE_PROFILES, flops_per_clip, projected_rate
from ..stats.power import resolvable_difference
from ..zoo.architectures import NUM_LAYERS, SHAPES, DecoderShape
from . import catalog
from .catalog import validate
from .selection import Selection
from .session import DTYPES, Session
from .shards import missing_work, pass_concepts
from .store import ResultStore

#: bytes per number of each dtype a run can use
DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
ROW_BYTES = 160  # one parquet result row, measured on tiny runs (compressed columns)
#: The standard deviation of per-prompt intervention effects that ``mgbench plan`` assumes when the session has
#: no cached interventions rows. From the toy world: ``mgbench run --model toy --concepts guitar,piano,jazz,rock
#: --experiments interventions --components cross_attn --layers 2 --prompts 4`` (mgbench 0.2.0, CPU; both
#: techniques, 12 pairs, 4 prompts: 96 rows) gives a pooled within-(technique, pair, site) sd of 0.7993
#: (``effect_sd`` of its interventions.parquet); the sd over all rows, 7.2, mixes pairs and sites and is not
#: the spread a paired comparison over prompts sees.
DEFAULT_EFFECT_SD = 0.80


@dataclass(frozen=True)
class Rate:
    """How fast the selection runs on one device: measured here (a short calibration) or projected."""

    device: str
    batch: int
    clips_per_s: float
    how: str  # one line: what was measured, or how it was projected ("projected, not measured here: ...")


@dataclass
class Plan:
    generations: dict[str, int]  # experiment -> clips still to generate (cached ones excluded)
    rates: list[Rate]  # the device asked for, or each device profile where that device is not here
    tensor_bytes: int
    row_bytes: int
    prompts: int = 0  # per concept
    effect_sd: float = DEFAULT_EFFECT_SD  # of per-prompt intervention effects
    effect_sd_source: str = "default, from the toy world"
    worker_clips: list[int] = field(default_factory=list)  # clips each of N workers (shards) still generates
    cache: str = ""  # whether the cache was read, in words

    @property
    def resolvable(self) -> float:
        """The smallest difference in mean effect (two sites, techniques or runs, paired over the prompts) that
        the run detects with power 0.8 at alpha 0.05 (``stats.resolvable_difference``)."""
        return resolvable_difference(self.effect_sd, self.prompts)

    @property
    def total(self) -> int:
        return sum(self.generations.values())

    def seconds(self, rate: Rate) -> float:
        return self.total / rate.clips_per_s

    def worker_seconds(self, rate: Rate) -> float:
        """Time of the selection on ``len(worker_clips)`` workers, one device each: the busiest worker's clips."""
        return max(self.worker_clips, default=0) / rate.clips_per_s


def make_plan(session: Session, selection: Selection, workers: int = 1,
              profiles: "tuple[str, ...]" = tuple(DEVICE_PROFILES)) -> Plan:
    """Count the clips the selection still needs (in all, and per shard of ``workers``; the cache is read when the
    model and classifier are on this machine) and how fast they run: calibrated on the device when it is here, else
    projected for each of ``profiles``. Loads, builds and downloads no model."""
    validate(session, selection)
    facts, c = session.facts, session.config
    store = session.local_store()
    per_worker = missing_work(session, selection, workers, store=store)
    generations = {name: sum(w[name] for w in per_worker) for name in per_worker[0]}
    passes = [p for p in pass_concepts(session, selection)
              if store is None or not store.tensor_path(f"pass-{p}").exists()]
    n, layers, hidden = c.prompts, facts.num_layers, facts.shape.hidden
    tensor_bytes = len(passes) * 4 * hidden * (2 * 4 * layers + n * layers) + 4 * 527 * n * len(passes)
    sd, rows = cached_effect_sd(store)
    source = "default, from the toy world" if math.isnan(sd) else f"from this session's {rows:,d} cached rows"
    return Plan(generations, device_rates(session, profiles), tensor_bytes, ROW_BYTES * sum(generations.values()), n,
                DEFAULT_EFFECT_SD if math.isnan(sd) else sd, source, [sum(w.values()) for w in per_worker],
                "read" if store is not None else "not read (the model or classifier is not on this machine: every "
                "clip counted)")


def device_here(device: str) -> bool:
    """Whether torch sees ``device`` (``cpu``, ``cuda``, ``cuda:N``) on this machine."""
    kind = torch.device(device)
    if kind.type == "cpu":
        return True
    return torch.cuda.is_available() and (kind.index or 0) < torch.cuda.device_count()


def device_rates(session: Session, profiles: "tuple[str, ...]") -> list[Rate]:
    """The rate on the session's device: a short calibration when it is here, else each profile's projection."""
    c, facts = session.config, session.facts
    dtype = c.resolved_dtype
    dtype_bytes = DTYPE_BYTES[dtype]
    seconds = c.generation.seconds
    if device_here(c.device):
        device = torch.device(c.device)
        batch = c.batch_size or auto_batch_size(facts, seconds, device.type == "cuda", memory_budget(device),
                                                dtype_bytes)
        measured = calibrate(facts, seconds, batch, c.device, DTYPES[dtype] or torch.float32,
                             c.generation.guidance_scale > 1)
        return [Rate(c.device, batch, measured.clips_per_s, measured.what)]
    rates = []
    for name in profiles:
        profile = DEVICE_PROFILES[name]
        batch = c.batch_size or auto_batch_size(facts, seconds, True, int(0.8 * profile.memory_gib * 2**30),
                                                dtype_bytes)
        rate, how = projected_rate(profile, facts.shape, seconds, batch, dtype, c.compile_mode)
        rates.append(Rate(name, batch, rate, f"projected, not measured here: {how}"))
    return rates


def effect_variances(rows: pd.DataFrame, ids: Sequence[str]) -> pd.Series:
    """The variance over prompts of the per-prompt effect within each group of ``ids`` (``prompt_id`` among them;
    rows of one prompt averaged first), for the groups with two prompts or more."""
    if rows.empty or any(c not in rows.columns for c in [*ids, "effect"]):
        return pd.Series(dtype=float)
    per_prompt = rows.groupby(list(ids), observed=True).effect.mean().reset_index()
    return per_prompt.groupby([c for c in ids if c != "prompt_id"], observed=True).effect.var(ddof=1).dropna()


def effect_sd(rows: pd.DataFrame, ids: Sequence[str]) -> float:
    """The spread of per-prompt effects: the pooled standard deviation over prompts within each group of ``ids``
    (an intervention's technique, pair and site), the root of the mean within-group variance. nan when no group has
    two prompts (no rows, or one prompt)."""
    variances = effect_variances(rows, ids)
    return float(np.sqrt(variances.mean())) if len(variances) else math.nan


def cached_effect_sd(store: "ResultStore | None") -> tuple[float, int]:
    """``effect_sd`` pooled over every stored table with an effect (interventions, the ceiling), and its rows."""
    with_effect = [e for e in catalog.EXPERIMENTS if e.stored and "effect" in e.columns]
    tables = [(e, store.read(e.name)) for e in with_effect] if store else []
    variances = pd.concat([effect_variances(rows, e.ids) for e, rows in tables] or [pd.Series(dtype=float)])
    return (float(np.sqrt(variances.mean())) if len(variances) else math.nan), sum(len(rows) for _, rows in tables)


def paper_generations(size: str, prompts: int = 100, concepts: int = 10) -> int:
    """Clips of the paper's full intervention sweep for one size (both techniques, all ordered pairs)."""
    return concepts * (concepts - 1) * 2 * 3 * NUM_LAYERS[size] * prompts


def scaled_rate(rate: float, measured: DecoderShape, seconds: float, target: str, target_seconds: float) -> float:
    """Rate of size ``target`` at clips of ``target_seconds`` from a rate of a decoder of shape ``measured`` at clips
    of ``seconds``, scaled by decoder FLOPs per clip."""
    return rate * flops_per_clip(measured, seconds) / flops_per_clip(SHAPES[target], target_seconds)
