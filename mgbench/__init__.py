"""mgbench: a benchmark and regression suite for the inner mechanisms of MusicGen.

The package reads from the bottom up (imports only point down; ``tests/test_architecture.py``
checks it):

- ``errors``, ``paths``, ``seeding``: user-facing errors; the home folder, atomic writes and content
  digests; random numbers that are the same on every CPU;
- ``concepts``: what is measured (concepts, prompts, AudioSet labels);
- ``model``, ``classify``: the engine (MusicGen with edits and captures at sites) and the classifiers;
- ``experiments``: DecoderLens, self-similarity and interventions as tidy tables, cached and resumable;
- ``suite``: bench cases, expected ranges and the paper's claims;
- ``report``: results folders, figures, listening examples, diffs, the rendered report;
- ``cli``, ``pytest_plugin``: the ``mgbench`` command and the bench suite's pytest wiring.

The public API below is imported lazily, so ``import mgbench`` stays cheap (no torch until used).
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

#: public name -> module that defines it
_API = {
    "MgbenchError": "mgbench.errors",
    "Concept": "mgbench.concepts.concept_set",
    "ConceptSet": "mgbench.concepts.concept_set",
    "load_concepts": "mgbench.concepts.concept_set",
    "LoadedMusicgen": "mgbench.zoo.loading",
    "load_musicgen": "mgbench.zoo.loading",
    "GenerationSettings": "mgbench.engine.runner",
    "MusicgenRunner": "mgbench.engine.runner",
    "Site": "mgbench.engine.sites",
    "load_classifier": "mgbench.classify.loading",
    "RunConfig": "mgbench.experiments.session",
    "Session": "mgbench.experiments.session",
    "Selection": "mgbench.experiments.selection",
    "Experiment": "mgbench.experiments.experiment",
    "EXPERIMENTS": "mgbench.experiments.catalog",
    "run_selection": "mgbench.experiments.pipeline",
    "write_results": "mgbench.experiments.pipeline",
    "TunedLens": "mgbench.lens.translators",
    "load_lens": "mgbench.lens.translators",
    "load_results": "mgbench.report.results",
    "build_report": "mgbench.report.render",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'mgbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
