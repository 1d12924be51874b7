"""Experiment 2: interchange interventions, every ordered concept pair x technique x site x prompt.

For an original concept's prompt, the output of one site is replaced by the desired concept's mean
(``replace``) or shifted by alpha * (desired mean - original mean) (``adjust``, alpha 1 unless swept) at every
generation step, or only at the frames of a window, on the conditional rows (and the unconditional ones with
``both_halves``, using the unconditional means). The clip is compared with the same prompt's un-intervened clip,
which shares its sampling noise: effect = eq. (1) with its original and desired parts, precision = -KL(after ||
before).

Two optional row ids, present only when asked for (``--alphas``, ``--frames``), add a dimension to the grid:
``alpha`` (the strength of additive techniques) and ``frames`` (the window ``t0-t1``). Their rows are stored in a
table of their own (``store_table``), so rows without them keep their ids and store keys.

Its bench cases: one pair, technique and site (``intervention``), a technique and site over all pairs
(``profile``, Figures 4, 7, 8), MLP rows by pair type (``pair_type``, Figures 6, 9) and the paper's claims
(``claim``, ``claims.py``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..concepts.concept_set import ConceptSet, pair_type
from ..engine.hooks import RowEdit
from ..engine.sites import Site, all_sites
from ..zoo.architectures import REAL_SIZES
from .claims import CROSS_SIZE_CLAIMS, MODEL_CLAIMS
from .experiment import Aggregate, Case, CaseKind, Experiment, Tables, Verdict
from .listening import write_examples
from .pairs import against_baseline, fill_pair_table, selected_pairs
from .selection import Selection
from .session import Session
from .techniques import TECHNIQUES, UNSCALED

NAME = "interventions"
IDS = ["technique", "original", "desired", "layer", "component", "prompt_id"]
#: optional row ids (``--alphas``, ``--frames``), placed before ``prompt_id`` in this order when present
SWEEP_IDS = ("alpha", "frames")


def row_ids(table: pd.DataFrame) -> list[str]:
    """The id columns of intervention rows ``table``: ``IDS`` with the sweep ids it carries."""
    return [*IDS[:-1], *(c for c in SWEEP_IDS if c in table.columns), IDS[-1]]


def store_table(table: pd.DataFrame) -> str:
    """The stored table that holds rows with ``table``'s ids: ``interventions``, or e.g. ``interventions-alpha``."""
    return "-".join(["interventions", *(c for c in SWEEP_IDS if c in table.columns)])


def frames_text(frames: tuple[int, int]) -> str:
    """A window ``(t0, t1)`` as its row id, ``t0-t1``."""
    return f"{frames[0]}-{frames[1]}"


def make_edit(session: Session, technique: str, original: str, desired: str, site: Site, alpha: float = 1.0,
              frames: "tuple[int, int] | None" = None) -> RowEdit:
    """The edit that applies ``technique`` of strength ``alpha`` at ``site`` for the pair (original, desired),
    limited to ``frames`` when given."""
    rule = TECHNIQUES[technique]
    o_cond, o_uncond = session.means(session.concepts.get(original), site)
    d_cond, d_uncond = session.means(session.concepts.get(desired), site)
    mode, cond = rule(o_cond, d_cond, alpha)
    uncond = rule(o_uncond, d_uncond, alpha)[1] if session.config.both_halves and o_uncond is not None else None
    return RowEdit(site, mode, cond, uncond, frames)


def intervention_grid(concepts: list[str], techniques: list[str], sites: list[Site], prompts: int,
                      pairs: "list[tuple[str, str]] | None" = None, alphas: "tuple[float, ...] | None" = None,
                      frames: "tuple[int, int] | None" = None) -> pd.DataFrame:
    """Row ids of every (technique, ordered pair, site, prompt) to run; with ``alphas`` every additive technique's
    row at each alpha (an ``alpha`` column), with ``frames`` a ``frames`` column holding the window."""
    pairs = pairs if pairs is not None else [(o, d) for o in concepts for d in concepts if o != d]
    grid = pd.DataFrame([(t, o, d, s.layer, s.component, a, p) for t in techniques for o, d in pairs for s in sites
                         for a in ((1.0,) if alphas is None or t in UNSCALED else alphas) for p in range(prompts)],
                        columns=[*IDS[:-1], "alpha", IDS[-1]])
    if alphas is None:
        grid = grid.drop(columns="alpha")
    if frames is not None:
        grid.insert(len(grid.columns) - 1, "frames", frames_text(frames))
    return grid


class InterventionRows:
    """Computes rows of the intervention grid: one generate call and one classifier call per batch."""

    def __init__(self, session: Session):
        self.session = session
        self.edits: dict[tuple, RowEdit] = {}

    def edit(self, row) -> RowEdit:
        """The edit of an intervention row (a named tuple with the ``IDS`` columns and any sweep ids)."""
        alpha, frames = float(getattr(row, "alpha", 1.0)), getattr(row, "frames", None)
        key = (row.technique, row.original, row.desired, row.layer, row.component, alpha, frames)
        if key not in self.edits:  # means are computed once per concept and reused by every pair
            site = Site(row.layer, row.component).validate(self.session.facts.num_layers)
            window = None if frames is None else tuple(int(t) for t in frames.split("-"))
            self.edits[key] = make_edit(self.session, row.technique, row.original, row.desired, site, alpha, window)
        return self.edits[key]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        session = self.session
        rows = list(batch.itertuples(index=False))
        prompts = [session.prompts(r.original)[r.prompt_id] for r in rows]
        edits = [self.edit(r) for r in rows]
        after = session.classify(session.runner.generate(prompts, edits=edits))
        return batch.assign(**against_baseline(session, rows, after))


