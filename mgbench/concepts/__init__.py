"""What is measured: the concepts (Table 1), their prompts, and the classes they are scored on.

``concept_set``: concepts and prompts loaded from a JSON file (``data/concepts.json`` by default), each with its
AudioSet labels and/or a text; ``audioset``: the AudioSet classes in logit order; ``recognition``: which score
columns of a recognizer (PaSST's 527 AudioSet logits, CLAP's logits over the concepts' texts) each concept is.
Imports only ``errors`` and the shipped data.
"""
