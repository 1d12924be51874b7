"""``mgbench report``: report.md (GitHub) and report.html (offline, with audio players) from a results folder.

The report is a list of blocks (headings, text, images, tables, audio rows; ``page.py`` renders them): what a
reader checks first (the planted truth, the paper's claims), then the settings, the figures with the numbers
behind them, the bench outcome, the diff against a baseline and the listening examples.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..experiments import catalog
from ..paths import atomic_write_bytes
from ..stats.intervals import FEW_PROMPTS, SMALL_SAMPLE_COVERAGE
from ..suite.expectations import Expectations, default_expectations_dir
from . import sections
from .diff import ALPHA, compare_results
from .page import Block, render_html, render_markdown
from .planted import planted_blocks
from .results import Results, load_results


def build_report(results_dir: "str | Path", out: "str | Path | None" = None, baseline: "str | Path | None" = None,
                 expectations_dir: "str | Path | None" = None,
                 loaded: "dict[Path, dict[str, pd.DataFrame]] | None" = None) -> list[Path]:
    """Write report.md, report.html and figures/ into ``out`` (default: the results folder); return the files.
    ``loaded``: tables already read from the folder's runs, handed over (``load_results``)."""
    results = load_results(results_dir, loaded)
    out = Path(out or results_dir)
    rules = Expectations(expectations_dir or default_expectations_dir()).rules
    blocks = _blocks(results, out, rules, load_results(baseline) if baseline else None)
    atomic_write_bytes(out / "report.md", render_markdown(blocks).encode())
    atomic_write_bytes(out / "report.html", render_html(blocks).encode())
    return [out / "report.md", out / "report.html", *sorted((out / "figures").glob("*.png"))]


def _blocks(results: Results, out: Path, rules: list[dict], baseline: "Results | None") -> list[Block]:
    blocks: list[Block] = [("h", 1, f"mgbench report: {', '.join(results.runs) or 'bench'}")]
    blocks += _random_weights(results)
    blocks += planted_blocks(results)
    blocks += sections.claims(results, _random_models(results))
    blocks += _settings(results, out)
    blocks += _few_prompts(results)
    for model in results.runs:
        blocks.append(("h", 2, f"Figures: {model}"))
        for experiment in catalog.EXPERIMENTS:
            if results.of(experiment.name, model).empty:
                continue
            section = sections.MODEL_SECTIONS.get(experiment.name)
            blocks += (section(results, model, rules, out) if section
                       else sections.summary_section(experiment, results, model, out))
    blocks += sections.across_models(results, rules, out)
    blocks += _bench(results.bench, out)
    if baseline is not None:
        blocks += _diff(results, baseline, out)
    blocks += _listening(results.folder, out)
    return blocks


#: the settings the report shows per model (every setting is in each run's run.json and in the settings CSV)
SETTINGS = ("prompts", "seconds", "seed", "dtype", "device", "backend", "recognizer", "classifier", "batch_size")


def _settings(results: Results, out: Path) -> list[Block]:
    rows = [{"model": m, **{k: v for k, v in info.items() if k not in ("versions", "selection", "planted")},
             **info.get("versions", {})} for m, info in results.runs.items()]
    if not rows:
        return []
    table = pd.DataFrame(rows).set_index("model")
    shown = table[[c for c in (*SETTINGS, "mgbench") if c in table.columns]]
    return [("h", 2, "Settings"), ("table", shown), sections.saved(table.astype(str), out, "settings", "every setting")]


def _few_prompts(results: Results) -> list[Block]:
    """A caveat when some run has fewer prompts per concept than the bootstrap intervals need."""
    tables = [results.table(e.name) for e in catalog.EXPERIMENTS]
    counts = [table.groupby(["model", "concept" if "concept" in table else "original"]).prompt_id.nunique()
              for table in tables if not table.empty and "prompt_id" in table]
    fewest = min((int(c.min()) for c in counts), default=FEW_PROMPTS)
    if fewest >= FEW_PROMPTS:
        return []
    measured = ", ".join(f"{100 * c:.0f}% at {n}" for n, c in SMALL_SAMPLE_COVERAGE.items())
    return [("p", f"Intervals: 95% bootstrap intervals over prompts (column n). This run has as few as {fewest} "
                  f"prompts per concept, too few for them: they are too narrow (a 95% interval held the true mean "
                  f"of normal data {measured} prompts). Read them as rough; use {FEW_PROMPTS} or more prompts "
                  "for claims.")]


