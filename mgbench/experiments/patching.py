"""Patching several sites at once: a ranking's faithfulness curve, and the isolation of a world's entries.

**Faithfulness** (MIB's, adapted): for a pair (original -> desired) and a budget ``k``, the original prompt is
generated with its ranking's top ``k`` sites replaced by the desired concept's means (the replace intervention at
``k`` sites at once, the original prompt's sampling noise), and the clip's effect (eq. 1, against the baseline clip)
is divided, as in MIB, by that of patching every site (``faithfulness``: 1 when the top ``k`` carry all of it),
each a mean over prompts. The curve over ``k / n_sites`` and its area (trapezoids, divided by the span of
``k / n_sites`` covered) say how much of the whole patch a method's top sites carry. The prompt-swap ceiling is kept
beside it (``ceiling``): it is the natural reference of an effect, but not a bound (an entry's replace reaches 4x
the ceiling on a pair whose swap keeps the original concept, ``toy``'s classical->piano), so dividing each pair by
it would let one pair dominate the mean.

**Isolation**: in a world where two categories enter at different sites, steering one category at its entry (replace
by the desired concept's mean, on pairs within the category) should leave the other category's recognition as it
was. Reported: the other category's recognition rate (its prompt's concept top among the category's concepts) with
and without the edit, each with its Clopper-Pearson interval, and their difference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from ..engine.hooks import RowEdit, edit_hooks, installed
from ..engine.sites import Site
from .interventions import make_edit
from .pairs import against_baseline
from .rankings import ranked_sites
from .session import Session

#: site budgets of the faithfulness curve (those below the model's site count, and the site count: every site)
BUDGETS = (1, 2, 3, 6)


def patched_logits(session: Session, prompt: str, edits: list[RowEdit]) -> torch.Tensor:
    """Classifier logits ``(1, classes)`` of ``prompt``'s clip with every edit of ``edits`` (one per site) applied."""
    layers = session.musicgen.decoder_layers
    hooks = [hook for edit in edits for hook in edit_hooks(layers, [edit], session.runner.guided)]
    with installed(hooks):
        return session.classify(session.runner.generate([prompt]))


def patched_effect(session: Session, original: str, desired: str, prompt_id: int, sites: list[Site]) -> float:
    """The effect of replacing ``sites`` at once with the desired concept's means on an original prompt."""
    edits = [make_edit(session, "replace", original, desired, site) for site in sites]
    after = patched_logits(session, session.prompts(original)[prompt_id], edits)
    row = pd.DataFrame([(original, desired, prompt_id)], columns=["original", "desired", "prompt_id"])
    return float(against_baseline(session, list(row.itertuples(index=False)), after)["effect"][0])


def faithfulness_rows(session: Session, scores: dict[str, pd.DataFrame], pairs: list[tuple[str, str]],
                      ceiling: pd.DataFrame, budgets: "tuple[int, ...]" = BUDGETS) -> pd.DataFrame:
    """Per (method, pair, budget ``k``): the mean effect over prompts of patching the method's top ``k`` sites, the
    pair's mean ceiling effect, and ``faithfulness``, the effect over that of patching every site. Patches of the
    same site set are run once (every method's last budget patches every site)."""
    done: dict[tuple, float] = {}
    rows = []
    for method, table in scores.items():
        for o, d in pairs:
            ranking = ranked_sites(table, o, d)
            swap = ceiling[(ceiling.original == o) & (ceiling.desired == d)].effect.mean()
            for k in [*(b for b in budgets if b < len(ranking)), len(ranking)]:
                effects = []
                for p in range(session.config.prompts):
                    key = (o, d, p, frozenset(ranking[:k]))
                    if key not in done:
                        done[key] = patched_effect(session, o, d, p, ranking[:k])
                    effects.append(done[key])
                rows.append((method, o, d, k, k / len(ranking), float(np.mean(effects)), swap))
    out = pd.DataFrame(rows, columns=["method", "original", "desired", "k", "fraction_sites", "effect", "ceiling"])
    whole = out.groupby(["method", "original", "desired"])["effect"].transform("last")
    return out.assign(faithfulness=out.effect / whole)


def curve_area(fraction_sites: "pd.Series | np.ndarray", faithfulness: "pd.Series | np.ndarray") -> float:
    """The area under a faithfulness curve by trapezoids, divided by the span of site fractions it covers."""
    x, y = np.asarray(fraction_sites, dtype=float), np.asarray(faithfulness, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if len(x) > 1 else float(y[0])


def prompt_concept(session: Session, concept: str, prompt_id: int, category: str) -> str:
    """The concept of ``category`` that prompt ``prompt_id`` of ``concept`` names (its slot's word)."""
    members = session.concepts.members(category)
    word = session.concepts.fills(concept, prompt_id + 1)[prompt_id][members[0].slot]
    return next(c.name for c in members if c.word == word)


def recognized_rate(hits: list[bool]) -> tuple[float, float, float, int]:
    """(rate, Clopper-Pearson 95% lo, hi, n) of a list of successes."""
    k, n = int(sum(hits)), len(hits)
    ci = binomtest(k, n).proportion_ci(0.95)
    return k / n, float(ci.low), float(ci.high), n


def isolation_rows(session: Session, planted: dict) -> pd.DataFrame:
    """For each two categories entering at different sites: steer the first at its entry (replace, every pair of its
    concepts, every prompt) and measure the second's recognition with and without the edit. Empty for a world with
    one entry."""
    concepts, seen = session.concepts, session.recognition
    entries = {c: e["site"] for e in planted["entries"] for c in e["categories"]}
    rows = []
    for steered, site in entries.items():
        for measured, other in entries.items():
            if measured == steered or other == site:
                continue
            members = [c.name for c in concepts.members(steered)]
            before, after = [], []  # each baseline clip once; each (pair, prompt)'s edited clip
            for o in members:
                for p, prompt in enumerate(session.prompts(o)):
                    target = concepts.get(prompt_concept(session, o, p, measured))
                    before.append(seen.recognized(session.concept_pass(concepts.get(o)).logits[p], target))
                    after += [seen.recognized(patched_logits(session, prompt, [make_edit(
                        session, "replace", o, d, Site.parse(site))])[0], target) for d in members if d != o]
            for label, hits in (("without", before), ("with", after)):
                rate, lo, hi, n = recognized_rate(hits)
                rows.append(dict(steered=steered, site=site, measured=measured, edit=label, value=rate, lo=lo,
                                 hi=hi, n=n))
    return pd.DataFrame(rows, columns=["steered", "site", "measured", "edit", "value", "lo", "hi", "n"])
