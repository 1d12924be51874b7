"""The bench suite's pytest plugin (registered as ``mgbench`` through the ``pytest11`` entry point), one module per
role, as pytest's own plugins are: ``options`` (the command line), ``state`` (a session's plan, tables and records,
kept on ``config.stash``), ``planning`` (cases from the experiments' declarations, ``-k`` selection, which cases need
a GPU), ``fixtures`` (``bench`` and ``bench_record``: what a bench test calls) and ``finish`` (bench.csv, the results
folders, the report, golden values). The bench computes through the same pipeline as ``mgbench run``
(``experiments.pipeline``): the selected cases become selections, run, sharded (``--shard``) or spread over Ray
workers (``--workers``) alike. Imports every layer below.
"""

pytest_plugins = ["mgbench.pytest_plugin.options", "mgbench.pytest_plugin.planning",
                  "mgbench.pytest_plugin.fixtures", "mgbench.pytest_plugin.finish"]
