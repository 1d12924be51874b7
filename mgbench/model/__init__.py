"""The engine: load MusicGen, generate audio from prompts, with edits and captures at named sites.

``architectures`` (published sizes), ``loading`` (by name, hub id or folder), ``tiny`` (the offline
model), ``runner`` (prompts -> audio), ``sampling`` (common random numbers), ``sites`` and ``hooks``
(where and how to intervene), ``batching`` (rows per call, out-of-memory back-off), ``cost`` (FLOPs
and the hardware limit). Imports ``concepts`` (the tiny tokenizer's vocabulary), ``errors``, ``paths``.
"""
