"""The paper's experiments as tidy tables: one row per prompt and measurement.

``session`` (one model + classifier + settings, and its concept passes), ``store`` (the keyed cache),
``resume`` (compute only missing rows), ``metrics`` (NDCG, effect, precision, self-similarity as pure
functions), ``decoderlens``, ``tunedlens`` (DecoderLens through a trained lens), ``interventions``, ``pipeline``
(``mgbench run``'s selection and tables), ``planning`` (``mgbench plan``), ``shards`` and ``workers``
(scale-out). Imports ``lens``, ``model``, ``classify``, ``concepts`` and the top-level helpers.
"""
