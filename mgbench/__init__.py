"""mgbench: a benchmark and regression suite for the inner mechanisms of MusicGen."""

__version__ = "0.1.0"
