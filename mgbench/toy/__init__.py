"""The toy worlds: MusicGen worlds whose concepts and mechanisms are known (``docs/toy-world.md``).

``world`` (slot words -> audio codes, and a synth that sounds them), ``codec`` (a small EnCodec trained
to play the synth), ``classifier`` (a small PaSST trained to hear the concepts), ``recipe`` (where the text
enters: ``--entry SITE[:CATEGORIES]``, and every site's role), ``text`` (the per-token block text side that
isolates restricted entries exactly), ``musicgen`` (the toy MusicGen, whose text enters only through its
entries' cross-attentions), ``planted`` (the planted truth read off the weights), ``build`` (``mgbench toy
build``) and ``checks`` (classifier accuracy and prompt following, the latter through an ``experiments``
session as a run measures it). Imports ``experiments``, ``model``, ``classify``, ``concepts`` and the
top-level helpers; only ``cli`` imports it (the trained worlds ship in ``data/toy`` and load by name
through ``model`` and ``classify``).
"""
