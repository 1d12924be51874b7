"""The engine: generate audio from prompts with a loaded MusicGen, with edits and captures at named sites.

``runner`` (prompts -> audio: the ``Runner`` protocol, settings, the transformers runner), ``decode`` (mgbench's own
decode loop), ``sampling`` (common random numbers), ``sites`` and ``hooks`` (where and how to intervene), ``slots``
(the persistent edit hooks of a compiled step), ``batching`` (rows per call from memory). Imports ``zoo`` (the loaded
model, its facts), ``errors``.
"""
