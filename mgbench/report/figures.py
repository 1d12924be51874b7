"""Our versions of the paper's figures (matplotlib PNGs), each with the paper's expected values drawn in.

Every function takes the tidy tables of one model, draws, saves to ``path`` and returns the table of
numbers behind the plot (for the report to print under it). Curves carry their 95% bootstrap intervals
over prompts as shaded bands, bars as error bars (``stats.with_intervals``); the returned tables are
tidy, indexed by their keys, with ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` and ``n`` (prompts).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..stats.intervals import with_intervals  # noqa: E402

STYLE = {"replace": "-", "adjust": "--"}
BAND_ALPHA = 0.2  # our 95% intervals: translucent bands; the paper's readings: hatched boxes
COMPONENT_COLORS = {"mlp": "tab:blue", "self_attn": "tab:orange", "cross_attn": "tab:green"}


def _layer_span(spec: str) -> tuple[int, int]:
    lo, _, hi = str(spec).partition("-")
    return int(lo), int(hi or lo)


def _rules(rules: list[dict], **match) -> list[dict]:
    return [r for r in rules if all(r.get(k) == v for k, v in match.items())]


def _reading_bounds(rule: dict) -> tuple[float, float]:
    reading = rule["reading"] if isinstance(rule["reading"], list) else [rule["reading"]] * 2
    return min(reading), max(reading)


def _draw_reading(ax, rule: dict, color: str) -> None:
    """A paper reading: a hatched box over its layers, or a diamond for a single value."""
    lo, hi = _layer_span(rule["layers"])
    low, high = _reading_bounds(rule)
    if low == high:
        ax.plot([(lo + hi) / 2], [low], "D", color=color, mfc="none", ms=6)
    else:
        ax.add_patch(Rectangle((lo - 0.3, low), hi - lo + 0.6, high - low, facecolor="none", edgecolor=color,
                               hatch="///", lw=0.5, alpha=0.6))


def layer_ticks(*axes) -> None:
    """Whole-number ticks on layer axes (``axes``: matplotlib axis objects, e.g. ``ax.xaxis``): a layer 1.5 does
    not exist."""
    for axis in axes:
        axis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def lens_figure(dl: pd.DataFrame, model: str, rules: list[dict], path: Path,
                       tuned: "pd.DataFrame | None" = None) -> pd.DataFrame:
    """Figure 2: mean NDCG per layer with its 95% band, instruments and genres; paper readings hatched. With
    ``tuned`` (the ``tunedlens`` rows) each concept's tuned-lens curve is drawn dashed beside its cut's."""
    table = with_intervals(dl, ["concept", "layer"], "ndcg")
    lens = with_intervals(tuned, ["concept", "layer"], "ndcg") if tuned is not None and not tuned.empty else None
    categories = dl.drop_duplicates("concept").set_index("concept").category
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, category in zip(axes, ("instrument", "genre")):
        concepts = [c for c in dict.fromkeys(table.concept) if categories.get(c) == category]
        for i, concept in enumerate(concepts):
            color, curve = f"C{i}", table[table.concept == concept]
            ax.plot(curve.layer, curve.ndcg, color=color, label=concept, marker=".")
            ax.fill_between(curve.layer, curve.ndcg_lo, curve.ndcg_hi, color=color, alpha=BAND_ALPHA, lw=0)
            if lens is not None and concept in set(lens.concept):
                tuned_curve = lens[lens.concept == concept]
                ax.plot(tuned_curve.layer, tuned_curve.ndcg, color=color, ls="--", marker="x",
                        label=f"{concept} (tuned)")
            for rule in _rules(rules, size=model, concept=concept):
                _draw_reading(ax, rule, color)
        ax.set(title=f"{category}s ({model})", xlabel="layer", ylabel="NDCG")
        layer_ticks(ax.xaxis)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle("DecoderLens recognizability (bands: 95% intervals over prompts; hatched and diamonds: the paper's "
                 "Figure 2 readings" + ("; dashed: tuned lens)" if lens is not None else ")"))
    _save(fig, path)
    if lens is None:
        return table.set_index(["concept", "layer"])
    return pd.concat({"cut": table, "tuned lens": lens}, names=["lens"]).reset_index(0).set_index(
        ["lens", "concept", "layer"])


def distance_figure(sim: pd.DataFrame, model: str, path: Path, concepts: tuple[str, ...] = ("guitar", "edm")
                      ) -> pd.DataFrame:
    """Figure 3: Euclidean distance between time-averaged layer outputs, averaged over prompts."""
    shown = [c for c in concepts if c in set(sim.concept)] or sorted(set(sim.concept))[:2]
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4), squeeze=False)
    for ax, concept in zip(axes[0], shown):
        matrix = sim[sim.concept == concept].pivot(index="layer_i", columns="layer_j", values="distance")
        image = ax.imshow(matrix.to_numpy(), cmap="viridis")
        ax.set(title=f"{concept} ({model})", xlabel="layer", ylabel="layer")
        layer_ticks(ax.xaxis, ax.yaxis)
        fig.colorbar(image, ax=ax, shrink=0.8)
    _save(fig, path)
    last = sim[(sim.layer_i == sim.layer_i.max()) & (sim.layer_j != sim.layer_i)]
    return last.groupby("concept").distance.mean().to_frame("mean distance of the last layer to the others")


def profile_figure(iv: pd.DataFrame, model: str, rules: list[dict], path: Path) -> pd.DataFrame:
    """Figure 4 (7, 8): effect and precision per layer, component and technique, with 95% bands; paper readings
    hatched."""
    table = with_intervals(iv, ["technique", "component", "layer"], ["effect", "precision"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, metric in zip(axes, ("effect", "precision")):
        for (technique, component), curve in table.groupby(["technique", "component"]):
            color = COMPONENT_COLORS.get(component, "gray")
            ax.plot(curve.layer, curve[metric], STYLE.get(technique, ":"), color=color,
                    label=f"{component} {technique}")
            ax.fill_between(curve.layer, curve[f"{metric}_lo"], curve[f"{metric}_hi"], color=color,
                            alpha=BAND_ALPHA / 2, lw=0)  # up to six bands overlap here
            for rule in _rules(rules, size=model, technique=technique, component=component,
                               metric=metric):
                _draw_reading(ax, rule, color)
        ax.set(title=f"{metric} ({model})", xlabel="layer")
        layer_ticks(ax.xaxis)
        ax.axhline(0, color="black", lw=0.5)
    axes[0].legend(fontsize=7)
    fig.suptitle("Interventions by layer (solid: replace, dashed: adjust; bands: 95% intervals over prompts; "
                 "hatched and diamonds: paper readings)")
    _save(fig, path)
    return table.set_index(["technique", "component", "layer"]).round(3)


def heatmap_figure(table: pd.DataFrame, rows: list[str], metric: str, title: str, path: Path) -> None:
    """A heat map of ``metric`` in ``table`` (a tidy aggregate with a ``layer`` column): one row per combination of
    ``rows``, one column per layer, the value in colour (the numbers are in the report's CSV)."""
    grid = table.pivot_table(index=rows, columns="layer", values=metric, aggfunc="mean", observed=True)
    fig, ax = plt.subplots(figsize=(min(14, 3 + 0.25 * grid.shape[1]), 1.2 + 0.3 * grid.shape[0]))
    image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    labels = [" ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in grid.index]
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns], fontsize=6)
    ax.set(title=title, xlabel="layer")
    fig.colorbar(image, ax=ax, shrink=0.8, label=metric)
    _save(fig, path)


