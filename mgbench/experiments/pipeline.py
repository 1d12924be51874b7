"""Run a selection of experiments for one session, and write its results folder: what ``mgbench run`` and the bench
suite (``pytest bench/``) both call."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

from .. import __version__
from ..paths import atomic_write_bytes, atomic_write_with
from ..zoo.loading import RANDOM_MODELS, planted_truth
from . import catalog
from .catalog import selected, validate
from .experiment import Experiment
from .selection import Selection
from .session import Session
from .summaries import summarize_rows


def stored_grids(session: Session, selection: Selection) -> list[tuple[Experiment, pd.DataFrame]]:
    """The wanted row ids of each selected experiment whose rows are stored, in the declaration order (what shards
    split and plans count)."""
    return [(e, e.grid(session, selection)) for e in selected(session, selection) if e.stored]


def run_selection(session: Session, selection: Selection) -> dict[str, pd.DataFrame]:
    """Compute (or read from the cache) every selected experiment; return its tidy tables by name."""
    validate(session, selection)
    tables = {}
    for experiment in selected(session, selection):
        grid = experiment.grid(session, selection)
        tables[experiment.name] = experiment.rows(session, grid) if len(grid) else pd.DataFrame()
    return tables


def summarize(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Each experiment's aggregates over prompts (``Experiment.summary``: the numbers behind the paper's figures),
    each with its 95% bootstrap interval.

    Tidy: one row per aggregate, indexed by its keys (concept and layer; technique, component and layer; ...),
    with ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` per metric and ``n`` (prompts), from
    ``stats.with_intervals`` (prompts resampled with a fixed seed; rows of one prompt averaged first). Tidy
    rather than a pivot: each value sits beside its own interval, a pivot by concept or site would triple an
    already wide table, and the rows have the same shape as the per-prompt tables.
    """
    out = {}
    for experiment in catalog.EXPERIMENTS:
        table = tables.get(experiment.name)
        for aggregate in experiment.summary if table is not None and not table.empty else ():
            rows = summarize_rows(aggregate, table)
            if rows is not None:
                out[aggregate.name] = rows
    return out


def run_info(session: Session) -> dict:
    """The settings and versions a run's tables came from."""
    import torch
    import transformers

    c, module = session.config, session.backend.module
    return {"model": c.model, "model_identity": session.musicgen.identity, "classifier": c.classifier_name,
            "recognizer": c.recognizer,
            "classifier_identity": session.classifier.identity, "prompts": c.prompts, **c.generation.as_dict(),
            "device": c.device, "backend": c.backend, "text_padding": c.resolved_text_padding,
            "dtype": c.resolved_dtype, "odds": c.odds, "both_halves": c.both_halves,
            "batch_size": session.batch_size, "planted": planted_truth(c.model),
            "random_weights": c.model in RANDOM_MODELS,  # then the numbers are meaningless (the report says so)
            "concepts_file": session.concepts.source, "versions": {"mgbench": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            **({module: metadata.version(module)} if module else {})}}


def write_tables(out: Path, tables: dict[str, pd.DataFrame], info: "dict | None") -> list[Path]:
    """Write each table as CSV and parquet plus ``run.json`` (unless ``info`` is None); return the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        for suffix, write in ((".csv", lambda t, p: t.to_csv(p, index=False)),
                              (".parquet", lambda t, p: t.to_parquet(p, index=False))):
            path = out / f"{name}{suffix}"
            atomic_write_with(path, lambda tmp, t=table, w=write: w(t, tmp))
            written.append(path)
    if info is None:
        return written
    atomic_write_bytes(out / "run.json", json.dumps(info, indent=2, default=str).encode())
    return written + [out / "run.json"]


def write_results(session: Session, selection: Selection, tables: dict[str, pd.DataFrame], out: Path,
                  listen: int = 3) -> list[Path]:
    """A run's results folder: its tables and ``run.json``, what each experiment writes beside its table (a tuned
    lens' fit and translators, listening examples from the first ``listen`` prompts), and ``summary.md``; returns
    the written paths."""
    from dataclasses import asdict

    info = {**run_info(session), "selection": asdict(selection)}
    tables = {name: table for name, table in tables.items() if not table.empty}
    written = write_tables(out, tables, info)  # first: what follows generates audio or fits
    for experiment in catalog.EXPERIMENTS:
        if experiment.name in tables and experiment.outputs is not None:
            extra, paths = experiment.outputs(session, tables[experiment.name], out, listen)
            written += [*write_tables(out, extra, info)[:-1], *paths] if extra else paths
            tables.update(extra)
    lines = [f"# mgbench run: {session.config.model}", ""] + [f"- {k}: {v}" for k, v in info.items()
                                                               if k != "versions"]
    for name, table in summarize(tables).items():  # each also a tidy table: aggregates/<name>.csv and .parquet
        written += write_tables(out / "aggregates", {name: table.reset_index()}, None)
        lines += ["", f"## {name}", "", f"[aggregates/{name}.csv](aggregates/{name}.csv)", "",
                  table.round(4).reset_index().to_markdown(index=False)]
    atomic_write_bytes(out / "summary.md", ("\n".join(lines) + "\n").encode())
    return written + [out / "summary.md"]
