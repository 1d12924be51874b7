"""AudioSet classifiers: waveforms in, 527 logits out.

``passt`` (the paper's PaSST through hear21passt, and PaSSTs saved to a folder), ``tiny`` (the offline
one), ``loading`` (by name, and the ``AudioClassifier`` interface any other classifier implements).
Imports ``concepts`` (the label count), ``errors``, ``paths``; never the engine.
"""
