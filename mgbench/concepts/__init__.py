"""What is measured: the concepts (Table 1), their prompts, and the 527 AudioSet labels they are scored on.

``concept_set``: concepts and prompts loaded from a JSON file (``data/concepts.json`` by default);
``audioset``: the AudioSet classes in logit order. Imports only ``errors`` and the shipped data.
"""
