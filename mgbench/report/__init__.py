"""What is shown: results folders read back, figures, listening examples, diffs, the rendered report.

``results`` (load a results folder), ``figures`` (the paper's figures from tables), ``listening``
(WAV examples), ``audio`` (WAV writing), ``diff`` (against a baseline run), ``render`` (report.md and
report.html). Imports ``suite`` (claims, expected ranges), ``experiments`` and below.
"""
