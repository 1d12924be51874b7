"""The model zoo: MusicGen by name, hub id or folder, and what is known of each without its weights.

``loading`` (load by name; content identities; facts from a configuration; the hooks a loaded model carries for
life), ``architectures`` (the published sizes' shapes, ``ModelFacts``), ``tiny`` and ``random_sizes`` (the offline
random models, built from a seed). Imports ``concepts`` (the tiny tokenizer's vocabulary), ``errors``, ``paths``,
``quiet``, ``seeding``.
"""
