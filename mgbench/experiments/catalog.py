"""The declaration list: every experiment mgbench runs (``experiment.Experiment``), in the order runs compute and
reports show them. Add an experiment by writing its module with an ``EXPERIMENT`` and adding it here; ``mgbench
run``, ``mgbench plan``, shards, workers, the bench and the report pick it up.
"""

from __future__ import annotations

from dataclasses import replace

from ..backends import Backend
from ..engine.sites import COMPONENTS, all_sites
from ..errors import ConfigError, unknown
from . import ceiling, decoderlens, interventions, localization, similarity, tunedlens
from .experiment import CaseKind, Experiment
from .selection import Selection, check_clip_length
from .session import Session
from .techniques import TECHNIQUES, UNSCALED

EXPERIMENTS: list[Experiment] = [decoderlens.EXPERIMENT, similarity.EXPERIMENT, interventions.EXPERIMENT,
                                 ceiling.EXPERIMENT, tunedlens.EXPERIMENT, localization.EXPERIMENT]


def names() -> tuple[str, ...]:
    return tuple(e.name for e in EXPERIMENTS)


def get(name: str) -> Experiment:
    """The experiment called ``name``; a one-line error listing them all."""
    for experiment in EXPERIMENTS:
        if experiment.name == name:
            return experiment
    raise unknown("experiment", name, names())


def case_kinds() -> list[CaseKind]:
    """Every experiment's bench case kinds."""
    return [kind for experiment in EXPERIMENTS for kind in experiment.cases]


def default_experiments(backend: Backend) -> tuple[str, ...]:
    """Every default experiment ``backend`` can run (what a selection without experiments runs)."""
    return tuple(e.name for e in EXPERIMENTS if e.default and e.requires <= backend.capabilities)


def selected(session: Session, selection: Selection) -> list[Experiment]:
    """The selection's experiments, in the declaration order (all the backend runs when it names none)."""
    chosen = selection.experiments if selection.experiments is not None else default_experiments(session.backend)
    for name in chosen:
        get(name)
    return [e for e in EXPERIMENTS if e.name in chosen]


def validate(session: Session, selection: Selection) -> Selection:
    """A one-line error for anything the session cannot run, before any generation; otherwise the selection, its
    experiments named."""
    experiments = selected(session, selection)
    for experiment in experiments:
        for capability in sorted(experiment.requires):
            session.backend.require(capability, f"the {experiment.name} experiment",
                                    f"{experiment.name} from --experiments")
    for t in selection.techniques:
        if t not in TECHNIQUES:
            raise unknown("technique", t, list(TECHNIQUES))
    for c in selection.components:
        if c not in COMPONENTS or c == "resid":
            raise unknown("component", c, [c for c in COMPONENTS if c != "resid"])
    session.concepts.select(list(selection.concepts or []))  # unknown or repeated names are one-line errors
    for concept in {c for pair in selection.pairs or [] for c in pair}:
        session.concepts.get(concept)
    concepts = session.concepts.select(selection.concept_names(session.concepts.names))
    for concept in concepts:
        session.prompts(concept.name)  # raises when the concept has fewer prompts than asked for
    paired = [e.name for e in experiments if e.pairs]
    if len(concepts) < 2 and paired:
        raise ConfigError(f"{' and '.join(paired)}: at least two concepts are needed (an original and a "
                          "desired one)")
    all_sites(session.facts.num_layers, selection.components, list(selection.layers) if selection.layers else None)
    check_clip_length(session.facts, session.config.generation, session.config.model)
    if selection.alphas is not None and all(t in UNSCALED for t in selection.techniques):
        scaled = ", ".join(t for t in TECHNIQUES if t not in UNSCALED)
        raise ConfigError(f"--alphas scales {scaled}; {', '.join(selection.techniques)} has no strength: add "
                          f"{scaled} to --techniques")
    if selection.frames is not None:
        check_frames(session, selection.frames)
    return replace(selection, experiments=tuple(e.name for e in experiments))


def check_frames(session: Session, frames: tuple[int, int]) -> None:
    """A frame window needs uncompiled edits on a backend with frame windows, and must start within the clip."""
    c = session.config
    if c.compile_mode is not None:
        raise ConfigError(f"--frames runs edits uncompiled (compiled edit slots edit every frame): drop --compile "
                          f"{c.compile_mode} or --frames")
    session.backend.require("frame windows", "--frames", "--frames")
    steps = session.facts.steps(c.generation.seconds)
    if frames[0] >= steps:
        raise ConfigError(f"--frames {frames[0]}-{frames[1]} starts after the clip: a {c.generation.seconds:g} s clip "
                          f"has decode steps 0 to {steps - 1}")
