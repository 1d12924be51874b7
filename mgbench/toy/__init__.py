"""The toy world (issue 11, in progress): a MusicGen world whose concepts and mechanism are known.

``world`` (slot words -> audio codes, and a synth that sounds them), ``codec`` (a small EnCodec trained
to play the synth), ``classifier`` (a small PaSST trained to hear the concepts), ``musicgen`` (the toy
MusicGen, whose text enters only through one layer's cross-attention). Imports ``model``,
``classify``, ``concepts`` and the top-level helpers; nothing above ``experiments`` imports it.
"""
