"""Steering strength (``mgbench run --alphas``): effect and precision against alpha per site, and the smallest
alpha that reaches a chosen effect.

The rule of ``smallest_alpha``: per technique and site, the smallest alpha of the swept grid whose mean effect
(over every pair and prompt of the site, prompts averaged first as in ``stats.with_intervals``) is at least the
target. It is read off the grid, not interpolated (a finer grid gives a finer answer), and it is the first
crossing in increasing alpha, so a curve that rises, falls and rises again reports its first rise. The report's
target is the prompt-swap ceiling's mean effect when the run has one ("as strong as asking for the concept in the
prompt"), else ``TARGET_EFFECT``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..experiments.techniques import UNSCALED  # noqa: E402
from ..stats.intervals import with_intervals  # noqa: E402
from .figures import BAND_ALPHA, COMPONENT_COLORS, _save  # noqa: E402

#: the effect ``smallest_alpha`` asks for when the run has no prompt-swap ceiling
TARGET_EFFECT = 1.0
SITE_KEYS = ["technique", "component", "layer"]


def alpha_curves(steering: pd.DataFrame) -> pd.DataFrame:
    """Mean effect and precision per technique, site and alpha, with 95% intervals over prompts (the rows of the
    techniques that have a strength)."""
    scaled = steering[~steering.technique.isin(UNSCALED)]
    return with_intervals(scaled, [*SITE_KEYS, "alpha"], ["effect", "precision"])


def smallest_alpha(steering: pd.DataFrame, target: float = TARGET_EFFECT) -> pd.DataFrame:
    """Per technique and site: the smallest swept alpha whose mean effect reaches ``target`` (the module's rule),
    that mean effect, and ``reached`` (False, with alpha and effect nan, where no alpha of the grid reaches it)."""
    rows = []
    for key, curve in alpha_curves(steering).groupby(SITE_KEYS, sort=True):
        hits = curve[curve.effect >= target].sort_values("alpha")
        first = hits.iloc[0] if len(hits) else None
        rows.append({**dict(zip(SITE_KEYS, key)), "target": target, "reached": first is not None,
                     "alpha": float("nan") if first is None else first.alpha,
                     "effect": float("nan") if first is None else first.effect})
    return pd.DataFrame(rows, columns=[*SITE_KEYS, "target", "reached", "alpha", "effect"])


def alpha_figure(steering: pd.DataFrame, model: str, path: Path) -> pd.DataFrame:
    """Effect and precision against alpha, one curve per site (95% bands); returns the numbers."""
    table = alpha_curves(steering)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, metric in zip(axes, ("effect", "precision")):
        for (technique, component, layer), curve in table.groupby(SITE_KEYS):
            color = COMPONENT_COLORS.get(component, "gray")
            shade = 0.4 + 0.6 * (layer + 1) / (table.layer.max() + 1)  # later layers darker
            ax.plot(curve.alpha, curve[metric], "o-", color=color, alpha=shade,
                    label=f"{technique} L{layer}.{component}")
            ax.fill_between(curve.alpha, curve[f"{metric}_lo"], curve[f"{metric}_hi"], color=color,
                            alpha=BAND_ALPHA / 2, lw=0)
        ax.set(title=f"{metric} against alpha ({model})", xlabel="alpha (steering strength)")
        ax.axhline(0, color="black", lw=0.5)
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle("Steering strength: h + alpha * (desired mean - original mean) (bands: 95% intervals over prompts)")
    _save(fig, path)
    return table.set_index([*SITE_KEYS, "alpha"]).round(3)


def steering_blocks(steering: pd.DataFrame, ceiling: pd.DataFrame, model: str, fig_dir: Path) -> list[tuple]:
    """The report's section for a run that swept alpha: the figure, its numbers and the smallest alphas."""
    if steering.empty or steering[~steering.technique.isin(UNSCALED)].empty:
        return []
    target = float(ceiling.effect.mean()) if not ceiling.empty else TARGET_EFFECT
    source = "the prompt-swap ceiling's mean effect" if not ceiling.empty else "the default target"
    path = fig_dir / f"steering-alpha-{model}.png"
    table = alpha_figure(steering, model, path)
    smallest = smallest_alpha(steering, target).set_index(SITE_KEYS).round(3)
    return [("h", 3, "Steering strength: effect and precision against alpha"), ("img", path), ("table", table),
            ("p", f"Smallest alpha of the grid whose mean effect over pairs and prompts reaches {target:.3f} "
                  f"({source}); read off the grid, not interpolated, the first crossing in increasing alpha."),
            ("table", smallest)]
