"""How concepts are read off a recognizer's scores: which score columns exist and which of them each concept is.

``passt``: an AudioSet classifier's 527 logits; a concept's relevant columns are its AudioSet labels (Table 1), the
first one its odds label. ``clap``: a zero-shot audio-text model's logits over the texts of the concept set, one
column per concept (its ``text``, else ``CLAP_TEMPLATE`` around its first AudioSet label); a concept's only relevant
column is its own text. Every metric (NDCG, recognized, effect odds, precision) then reads the columns the same way:
with CLAP, NDCG ranks the set's concepts for a clip (1 when the intended concept ranks first) and the odds are those
of the intended concept's text in the softmax over the set's texts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, unknown
from .audioset import label_names
from .concept_set import Concept, ConceptSet

RECOGNIZERS = ("passt", "clap")
#: LAION-CLAP's zero-shot prompt, for a concept described only by its AudioSet labels
CLAP_TEMPLATE = "This is a sound of {}."


@dataclass(frozen=True)
class Recognition:
    """The score columns a recognizer emits and the relevant columns of each concept (first: its odds column)."""

    recognizer: str
    concepts: ConceptSet
    classes: tuple[str, ...]
    columns: dict[str, tuple[int, ...]]

    def relevant(self, concept: Concept) -> tuple[int, ...]:
        """Columns relevant to ``concept`` (the NDCG ideal ranking)."""
        return self.columns[concept.name]

    def odds_column(self, concept: Concept) -> int:
        """The column whose odds measure ``concept`` (eq. 1)."""
        return self.columns[concept.name][0]

    def recognized(self, scores: torch.Tensor, concept: Concept) -> bool:
        """Whether ``concept``'s odds column scores highest among the odds columns of its category's concepts in one
        row of ``scores`` (chance: one over their number, for clips that ignore the prompt)."""
        members = self.concepts.members(concept.category)
        return bool(scores[[self.odds_column(c) for c in members]].argmax() == members.index(concept))

    def top(self, scores: torch.Tensor, k: int = 5) -> list[str]:
        """The ``k`` highest-scoring classes of each row, joined with ' | '."""
        indices = torch.topk(scores, min(k, scores.shape[-1]), dim=-1).indices.tolist()
        return [" | ".join(self.classes[i] for i in row) for row in indices]


def clap_text(concept: Concept) -> str:
    """What CLAP scores for ``concept``: its text, else its first AudioSet label in ``CLAP_TEMPLATE``."""
    return concept.text if concept.text is not None else CLAP_TEMPLATE.format(concept.labels[0])


def recognition(concepts: ConceptSet, recognizer: str = "passt") -> Recognition:
    """The ``Recognition`` of ``concepts`` under ``recognizer`` (``RECOGNIZERS``); a concept PaSST cannot score (no
    AudioSet labels) is a clear error."""
    if recognizer == "passt":
        unlabeled = [c.name for c in concepts.concepts if not c.labels]
        if unlabeled:
            raise ConfigError(f"concept {unlabeled[0]!r} in {concepts.source} has no AudioSet labels, which "
                              "--recognizer passt scores; add \"labels\" or use --recognizer clap")
        return Recognition(recognizer, concepts, tuple(label_names()),
                           {c.name: c.label_indices for c in concepts.concepts})
    if recognizer == "clap":
        texts = tuple(clap_text(c) for c in concepts.concepts)
        same = [(c.name, text) for c, text in zip(concepts.concepts, texts) if texts.count(text) > 1]
        if same:
            raise ConfigError(f"concepts {same[0][0]!r} and {same[1][0]!r} have the same CLAP text {same[0][1]!r}; "
                              "give each concept its own \"text\"")
        return Recognition(recognizer, concepts, texts, {c.name: (i,) for i, c in enumerate(concepts.concepts)})
    raise unknown("recognizer", recognizer, RECOGNIZERS)
