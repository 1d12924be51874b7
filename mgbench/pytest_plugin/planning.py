"""Which cases a bench session runs and what they need: a ``test_<kind>`` test is parametrized with the kind's cases
for every model of the session (the kinds are the experiments' declarations); after collection and ``-k``
deselection, the chosen cases become one selection per model and experiment; the real-size cases need a GPU."""

from __future__ import annotations

import pytest

from ..experiments.experiment import Case
from ..suite.cases import enumerate_cases, kinds, selections
from ..zoo.architectures import REAL_SIZES
from .state import STATE


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    kind = metafunc.function.__name__.removeprefix("test_")
    if kind not in kinds():
        raise pytest.UsageError(f"bench test {metafunc.function.__name__} names no kind of case; call it test_<one "
                                f"of {', '.join(kinds())}>")
    state = metafunc.config.stash[STATE]
    cases = [c for size in state.sizes_of(kind) for c in enumerate_cases(kind, size, state.concepts)]
    metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Plan from the final selection (this runs after ``-k``/``-m`` deselection)."""
    state = config.stash[STATE]
    params = [getattr(item, "callspec", None) and item.callspec.params.get("case") for item in items]
    for item, case in zip(items, params):
        if isinstance(case, Case) and case.size in REAL_SIZES and not state.no_compute:
            item.add_marker("gpu")  # (with --no-compute the tables come from elsewhere)
    state.selections = selections([c for c in params if isinstance(c, Case)], state.concepts)
    if any({"bench", "bench_record"} & set(getattr(item, "fixturenames", ())) for item in items):
        check_expectations(state)  # before any work: a damaged file or a refused update is a usage error


def check_expectations(state) -> None:
    """Read the expectations, and refuse an update that would drop golden values made with other settings."""
    expectations, settings = state.expectations, state.settings("tiny")
    if state.update_golden and not state.replace_golden and "tiny" in state.selections \
            and expectations.conflicts(settings):
        raise pytest.UsageError(
            f"{expectations.golden_path} holds {len(expectations.golden)} golden values made with "
            f"{expectations.golden_settings}; this run uses {settings}. Rerun with those settings to update "
            f"them, or use --replace-expectations to start the file anew with these settings (keeps none)")


def gpu_skip_reason(config: pytest.Config) -> "str | None":
    """Why a ``gpu`` item cannot run in this session (None: it can); the one place that decides it for every kind of
    bench case and benchmark."""
    if not config.getoption("--gpu", False):
        return "needs --gpu (CUDA)"
    if config.getoption("--no-compute", False):
        return "--no-compute computes nothing"
    import torch

    if not torch.cuda.is_available():
        return "--gpu was given but torch sees no CUDA device"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("computes") is not None and item.config.getoption("--no-compute", False):
        pytest.skip("--no-compute computes nothing (this test loads a model)")
    if item.get_closest_marker("gpu") is not None:
        reason = gpu_skip_reason(item.config)
        if reason:
            pytest.skip(reason)
