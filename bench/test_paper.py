"""The paper's experiments as bench cases (ids: size, concept(s), layer, component, technique).

Run ``pytest bench/`` for the tiny suite on CPU; ``pytest bench/ --gpu -k "small and mlp"`` for real
checkpoints. Every case records its metrics and checks them against ``expectations/``.
"""


def test_decoderlens(case, bench):
    """Mean NDCG over prompts of a concept's clips with the decoder cut after layer L (Figure 2)."""
    bench.check(case, bench.metrics(case))


def test_similarity(case, bench):
    """Distance of the last layer's output to the others vs among the others (Figure 3)."""
    bench.check(case, bench.metrics(case))


def test_intervention(case, bench):
    """One ordered pair, technique and site: effect, its two parts and precision over prompts."""
    bench.check(case, bench.metrics(case))


def test_profile(case, bench):
    """One technique and site averaged over all ordered pairs (Figures 4, 7, 8)."""
    bench.check(case, bench.metrics(case))


def test_pair_type(case, bench):
    """MLP interventions by pair type, averaged over layers (Figures 6, 9)."""
    bench.check(case, bench.metrics(case))


def test_claim(case, bench):
    """A claim of the paper's text, with a holds/fails verdict."""
    verdict = bench.verdict(case)
    assert verdict.holds, f"{case.id}: the paper's claim fails here: {verdict.detail}"


def test_ground_truth(case, bench):
    """A toy world's planted mechanism, recovered at the entries its planted.json names: silent no-path sites, each
    category's entry first and apart, the lens at chance before the entry and above it at the full model
    (suite/ground_truth.py)."""
    result = bench.verdict(case)
    assert result.holds, f"{case.id}: the planted truth is not recovered: {result.detail}"


def test_tunedlens(case, bench):
    """Mean NDCG over prompts of a concept's clips with the decoder cut after layer L and its tuned-lens translator
    (beyond the paper; recorded, no paper range)."""
    bench.check(case, bench.metrics(case))


def test_localization(case, bench):
    """Which method finds a planted world's mechanism (beyond the paper, experiments/localization.py): attribution
    patching ranks the sites as the replace interventions do, for far fewer decoder forwards, and each site-level
    method ranks the planted entries above the other sites (AUROC)."""
    result = bench.verdict(case)
    assert result.holds, f"{case.id}: {result.detail}"
