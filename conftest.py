"""The project's own tests (``tests/``, ``bench/``): tests that need an optional extra are marked
``@pytest.mark.extra("audiocraft")`` (or ``"ray"``) and skip with one line saying how to install it where it is
missing; ``pytest -m extra`` selects them (``.ci/run`` runs them in a step of their own, with the extras)."""

from importlib.util import find_spec

import pytest

pytest_plugins = ["pytester"]  # tests/test_declaration.py runs a bench session in-process

#: extra -> (the module it provides, how to install it)
EXTRAS = {
    "audiocraft": ("audiocraft", 'pip install -e ".[audiocraft]" && pip install --no-deps audiocraft==1.3.0'),
    "ray": ("ray", 'pip install -e ".[ray]"'),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "extra(name): needs the optional extra NAME (audiocraft, ray); skipped with "
                                       "one line where it is not installed")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("extra"):
        module, install = EXTRAS[mark.args[0]]
        if find_spec(module) is None:
            pytest.skip(f"needs the {mark.args[0]} extra, which is not installed: {install}")
