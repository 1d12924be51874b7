"""The report's section of the localization benchmark (``experiments/localization.py``): which method finds the
planted mechanism, at what cost; a figure (AUROC of the planted entries, decoder forwards and faithfulness area per
method) and the table of every number."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .figures import _save  # noqa: E402
from .page import Block  # noqa: E402
from .results import Results  # noqa: E402

PANELS = (("auroc", "AUROC of the planted entries", False), ("forwards", "decoder forwards", True),
          ("faithfulness_auc", "faithfulness (area; / every site patched)", False))


def localization_figure(table: pd.DataFrame, model: str, path: Path) -> None:
    """Bars per method: the mean AUROC over pairs and the faithfulness area (95% intervals where they have one), and
    the decoder forwards (log scale)."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.2))
    for ax, (metric, title, log) in zip(axes, PANELS):
        rows = table[table.metric == metric]
        errors = [(rows.value - rows.lo).fillna(0).clip(lower=0), (rows.hi - rows.value).fillna(0).clip(lower=0)]
        ax.bar(rows.method, rows.value, yerr=errors, capsize=3, color="tab:blue")
        ax.set_title(f"{title} ({model})", fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        if log:
            ax.set_yscale("log")
    _save(fig, path)


def localization_section(results: Results, model: str, rules: list[dict], out: Path) -> list[Block]:
    """The figure and the table (every row; the ``detail`` column says what an isolation row measured)."""
    table = results.of("localization", model)
    path = out / "figures" / f"localization-{model}.png"
    localization_figure(table, model, path)
    shown = table.drop(columns=["model"]).round(4)
    return [("h", 3, f"Which method finds the mechanism, {model}"), ("img", path), ("table", shown)]
