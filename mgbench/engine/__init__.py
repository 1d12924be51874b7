"""The engine: generate audio from prompts with a loaded MusicGen, with edits and captures at named sites.

``runner`` (prompts -> audio: the ``Runner`` protocol, settings, the transformers runner), ``decode`` (mgbench's own
decode loop), ``stepper`` and ``workspace`` (the fixed-shape loop every pass of a compiled run takes: text buckets,
padded batches, one KV cache per shape), ``levers`` (optional speed levers), ``sampling`` (common random numbers),
``sites`` and ``hooks`` (where and how to intervene), ``slots`` and ``taps`` (the persistent edit, capture and cut
hooks of a compiled step), ``batching`` (rows per call from memory; out of memory recognised). Imports ``zoo`` (the
loaded model, its facts), ``errors``.
"""
