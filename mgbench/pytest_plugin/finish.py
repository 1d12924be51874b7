"""The end of a bench session: bench.csv (one row per case and metric), each model's results folder as ``mgbench
run`` writes it (tables, run.json, the experiments' own files, summary.md), the report, and golden values."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ..paths import atomic_write_bytes
from .state import STATE, BenchState

#: bench.csv's columns: one row per (case, metric); ``value_lo``/``value_hi`` bound the measured value (95% bootstrap
#: interval over prompts), ``low``/``high`` the expected range
RECORD_COLUMNS = ["case", "experiment", "size", "concept", "technique", "original", "desired", "layer", "component",
                  "pair_type", "claim", "metric", "value", "value_lo", "value_hi", "low", "high", "source", "outcome"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None or not state.records or state.shard is not None:
        return
    from ..experiments.pipeline import write_results
    from ..report.render import build_report

    out = state.results
    out.mkdir(parents=True, exist_ok=True)
    _write_records(state, out / "bench.csv")
    for size, tables in {} if state.no_compute else state.tables.items():  # (--no-compute: read from there)
        if any(not t.empty for t in tables.values()):
            write_results(state.session(size), state.selection(size), tables, out / size)
    terminal, sizes = session.config.get_terminal_writer(), list(state.tables)
    reports = Path(str(session.config.rootpath)) / "reports"
    build_report(out, out=reports, expectations_dir=state.expectations_folder, loaded=_handed_over(state))
    terminal.line(f"mgbench: report in {reports / 'report.md'}")
    if state.update_golden and "tiny" in sizes:
        tiny = {k: v for k, v in state.metrics.items() if k.startswith("tiny-")}
        path = state.expectations.update_golden(tiny, state.settings("tiny"), replace=state.replace_golden)
        terminal.line(f"mgbench: wrote {len(tiny)} golden cases to {path}")
    atomic_write_bytes(out / "bench.json", json.dumps({"sizes": sizes, "settings": {
        s: state.settings(s) for s in sizes}}, indent=2).encode())


def _write_records(state: BenchState, path: Path) -> None:
    """bench.csv from the recorded metrics, which are then let go before the report (which reads bench.csv): a dict
    per case and metric, 263,215 of them at the paper's scale."""
    records = pd.DataFrame(state.records).reindex(columns=RECORD_COLUMNS)
    records["outcome"] = records["case"].map(state.outcomes).fillna("not run")
    records.to_csv(path, index=False)
    state.records.clear()


def _handed_over(state: BenchState) -> "dict[Path, dict[str, pd.DataFrame]] | None":
    """With --no-compute, the stored tables the cases read, handed over to the report (which would read them again),
    and the session's other per-row data dropped: the report's memory comes on top of nothing of the bench's."""
    if not state.no_compute:
        return None
    state.stored.clear()
    state.grouped.clear()
    return {state.results / size: state.tables.pop(size) for size in list(state.tables)}
