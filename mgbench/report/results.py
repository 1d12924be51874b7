"""Load a results folder (``mgbench run --out`` or ``pytest bench/ --results``) into tidy tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from ..experiments import catalog
from ..experiments.tables import concat_tables, read_table
from ..stats.intervals import with_intervals

#: the columns the report reads from each table (a table without them is from an older mgbench or another tool):
#: every experiment's (``Experiment.columns``) and bench.csv's
BENCH_COLUMNS = ("case", "experiment", "metric", "value")


def columns(name: str) -> tuple[str, ...]:
    """The columns the report reads of table ``name``: an experiment's (``Experiment.columns``) or bench.csv's."""
    return BENCH_COLUMNS if name == "bench" else catalog.get(name).columns
#: a table that swept a strength (``--alphas``: an ``alpha`` column) keeps its alpha-1 rows, the paper's edits, for
#: every figure and check made for those; all its rows are the table ``<name>:alpha`` (the steering figure's)
SWEPT = ":alpha"
#: the columns of ``aggregates``
AGGREGATE_COLUMNS = ["model", "figure", "key", "metric", "value", "lo", "hi"]
REMEDY = "rerun `mgbench run` (or `pytest bench/`) to write it anew"


@dataclass
class Results:
    """All tables of a results folder (one model, or one subfolder per model size), concatenated."""

    folder: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)  # model -> run.json
    bench: pd.DataFrame = field(default_factory=pd.DataFrame)

    split: dict = field(default_factory=dict, repr=False)  # (table, model) -> its rows, split once per table

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    def of(self, name: str, model: str) -> pd.DataFrame:
        """Table ``name``'s rows of ``model`` (every table is split by model once: a report at the paper's scale
        would otherwise filter millions of rows for every figure)."""
        if name not in self.split:
            table = self.table(name)
            self.split[name] = dict(tuple(table.groupby("model", sort=False, observed=True))) if not table.empty else {}
        return self.split[name].get(model, self.table(name).iloc[:0])


def load_results(folder: "str | Path", loaded: "dict[Path, dict[str, pd.DataFrame]] | None" = None) -> Results:
    """Read ``folder`` and its subfolders that hold a ``run.json``. ``loaded``: tables already read from run
    folders' parquet files (by folder, e.g. the bench's with --no-compute), taken from it (it ends empty) instead of
    read again."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"results folder {folder} does not exist or is not a folder; give the --out folder of "
                          "`mgbench run` or the --results folder of `pytest bench/`")
    runs = [d for d in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())] if (d / "run.json").exists()]
    if not runs and not (folder / "bench.csv").exists():
        raise ConfigError(f"{folder} holds no results (no run.json or bench.csv); run `mgbench run --out {folder}`")
    results, loaded = Results(folder), loaded if loaded is not None else {}
    parts: dict[str, list[pd.DataFrame]] = {}  # per table: each run's, concatenated once at the end
    for run in runs:
        info = _run_info(run / "run.json")
        results.runs[info["model"]] = info
        given = loaded.pop(next((p for p in loaded if Path(p).resolve() == run.resolve()), None), {})
        for name in (e.name for e in catalog.EXPERIMENTS):
            path = run / f"{name}.parquet"
            if path.exists():
                table = given.pop(name, None)
                parts.setdefault(name, []).append(
                    _read_table(path, name, read_table) if table is None else _checked(table, path, name))
    for name in list(parts):
        results.tables[name] = concat_tables(parts.pop(name))
    if (folder / "bench.csv").exists():
        results.bench = _read_table(folder / "bench.csv", "bench", lambda path: pd.read_csv(path, low_memory=False))
    for name, table in list(results.tables.items()):
        if "alpha" in table.columns:
            results.tables[name + SWEPT] = table
            results.tables[name] = table[table.alpha == 1].reset_index(drop=True)
    return results


def _run_info(path: Path) -> dict:
    """A run.json: the settings of one run, with at least its model's name."""
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path} is damaged ({e}); {REMEDY}") from None
    if not isinstance(info, dict) or not isinstance(info.get("model"), str):
        raise ConfigError(f"{path} names no model: it is from an older mgbench or another tool; {REMEDY}")
    return info


def _read_table(path: Path, name: str, read) -> pd.DataFrame:
    """A results table, read with ``read``; a damaged file or missing columns are a one-line error naming it."""
    try:
        table = read(path)
    except Exception as e:  # noqa: BLE001 -- parquet and CSV readers raise many kinds of errors for damaged files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path} is damaged ({reason}); {REMEDY}") from None
    return _checked(table, path, name)


def _checked(table: pd.DataFrame, path: Path, name: str) -> pd.DataFrame:
    """``table`` (read from ``path``) when it has the columns the report reads; else a one-line error naming it."""
    missing = [c for c in columns(name) if c not in table.columns]
    if missing:
        raise ConfigError(f"{path} lacks the columns {', '.join(missing)}: it is from an older mgbench or another "
                          f"tool; {REMEDY}")
    return table


def aggregates(results: Results) -> pd.DataFrame:
    """The numbers behind the figures, one row per (figure key, metric): each experiment's summaries
    (``Experiment.summary``) that name their groups (``Aggregate.key``), what nightly diffs compare.

    ``value`` is the mean over prompts, ``lo``/``hi`` its 95% bootstrap interval (``stats.with_intervals``:
    prompts resampled with a fixed seed, rows of one prompt averaged first).
    """
    frames = []
    for experiment in catalog.EXPERIMENTS:
        table = results.table(experiment.name)
        for aggregate in experiment.summary if not table.empty else ():
            rows = aggregate.rows(table)
            metrics = [m for m in aggregate.metrics if m in rows.columns]  # (an older table may lack a metric)
            if aggregate.key is None or rows.empty or not metrics:
                continue
            g = with_intervals(rows, ["model", *aggregate.by], metrics)
            frames += [pd.DataFrame({"model": g.model, "figure": aggregate.name, "key": aggregate.names(g), "metric": m,
                                     "value": g[m], "lo": g[f"{m}_lo"], "hi": g[f"{m}_hi"]})
                       for m in metrics]
    if not frames:
        return pd.DataFrame(columns=AGGREGATE_COLUMNS)
    return pd.concat(frames, ignore_index=True)
