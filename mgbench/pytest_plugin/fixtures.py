"""What a bench test calls: the ``bench`` fixture (a case's metrics, recorded and checked against its expected
range, or a claim's or a planted truth's verdict) and ``bench_record`` (numbers a benchmark measured)."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest

from ..experiments.experiment import Case, Verdict
from ..suite.cases import get_kind, split_intervals
from .state import STATE, BenchState


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> "CaseChecker":
    return CaseChecker(request.config.stash[STATE], request)


@pytest.fixture
def bench_record(request: pytest.FixtureRequest):
    """``bench_record(case_id, **metrics)``: add measured numbers (speed, memory) to bench.csv and JUnit XML."""
    state = request.config.stash[STATE]

    def record(case_id: str, **metrics: float) -> None:
        request.node.user_properties.append(("mgbench_case", case_id))
        for metric, value in metrics.items():
            request.node.user_properties.append((metric, value))
            state.records.append({"case": case_id, "experiment": "speed", "metric": metric, "value": float(value)})

    return record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Remember each case's outcome for bench.csv and the report."""
    report = yield
    if report.when == "call" or (report.when == "setup" and report.skipped):
        props = dict(report.user_properties)
        if "mgbench_case" in props:
            item.config.stash[STATE].outcomes[props["mgbench_case"]] = report.outcome
    return report


class CaseChecker:
    """What a bench test calls: compute the case's metrics, record them, check them."""

    def __init__(self, state: BenchState, request: pytest.FixtureRequest):
        self.state, self.request = state, request

    def _skip_if_unavailable(self, case: Case) -> None:
        self.request.node.user_properties.append(("mgbench_case", case.id))
        if self.state.shard is not None:
            pytest.skip(f"{case.id}: {self.state.run_shard(case.size)}; run the bench without --shard to check")
        reason = self.state.unavailable(case.size)
        if reason:
            pytest.skip(f"{case.size}: {reason}")
        missing = self.state.missing(case)
        if missing:
            pytest.skip(f"{case.id}: {missing} (--no-compute computes nothing)")

    def metrics(self, case: Case) -> dict[str, float]:
        """The case's metrics and their interval bounds (computing its size's planned work on first use), recorded.

        Only the point metrics are kept as the case's golden values (``--update-expectations``).
        """
        self._skip_if_unavailable(case)
        values = {k: float(v) for k, v in self.state.case_metrics(case).items()}
        self.state.metrics[case.id] = split_intervals(values)[0]
        for metric, value in values.items():
            self.request.node.user_properties.append((metric, value))
        return values

    def check(self, case: Case, values: dict[str, float]) -> None:
        """Fail with value, interval, range and source for every metric outside its expected range.

        A metric's ``_lo``/``_hi`` bounds in ``values`` are recorded beside it (``value_lo``, ``value_hi``); a paper
        range passes when they overlap the reading band (Range.failure), golden values check the point.
        """
        ranges, why_none = self.state.expectations.ranges(case, self.state.settings(case.size))
        points, bounds = split_intervals(values)
        failures = []
        for metric, value in points.items():
            matching = [r for r in ranges if r.metric == metric]
            lo, hi = bounds.get(metric, (None, None))
            self.state.records.append({"case": case.id, "experiment": case.experiment, "size": case.size,
                                       **{k: v for k, v in asdict(case).items() if k not in ("experiment", "size")},
                                       "metric": metric, "value": value, "value_lo": lo, "value_hi": hi,
                                       "low": min((r.bounds((lo, hi))[0] for r in matching), default=None),
                                       "high": max((r.bounds((lo, hi))[1] for r in matching), default=None),
                                       "source": "; ".join(r.source for r in matching) or why_none})
            failures += [f for f in (r.failure(value, (lo, hi)) for r in matching) if f]
        if failures:
            pytest.fail(f"{case.id}: " + "; ".join(failures), pytrace=False)

    def verdict(self, case: Case) -> Verdict:
        """A verdict case's verdict (a claim of the paper, a planted truth), its numbers recorded; skipped with the
        numbers when the rows cannot decide it."""
        self._skip_if_unavailable(case)
        wanted = sorted({size for size, _ in get_kind(case.experiment).wants(case, self.state.concepts)})
        missing = [s for s in wanted if s != case.size and self.state.unavailable(s)]
        if missing:
            pytest.skip(f"needs every size; unavailable: {', '.join(missing)}")
        verdict = get_kind(case.experiment).verdict(case, self.state.size_tables)
        metrics = getattr(verdict, "metrics", {}) or {"verdict": math.nan if verdict.holds is None
                                                      else float(verdict.holds)}
        if verdict.holds is not None:
            self.state.metrics[case.id] = dict(metrics)
        for metric, value in metrics.items():
            self.request.node.user_properties.append((metric, value))
            self.state.records.append({"case": case.id, "experiment": case.experiment, "size": case.size,
                                       "technique": case.technique, "layer": case.layer, "claim": case.claim,
                                       "metric": metric, "value": float(value), "source": verdict.detail})
        self.request.node.user_properties.append(("verdict", verdict.label))
        if verdict.holds is None:
            pytest.skip(f"{case.id}: {verdict.label}: {verdict.detail}")  # inconclusive, or rows missing
        return verdict
