"""The toy world: a MusicGen world whose concepts and mechanism are known (``docs/toy-world.md``).

``world`` (slot words -> audio codes, and a synth that sounds them), ``codec`` (a small EnCodec trained
to play the synth), ``classifier`` (a small PaSST trained to hear the concepts), ``musicgen`` (the toy
MusicGen, whose text enters only through one layer's cross-attention), ``build`` (``mgbench toy
build``) and ``checks`` (the planted truth read off the weights; accuracy and prompt following).
Imports ``model``, ``classify``, ``concepts`` and the top-level helpers; only ``cli`` imports it (the
trained world ships in ``data/toy`` and loads by name through ``model`` and ``classify``).
"""
