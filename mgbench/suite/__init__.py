"""The bench suite's content: what is checked, independent of pytest.

``cases`` (one case per test id, the rows it needs, its metrics), ``expectations`` (paper ranges and
tiny golden values), ``claims`` (the paper's claims as checks on tables), ``ground_truth`` (does a run
recover the mechanism planted in the toy world?). The pytest wiring lives in ``mgbench.pytest_plugin``.
Imports ``experiments`` and below.
"""
