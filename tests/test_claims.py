import itertools

import numpy as np
import pandas as pd

from mgbench.experiments.claims import (
    MODEL_CLAIMS,
    instrument_beats_genre,
    large_replace_best_precision,
    last_layer_best,
    mlp_positive_attention_weaker,
    original_part_larger,
)


def synthetic(mlp_by_layer=(1.0, 1.5, 1.6, 2.0), attn=-0.5, orig_share=0.9, instrument_bonus=0.5, model="small"):
    rows = []
    for technique, component, layer, pt, prompt in itertools.product(
            ["replace", "adjust"], ["mlp", "self_attn", "cross_attn"], range(4),
            ["instrument->instrument", "genre->genre", "instrument->genre", "genre->instrument"], range(3)):
        effect = mlp_by_layer[layer] if component == "mlp" else attn
        effect += instrument_bonus if pt.startswith("instrument") else 0.0
        original = "guitar" if pt.startswith("instrument") else "jazz"
        rows.append(dict(model=model, technique=technique, component=component, layer=layer, pair_type=pt,
                         original=original, prompt_id=prompt,
                         effect=effect, effect_original=orig_share * effect, effect_desired=(1 - orig_share) * effect,
                         precision=-0.8 if technique == "replace" else -1.0))
    return pd.DataFrame(rows)


def test_claims_hold_on_paper_like_numbers():
    table = synthetic()
    assert all(check(table).holds for check in MODEL_CLAIMS.values())
    assert "first 1.25" in last_layer_best(table).detail


def test_claims_fail_when_the_pattern_is_broken():
    assert not mlp_positive_attention_weaker(synthetic(mlp_by_layer=(-1.0, 1, 1, 1))).holds
    assert not mlp_positive_attention_weaker(synthetic(attn=0.2, mlp_by_layer=(0.1, 0.1, 0.1, 0.1))).holds
    assert not last_layer_best(synthetic(mlp_by_layer=(2.0, 1.5, 1.6, 1.0))).holds
    assert not original_part_larger(synthetic(orig_share=0.5)).holds
    assert not instrument_beats_genre(synthetic(instrument_bonus=-0.5)).holds


def test_cross_size_precision_claim():
    tables = pd.concat([synthetic(model=m) for m in ("small", "medium", "large")])
    tables.loc[(tables.model == "large") & (tables.technique == "replace"), "precision"] = -0.7
    assert large_replace_best_precision(tables).holds
    tables.loc[(tables.model == "small") & (tables.technique == "adjust"), "precision"] = -0.1
    verdict = large_replace_best_precision(tables)
    assert not verdict.holds and verdict.detail.startswith("best: small-adjust")
    assert np.isfinite(tables.precision).all()


def test_claims_on_a_narrow_selection_say_what_they_cannot_judge():
    table = synthetic()
    one_layer = table[table.layer == 1]
    verdict = last_layer_best(one_layer)
    assert verdict.holds is None and verdict.label == "cannot judge" and "not enough layers to judge" in verdict.detail
    attention_only = table[(table.component == "cross_attn") & (table.layer == 0)]
    for check in MODEL_CLAIMS.values():
        assert check(attention_only).holds is None, check.__name__
        assert check(attention_only.iloc[:0]).holds is None, check.__name__
    assert mlp_positive_attention_weaker(one_layer).holds  # one layer is enough for this claim
    assert not last_layer_best(synthetic(mlp_by_layer=(2.0, 1.5, 1.6, 1.0))[lambda t: t.layer != 2]).holds
    assert large_replace_best_precision(synthetic(model="small")).holds is None


def test_a_failing_part_outweighs_one_that_cannot_be_judged():
    table = synthetic(mlp_by_layer=(2.0, 1.5, 1.6, 1.0))
    mixed = table[(table.technique == "replace") | (table.layer == 0)]  # adjust: MLP at one layer only
    verdict = last_layer_best(mixed)
    assert verdict.holds is False and verdict.label == "fails"
    assert "adjust: not enough layers" in verdict.detail and "replace: first" in verdict.detail
