"""Numbers with uncertainty: bootstrap intervals over prompts, paired tests, verdicts and power.

``intervals``: a mean's bootstrap interval, tidy aggregates with ``*_lo``/``*_hi`` columns (resampling
prompts), paired differences with a p-value (unpaired ones for samples of other prompts); ``verdicts``:
holds / fails / inconclusive, and changes flagged under Benjamini-Hochberg control; ``power``: the
smallest difference a paired design resolves. Imports only numpy, pandas, scipy and ``errors``.
"""