def bie(iv: pd.DataFrame) -> pd.DataFrame:
    """MLP effect and precision at the beginning, intermediate layers and end, per model and technique."""
    mlp = iv[iv.component == "mlp"]
    rows = []
    for (model, technique), g in mlp.groupby(["model", "technique"]):
        by_layer = g.groupby("layer")[["effect", "precision"]].mean()
        for point, part in (("b", by_layer.iloc[:1]), ("i", by_layer.iloc[1:-1]), ("e", by_layer.iloc[-1:])):
            rows.append((model, technique, point, part.effect.mean(), part.precision.mean()))
    return pd.DataFrame(rows, columns=["model", "technique", "point", "effect", "precision"])


def effect_precision_figure(iv: pd.DataFrame, paper: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Figure 5: MLP effect vs precision (b/i/e points) per model and technique; paper points hollow."""
    ours = bie(iv)
    fig, ax = plt.subplots(figsize=(6, 5))
    for i, ((model, technique), g) in enumerate(ours.groupby(["model", "technique"])):
        ax.plot(g.effect, g.precision, "o" + STYLE[technique], color=f"C{i}", label=f"{model}-{technique}")
        for _, r in g.iterrows():
            ax.annotate(r.point, (r.effect, r.precision), fontsize=8)
        ref = paper[(paper.model == model) & (paper.technique == technique)]
        ax.plot(ref.effect, ref.precision, "o", mfc="none", color=f"C{i}")
    ax.set(xlabel="effect", ylabel="precision (-KL)", title="MLP effect vs precision (hollow: paper)")
    ax.legend(fontsize=7)
    _save(fig, path)
    return ours.round(3)


def pair_type_figure(iv: pd.DataFrame, model: str, technique: str, rules: list[dict], path: Path) -> pd.DataFrame:
    """Figures 6 (replace) and 9 (adjust): MLP effect by pair type, combined and its two parts, with 95% error
    bars."""
    metrics = ["effect", "effect_original", "effect_desired"]
    mlp = iv[(iv.component == "mlp") & (iv.technique == technique)]
    table = with_intervals(mlp, "pair_type", metrics).set_index("pair_type")
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for j, metric in enumerate(metrics):
        xs = [i + (j - 1) * width for i in range(len(table))]
        ax.bar(xs, table[metric], width, label=metric)
        lo, hi = table[f"{metric}_lo"], table[f"{metric}_hi"]  # (BCa need not be symmetric about the mean)
        ax.errorbar(xs, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none", ecolor="dimgray", capsize=3, lw=1)
        for x, pt in zip(xs, table.index):
            for rule in _rules(rules, size=model, technique=technique, pair_type=pt,
                               metric=metric):
                ax.plot([x - width / 2, x + width / 2], [rule["reading"]] * 2, color="black", lw=2)
    ax.set_xticks(range(len(table)), table.index, fontsize=8)
    ax.axhline(0, color="black", lw=0.5)
    ax.set(title=f"MLP {technique} by pair type ({model}; error bars: 95% intervals over prompts; black: paper)",
           ylabel="effect")
    ax.legend(fontsize=7)
    _save(fig, path)
    return table.round(3)


def paper_bie(rules: list[dict]) -> pd.DataFrame:
    """Figure 5's paper points from the MLP profile readings: layer 0, the middle layers, the last layer."""
    rows = []
    for rule in _rules(rules, component="mlp"):
        lo, hi = _layer_span(rule["layers"])
        point = "b" if hi == 0 else ("i" if lo != hi else "e")
        low, high = _reading_bounds(rule)
        rows.append((rule["size"], rule["technique"], point, rule["metric"], (low + high) / 2))
    table = pd.DataFrame(rows, columns=["model", "technique", "point", "metric", "value"])
    if table.empty:
        return pd.DataFrame(columns=["model", "technique", "point", "effect", "precision"])
    return table.pivot_table(index=["model", "technique", "point"], columns="metric", values="value").reset_index()
