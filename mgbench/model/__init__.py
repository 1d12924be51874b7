"""The engine: load MusicGen, generate audio from prompts, with edits and captures at named sites.

``architectures`` (published sizes), ``loading`` (by name, hub id or folder), ``tiny`` and ``random_sizes``
(the offline random models), ``runner`` (prompts -> audio: the ``Runner`` protocol and the transformers
runner), ``decode`` (mgbench's own decode loop), ``backends`` (transformers or audiocraft:
``audiocraft_runner``, ``audiocraft_lm``, ``audiocraft_keys``), ``sampling`` (common random numbers),
``sites`` and ``hooks`` (where and how to intervene), ``slots`` and ``taps`` (the persistent edit, capture and
cut hooks of a compiled step), ``stepper`` and ``workspace`` (the fixed-shape loop every pass of a compiled run
takes: text buckets, padded batches, one KV cache per shape), ``levers`` (optional speed levers), ``batching``
(rows per call, out-of-memory back-off), ``cost`` (FLOPs and the hardware limit), ``profile`` (where a step's
time goes), ``benchmark`` (how a device number is timed). Imports ``concepts`` (the tiny tokenizer's
vocabulary), ``errors``, ``paths``.
"""
