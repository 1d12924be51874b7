"""Paper ranges know the noise: a case passes when its measured 95% interval overlaps the reading +- the reading
error; the fixed widening is only the fallback for a metric without an interval. Golden values check the point."""

import json
import math
from types import SimpleNamespace

import pytest

from mgbench.errors import ConfigError
from mgbench.experiments.experiment import Case
from mgbench.pytest_plugin.fixtures import CaseChecker
from mgbench.suite.expectations import Expectations, default_expectations_dir

RULE = {"experiment": "decoderlens", "size": "small", "concept": "guitar", "layers": "0-3", "metric": "ndcg",
        "reading": [0.25, 0.35], "reading_error": 0.05, "tolerance": 0.15, "source": "Figure 2"}
CASE = Case("decoderlens", "small", concept="guitar", layer=2, parts=("guitar", "L2"))
NAN = (math.nan, math.nan)


def expectations(tmp_path, rules=(RULE,)) -> Expectations:
    (tmp_path / "paper.json").write_text(json.dumps({"rules": list(rules)}))
    return Expectations(tmp_path)


def paper_range(tmp_path):
    (found,) = expectations(tmp_path).paper_ranges(CASE)
    return found


def test_shipped_rules_carry_the_reading_error_of_readings_md_and_a_wider_fallback():
    rules = Expectations(default_expectations_dir()).rules
    assert rules
    for rule in rules:
        assert rule["reading_error"] == (0.1 if rule["metric"].startswith("effect") else 0.05)
        assert rule["tolerance"] > rule["reading_error"]


@pytest.mark.parametrize("value, interval, passes", [
    (0.42, (0.38, 0.46), True),    # point outside the band [0.20, 0.40], interval overlaps it: within noise
    (0.47, (0.41, 0.53), False),   # the whole interval is above the band
    (0.30, (0.29, 0.31), True),
    (0.12, (0.05, 0.199), False),  # the whole interval is below the band
    (0.12, (0.05, 0.20), True),    # touching counts as overlapping
    (0.45, NAN, True),             # no interval: the point within the widening [0.10, 0.50]
    (0.52, NAN, False),
    (0.45, None, True),
])
def test_paper_range_passes_when_the_interval_overlaps_the_reading_band(tmp_path, value, interval, passes):
    found = paper_range(tmp_path)
    assert (found.low, found.high) == pytest.approx((0.20, 0.40))
    failure = found.failure(value, interval)
    assert (failure is None) == passes
    if not passes and interval is not NAN:
        assert f"95% interval [{interval[0]:.4f}, {interval[1]:.4f}] does not overlap [0.2000, 0.4000]" in failure
    if not passes and interval is NAN:
        assert "outside [0.1000, 0.5000]" in failure and "no interval, fixed widening" in failure


def test_golden_ranges_check_the_point_even_when_the_interval_overlaps(tmp_path):
    (tmp_path / "tiny.json").write_text(json.dumps({"settings": {}, "values": {"tiny-x": {"ndcg": 0.3}}}))
    case = SimpleNamespace(id="tiny-x")
    (golden,) = Expectations(tmp_path).golden_ranges(case)
    assert golden.failure(0.3, (0.0, 1.0)) is None
    assert "ndcg = 0.3100 outside" in golden.failure(0.31, (0.0, 1.0))


def checker(tmp_path) -> tuple[CaseChecker, list]:
    records = []
    state = SimpleNamespace(expectations=expectations(tmp_path), settings=lambda size: {}, records=records)
    return CaseChecker(state, request=None), records


def test_case_check_records_the_band_it_used_and_fails_naming_the_interval(tmp_path):
    check, records = checker(tmp_path)
    check.check(CASE, {"ndcg": 0.42, "ndcg_lo": 0.38, "ndcg_hi": 0.46})
    assert (records[-1]["value_lo"], records[-1]["low"], records[-1]["high"]) == pytest.approx((0.38, 0.20, 0.40))
    with pytest.raises(pytest.fail.Exception, match=r"interval \[0.4100, 0.5300\] does not overlap"):
        check.check(CASE, {"ndcg": 0.47, "ndcg_lo": 0.41, "ndcg_hi": 0.53})


def test_case_check_without_an_interval_uses_the_documented_widening(tmp_path):
    check, records = checker(tmp_path)
    check.check(CASE, {"ndcg": 0.45, "ndcg_lo": math.nan, "ndcg_hi": math.nan})
    assert (records[-1]["low"], records[-1]["high"]) == pytest.approx((0.10, 0.50))
    with pytest.raises(pytest.fail.Exception, match="no interval, fixed widening"):
        check.check(CASE, {"ndcg": 0.52})


def test_a_rule_without_reading_error_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="wrong shape.*reading_error"):
        expectations(tmp_path, [{k: v for k, v in RULE.items() if k != "reading_error"}])
