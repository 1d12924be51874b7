"""The experiments as tidy tables: one row per prompt and measurement, each experiment declared once.

``experiment`` (what an experiment and a bench case kind are), ``catalog`` (the declaration list: one module per
experiment, with its rows, grid, summaries and cases), ``selection`` (which rows a run asks for), ``session`` (one
model + classifier + settings, and its concept passes), ``store`` (the keyed cache), ``resume`` (compute only
missing rows, backing off on out-of-memory), ``metrics`` (NDCG, effect, precision, self-similarity as pure
functions), ``summaries`` (aggregates with intervals), ``techniques``, ``claims`` (the paper's), ``cuts`` and
``pairs`` (what several experiments share), ``listening`` (WAV examples), ``pipeline`` (``mgbench run`` and the
bench: run a selection, write a results folder), ``tables`` (a results folder's tables read back, text as
categoricals), ``planning`` (``mgbench plan``), ``shards`` and ``workers`` (scale-out). Imports ``backends``,
``perf``, ``lens``, ``engine``, ``zoo``, ``classify``, ``concepts``, ``stats`` and the top-level helpers.
"""