def _random_models(results: Results) -> list[str]:
    """The runs whose model has random weights (``random_weights`` in their run.json)."""
    return [model for model, info in results.runs.items() if info.get("random_weights")]


def _random_weights(results: Results) -> list[Block]:
    models = _random_models(results)
    if not models:
        return []
    return [("p", f"Random weights: {', '.join(models)}. Their numbers are meaningless; they exercise the "
                  "machinery and measure its speed, they say nothing about MusicGen.")]


def _bench(bench: pd.DataFrame, out: Path) -> list[Block]:
    if bench.empty:
        return []
    bench = bench.reindex(columns=sorted(set(bench.columns) | {"value_lo", "value_hi", "low", "high", "source",
                                                               "outcome"}))  # (older bench.csv lack some)
    cases = bench.drop_duplicates("case")
    counts = cases.groupby(["experiment", "outcome"]).size().unstack(fill_value=0)
    failed = bench[(bench.outcome == "failed") & bench.low.notna()
                   & ((bench.value < bench.low) | (bench.value > bench.high))]
    blocks: list[Block] = [("h", 2, "Bench outcome"), ("table", counts)]
    if not failed.empty:
        failed = failed.assign(outside=((failed.value - failed.high).clip(lower=0)
                                        + (failed.low - failed.value).clip(lower=0)))
        listed = failed.sort_values("outside", ascending=False)[
            ["case", "metric", "value", "value_lo", "value_hi", "low", "high", "source"]].set_index("case")
        blocks += [("h", 3, f"Failed ranges ({len(failed)})"),
                   *sections.listing(listed, out, "failed-ranges", "failed ranges, farthest outside first")]
    speed = bench[bench.experiment == "speed"]
    if not speed.empty:
        blocks += [("h", 3, "Speed"), ("table", speed.pivot_table(index="case", columns="metric", values="value"))]
    return blocks


def _diff(results: Results, baseline: Results, out: Path) -> list[Block]:
    compared = compare_results(results, baseline)
    changed = compared[compared.changed]
    one_sided = compared[compared.before.isna() ^ compared.after.isna()]
    tested = int(compared.p.notna().sum())
    text = (f"{tested} aggregate metrics compared with {baseline.folder} as paired differences over prompts (rows "
            "matched on their ids, prompt_id included; paired t-test); Benjamini-Hochberg adjusted p-values control "
            f"the false discovery rate at {ALPHA:g}. "
            + (f"{len(changed)} changed significantly." if len(changed) else "None changed significantly.")
            + (f" {len(one_sided)} exist in one run only." if len(one_sided) else "")
            + " Listed: the changed ones by the size of their change, those in one run only, then the 5 unchanged ones "
              "nearest to significance.")
    changed = changed.reindex(changed.delta.abs().sort_values(ascending=False).index)
    listed = pd.concat([changed, one_sided, compared[~compared.changed].dropna(subset=["p"]).head(5)])
    return [("h", 2, "Changes since the baseline"), ("p", text),
            *(sections.listing(listed, out, "diff", "listed aggregates") if len(listed) else []),
            sections.saved(compared, out, "diff-all", "every compared aggregate")]


#: listening examples shown in the report (every one is in its CSV)
LISTENED = 12


def _listening(results_folder: Path, out: Path) -> list[Block]:
    indexes = sorted([results_folder / "audio" / "examples.csv", *results_folder.glob("*/audio/examples.csv")])
    frames = []
    for index_path in (p for p in indexes if p.exists()):
        run = index_path.parent.parent
        rel = lambda p, run=run: os.path.relpath(run / p, out)  # noqa: E731
        index = pd.read_csv(index_path)
        frames.append(index.assign(pair=index.original + " -> " + index.desired,
                                   site=index.technique + " L" + index.layer.astype(str) + "." + index.component,
                                   intervened=index.path.map(rel), baseline=index.baseline_path.map(rel)))
    if not frames:
        return []
    rows = pd.concat(frames, ignore_index=True)[["model", "pair", "kind", "site", "prompt_id", "effect", "intervened",
                                                 "baseline"]]
    shown = rows[rows.kind == "best"].sort_values("effect", ascending=False).head(LISTENED)
    return [("h", 2, "Listening examples"), ("p", f"For each pair, the best and the worst intervention by effect "
             f"among the first prompts, next to the same prompt's baseline (same sampling noise): the {len(shown)} "
             f"best of the {len(rows)} examples here, every one in the linked table."),
            ("audio", shown), sections.saved(rows, out, "listening", "every example")]