def run_interventions(session: Session, wanted: pd.DataFrame) -> pd.DataFrame:
    """Compute (or read from the store) the rows of ``wanted`` (see ``intervention_grid``).

    Rows of any pairs, techniques, sites and strengths share a batch: each row carries its own prompt and edit.
    """
    return fill_pair_table(session, store_table(wanted), wanted, row_ids(wanted), InterventionRows(session))


def selection_grid(session: Session, selection: Selection) -> pd.DataFrame:
    """The intervention rows a selection wants."""
    sites = all_sites(session.facts.num_layers, selection.components,
                      list(selection.layers) if selection.layers else None)
    return intervention_grid([], list(selection.techniques), sites, session.config.prompts,
                             selected_pairs(session, selection), selection.alphas, selection.frames)


# -- bench cases -------------------------------------------------------------------------------------------------
PAIR_TYPES = ("instrument->instrument", "genre->genre", "instrument->genre", "genre->instrument")
EFFECTS = ("effect", "effect_original", "effect_desired")


def _pairs(concepts: ConceptSet) -> list[tuple[str, str]]:
    return [(o, d) for o in concepts.names for d in concepts.names if o != d]


def _intervention_cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
    return [Case("intervention", size, technique=t, original=o, desired=d, layer=s.layer, component=s.component,
                 parts=(t, f"{o}-to-{d}", str(s)))
            for t in TECHNIQUES for o, d in _pairs(concepts) for s in all_sites(layers)]


def _profile_cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
    return [Case("profile", size, technique=t, layer=s.layer, component=s.component, parts=(t, str(s)))
            for t in TECHNIQUES for s in all_sites(layers)]


def _pair_type_cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
    return [Case("pair_type", size, technique=t, pair_type=p, parts=(t, p.replace("->", "-to-")))
            for t in TECHNIQUES for p in PAIR_TYPES]


def _claim_cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
    """The paper's claims are about the paper's models, not random tiny or toy ones."""
    if size not in REAL_SIZES:
        return []
    claims = [*MODEL_CLAIMS, *(CROSS_SIZE_CLAIMS if size == REAL_SIZES[-1] else [])]
    return [Case("claim", size, claim=c, parts=(c,)) for c in claims]


def _wants(case: Case, concepts: ConceptSet) -> list[tuple[str, Selection]]:
    if case.experiment == "intervention":
        return [(case.size, Selection((NAME,), pairs=((case.original, case.desired),), techniques=(case.technique,),
                                      components=(case.component,), layers=(case.layer,)))]
    if case.experiment == "profile":
        return [(case.size, Selection((NAME,), techniques=(case.technique,), components=(case.component,),
                                      layers=(case.layer,)))]
    if case.experiment == "pair_type":
        pairs = tuple((o, d) for o, d in _pairs(concepts)
                      if pair_type(concepts.get(o), concepts.get(d)) == case.pair_type)
        return [(case.size, Selection((NAME,), pairs=pairs, techniques=(case.technique,), components=("mlp",)))]
    sizes = REAL_SIZES if case.claim in CROSS_SIZE_CLAIMS else (case.size,)
    return [(size, Selection((NAME,))) for size in sizes]


def _verdict(case: Case, tables: Tables) -> Verdict:
    if case.claim in CROSS_SIZE_CLAIMS:
        return CROSS_SIZE_CLAIMS[case.claim](pd.concat([tables(size)[NAME] for size in REAL_SIZES]))
    return MODEL_CLAIMS[case.claim](tables(case.size)[NAME])


def _outputs(session: Session, table: pd.DataFrame, out: Path, listen: int) -> tuple[dict[str, pd.DataFrame],
                                                                                   list[Path]]:
    """Listening examples: per pair the best and worst intervention among the first ``listen`` prompts."""
    if listen <= 0 or table.empty:
        return {}, []
    examples = write_examples(session, table, InterventionRows(session).edit, out, prompts=listen)
    return {}, [out / p for p in [*examples.path, *sorted(set(examples.baseline_path))]]


def _mlp(table: pd.DataFrame) -> pd.Series:
    return table.component == "mlp"


EXPERIMENT = Experiment(
    name=NAME, ids=tuple(IDS),
    columns=("model", "technique", "original", "desired", "pair_type", "layer", "component", "prompt_id",
             *EFFECTS, "precision"),
    grid=selection_grid, rows=run_interventions, table=store_table, pairs=True, outputs=_outputs,
    summary=(Aggregate("profile", ("technique", "component", "layer"), ("effect", "precision"), sweeps=SWEEP_IDS,
                       key=lambda t: t.technique + "-L" + t.layer.astype(str) + "." + t.component),
             Aggregate("pair_type", ("technique", "pair_type"), EFFECTS, where=_mlp, sweeps=SWEEP_IDS,
                       key=lambda t: t.technique + "-" + t.pair_type)),
    cases=(CaseKind("intervention", _intervention_cases, _wants, NAME,
                    Aggregate("intervention", tuple(IDS[:-1]), (*EFFECTS, "precision"))),
           CaseKind("profile", _profile_cases, _wants, NAME,
                    Aggregate("profile", ("technique", "layer", "component"), ("effect", "precision"))),
           CaseKind("pair_type", _pair_type_cases, _wants, NAME,
                    Aggregate("pair_type", ("technique", "pair_type"), EFFECTS, where=_mlp)),
           CaseKind("claim", _claim_cases, _wants, verdict=_verdict)))
