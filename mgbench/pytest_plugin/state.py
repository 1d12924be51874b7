"""What one bench session holds (``config.stash[STATE]``): its options, the selections its cases need per model, the
sessions and tables that compute them through the same pipeline as ``mgbench run``, and the recorded metrics."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd
import pytest

from ..concepts.concept_set import load_concepts
from ..errors import MgbenchError
from ..experiments.experiment import Case
from ..experiments.selection import Selection
from ..paths import TINY_VERSION
from ..suite.cases import case_metrics, get_kind, group_metrics, kind_metrics
from ..suite.expectations import Expectations
from ..suite.stored import RowIds, lacking, missing_rows, read_results, stored_ids
from ..zoo.architectures import REAL_SIZES
from ..zoo.loading import WORLD_NAMES, default_run

#: the offline sizes (always run, on the CPU): the toy worlds (planted mechanisms) and tiny (random weights, golden
#: values)
OFFLINE_SIZES = ("toy", *WORLD_NAMES, "tiny")


class BenchState:
    """Options, plan, computed tables and recorded metrics of one pytest session."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.gpu = config.getoption("--gpu", False)
        self.no_compute = config.getoption("--no-compute", False)
        self.shard = config.getoption("--shard", None)
        self.workers = config.getoption("--workers", 1)
        self.results = Path(config.getoption("--results", "results/bench"))
        self.sizes = (*OFFLINE_SIZES, *REAL_SIZES) if self.gpu else OFFLINE_SIZES
        self.concepts = load_concepts()
        self.expectations_folder = Path(config.getoption("--expectations", None)
                                        or Path(str(config.rootpath)) / "expectations")
        self.selections: dict[str, list[Selection]] = {}  # per model: one selection per experiment (planning)
        self.sessions: dict = {}
        self.tables: dict[str, dict[str, pd.DataFrame]] = {}
        self.records: list[dict] = []
        self.metrics: dict[str, dict[str, float]] = {}
        self.outcomes: dict[str, str] = {}  # case id -> passed / failed / skipped
        self.stored: dict[str, tuple[dict[str, RowIds], "str | None"]] = {}  # --no-compute: row ids, why not checkable
        self.grouped: dict[tuple[str, str], "pd.DataFrame | None"] = {}  # (size, case kind) -> every case's metrics
        self.complete: dict[str, bool] = {}  # --no-compute: a model's stored tables hold every row its cases read

    @cached_property
    def expectations(self) -> Expectations:
        """The expected ranges (read on first use: pytest runs that hold no bench case never read them)."""
        try:
            return Expectations(self.expectations_folder)
        except MgbenchError as e:
            raise pytest.UsageError(str(e)) from None

    @property
    def replace_golden(self) -> bool:
        return self.config.getoption("--replace-expectations", False)

    @property
    def update_golden(self) -> bool:
        return self.replace_golden or self.config.getoption("--update-expectations", False)

    def sizes_of(self, kind: str) -> tuple[str, ...]:
        """The models a kind of case runs on: the family's worlds besides ``toy`` only judge their ground truth
        (their other metrics would be recorded without ranges, as toy's are)."""
        return self.sizes if kind == "ground_truth" else tuple(s for s in self.sizes if s not in WORLD_NAMES)

    def settings(self, size: str) -> dict:
        default_prompts, default_seconds = default_run(size)
        prompts = self.config.getoption("--prompts", None) or default_prompts
        seconds = self.config.getoption("--seconds", None) or default_seconds
        settings = {"prompts": prompts, "seconds": seconds, "seed": 0}
        return {**settings, "tiny_version": TINY_VERSION} if size == "tiny" else settings

    def unavailable(self, size: str) -> "str | None":
        """Why a size cannot run here (None when it can); with --no-compute, why its stored tables cannot be checked.
        (Whether a CUDA device is here is the ``gpu`` marker's question: ``planning.gpu_skip_reason``.)"""
        if self.no_compute:
            self.size_tables(size)
            return self.stored[size][1]
        if size in OFFLINE_SIZES:
            return None
        from ..classify.passt import passt_checkpoint_path
        from ..zoo.architectures import HUB_NAMES
        from ..zoo.loading import is_available, missing_weights_message

        if not is_available(size):
            return missing_weights_message(HUB_NAMES[size])
        if not passt_checkpoint_path().is_file():
            return f"PaSST weights are not cached at {passt_checkpoint_path()} (see `mgbench models`)"
        return None

    def session(self, size: str):
        """The size's session, as ``mgbench run`` would make it for the bench's settings (nothing loads yet)."""
        if size not in self.sessions:
            from ..engine.runner import GenerationSettings
            from ..experiments.session import RunConfig, Session

            s = self.settings(size)
            self.sessions[size] = Session(RunConfig(
                model=size, prompts=s["prompts"], device="cuda" if self.gpu else "cpu",
                dtype=self.config.getoption("--dtype") if size not in OFFLINE_SIZES else "auto",
                generation=GenerationSettings(seconds=s["seconds"], seed=s["seed"])))
        return self.sessions[size]

    def selection(self, size: str) -> Selection:
        """Everything the size's selected cases read, as one selection (``run.json``'s)."""
        return Selection.union(self.selections.get(size, [Selection(())]))

    def size_tables(self, size: str) -> dict[str, pd.DataFrame]:
        """Compute (once) everything the selected cases of ``size`` need, through ``mgbench run``'s pipeline (with
        --no-compute: read the stored tables)."""
        if size in self.tables:
            return self.tables[size]
        if self.no_compute:
            self.tables[size], reason = read_results(self.results / size, size, self.settings(size))
            self.stored[size] = stored_ids(self.tables[size]), reason
            return self.tables[size]
        from ..experiments.pipeline import run_selection

        session, tables = self.session(size), {}
        if self.workers > 1:
            from ..experiments.workers import run_workers

            for selection in self.selections.get(size, []):
                run_workers(session, selection, self.workers)
        for selection in self.selections.get(size, []):
            tables.update(run_selection(session, selection))
        self.tables[size] = tables
        return tables

    def run_shard(self, size: str) -> str:
        """With --shard I/N: compute this shard of the size's work into the cache (once); what it did."""
        from ..experiments.shards import Shard, run_shard

        if size not in self.tables:
            shard, session = Shard.parse(self.shard), self.session(size)
            done = [str(run_shard(session, selection, shard)) for selection in self.selections.get(size, [])]
            self.tables[size] = {}
            self.stored[size] = {}, f"shard {shard} of {size}: " + "; ".join(done)
        return self.stored[size][1]

    def case_metrics(self, case: Case) -> dict[str, float]:
        """The case's metrics; every case of its kind computed at once, on the kind's first case (one grouping of
        the table, intervals vectorized over the groups: ``suite.cases.kind_metrics``)."""
        kind = get_kind(case.experiment)
        if kind.aggregate is None:
            return case_metrics(case, self.size_tables(case.size))
        if (case.size, kind.name) not in self.grouped:
            self.grouped[(case.size, kind.name)] = kind_metrics(kind, self.size_tables(case.size))
        return group_metrics(kind, self.grouped[(case.size, kind.name)], case)

    def missing(self, case: Case) -> "str | None":
        """With --no-compute: what the stored tables lack of the case's rows (None: nothing). Checked once for all
        the session's cases of a model (its selections against the stored row ids), and case by case only where
        rows are missing."""
        if not self.no_compute:
            return None
        ids = {s: self.stored[s][0] for s in self.selections if not self.unavailable(s)}
        for size in ids:
            if size not in self.complete:
                self.complete[size] = not any(lacking(self.session(size), selection, ids[size])
                                              for selection in self.selections[size])
        if all(self.complete.get(size, False) for size, _ in get_kind(case.experiment).wants(case, self.concepts)):
            return None
        return missing_rows(case, self.session, ids, self.concepts)


STATE = pytest.StashKey[BenchState]()
