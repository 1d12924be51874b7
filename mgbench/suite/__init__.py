"""The bench suite's content: what is checked, independent of pytest.

``cases`` (one case per test id, the rows it needs, its metrics), ``expectations`` (paper ranges and
tiny golden values), ``stored`` (a results folder's tables for ``--no-compute``), ``planted`` (a world's truth
per category, from its ``planted.json``), ``ground_truth`` (does a run recover the mechanism planted in
a toy world, wherever it sits?), ``power`` (how often a correct world passes each check). The pytest
wiring lives in ``mgbench.pytest_plugin``. Imports ``experiments`` and below.
"""
