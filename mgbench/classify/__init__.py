"""Recognizers: waveforms in, logits out (527 AudioSet classes, or one per text for CLAP).

``passt`` (the paper's PaSST through hear21passt, and PaSSTs saved to a folder), ``tiny`` (the offline
one), ``loading`` (by name, and the ``AudioClassifier`` interface any other classifier implements);
``clap`` (zero-shot CLAP through transformers, scoring clips against texts) and ``tiny_clap`` (the offline one);
``waveforms`` (clips as a recognizer takes them). Imports ``concepts`` (the label count), ``errors``, ``paths``,
``quiet``, ``seeding``; never the engine.
"""
