"""Beyond the paper: DecoderLens through a tuned lens. The cut after layer ``i`` is followed by layer ``i``'s
trained translator (``lens.TunedLens``) before the final norm and heads. The translators are fitted on the
model's own generations of every concept's last prompts (``lens.training``), once per store key, and kept in
the store; ``write_lens`` saves them next to a run's tables."""

from __future__ import annotations

import weakref
from pathlib import Path

import pandas as pd
import torch

from ..lens.training import LensTraining, fit_lens, record_states
from ..lens.translators import TunedLens
from .cuts import COLUMNS, IDS, cut_rows, last_layer, lens_kind, lens_summary, needs_passes, selection_grid
from .experiment import Experiment
from .session import Session

NAME = "tunedlens"
TRAINING = LensTraining()
LENS_FILE = "tuned_lens.safetensors"
FIT_COLUMNS = ["layer", "kl_cut", "kl_tuned", "states"]
_FITTED: "weakref.WeakKeyDictionary[Session, dict[LensTraining, tuple[TunedLens, pd.DataFrame]]]" = \
    weakref.WeakKeyDictionary()


def training_prompts(session: Session, training: LensTraining = TRAINING) -> list[str]:
    """The last ``prompts_per_concept`` prompts of every concept in the set (the runs use the first ones)."""
    return [p for c in session.concepts.concepts for p in
            session.concepts.prompts(c.name)[-training.prompts_per_concept:]]


def tuned_lens(session: Session, training: LensTraining = TRAINING) -> tuple[TunedLens, pd.DataFrame]:
    """The session's lens and its fit (per layer: KL to the final layer of the plain cut and of the lens), read
    from the store or trained and stored; kept in memory for the session after the first call (a run asks for it
    for its rows, its fit table and its lens file)."""
    fitted = _FITTED.setdefault(session, {})
    if training not in fitted:
        fitted[training] = _load_or_fit(session, training)
    return fitted[training]


def _load_or_fit(session: Session, training: LensTraining) -> tuple[TunedLens, pd.DataFrame]:
    meta = {"tuned_lens": training.as_dict()}
    cached = session.store.load_tensors("tuned-lens", meta)
    if cached is None:
        c = session.config  # uncompiled: a compiled step would skip the recording hooks
        runner = session.backend.runner(session.musicgen, c.generation, c.resolved_text_padding, c.engine, None)
        states = record_states(runner, training_prompts(session, training), session.batch_size,
                               training.frames_per_clip)
        lens, fit = fit_lens(session.musicgen, states, training)
        cached = {**{f"lens/{k}": v for k, v in lens.state_dict().items()},
                  **{f"fit/{c}": torch.tensor(fit[c].to_numpy()) for c in FIT_COLUMNS}}
        session.store.save_tensors("tuned-lens", cached, meta)
    lens = TunedLens.from_state({k.removeprefix("lens/"): v for k, v in cached.items() if k.startswith("lens/")})
    fit = pd.DataFrame({c: cached[f"fit/{c}"].numpy() for c in FIT_COLUMNS}).astype({"layer": int, "states": int})
    return lens.to(session.musicgen.device).requires_grad_(False), fit


def run_tunedlens(session: Session, wanted: pd.DataFrame) -> pd.DataFrame:
    """The cut rows of ``wanted`` with the tuned lens after each cut (``cuts.cut_rows``)."""
    return cut_rows(session, wanted, NAME, tuned_lens(session)[0])


def write_lens(session: Session, out: Path) -> Path:
    """The session's lens as ``out/tuned_lens.safetensors``, with what it was trained on."""
    lens, fit = tuned_lens(session)
    path = out / LENS_FILE
    lens.save(path, {"model": session.config.model, "model_identity": session.musicgen.identity,
                     "training": TRAINING.as_dict(), "fit": fit.to_dict("records")})
    return path


def _outputs(session: Session, table: pd.DataFrame, out: Path, listen: int) -> tuple[dict[str, pd.DataFrame],
                                                                                   list[Path]]:
    """The lens' fit per layer (a table of its own) and its translators, next to the rows they made."""
    fit = tuned_lens(session)[1].assign(model=session.config.model)[["model", *FIT_COLUMNS]]
    return {f"{NAME}_fit": fit}, [write_lens(session, out)]


EXPERIMENT = Experiment(
    name=NAME, ids=tuple(IDS), columns=COLUMNS, grid=selection_grid, rows=run_tunedlens, free=last_layer,
    passes=needs_passes, requires=frozenset({"decoder layers"}), outputs=_outputs, cases=(lens_kind(NAME, ("tuned",)),),
    summary=(lens_summary(NAME),))
