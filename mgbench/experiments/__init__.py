"""The paper's experiments as tidy tables: one row per prompt and measurement.

``session`` (one model + classifier + settings, and its concept passes), ``store`` (the keyed cache),
``resume`` (compute only missing rows), ``metrics`` (NDCG, effect, precision, self-similarity as pure
functions), ``decoderlens``, ``interventions``, ``pipeline`` (``mgbench run``'s selection and tables),
``planning`` (``mgbench plan``). Imports ``model``, ``classify``, ``concepts`` and the top-level helpers.
"""
