"""Concepts (instruments, genres) and their prompts, loaded from a JSON data file.

The default file reproduces the paper: its template, Table 1's relevant AudioSet labels, and the
reference code's 100 prompts per concept in the reference code's order. Users add concepts by
writing a file of the same shape and passing it as ``--concepts-file``; a concept names its relevant
AudioSet labels (what PaSST scores), a text description (what CLAP scores, ``recognition.py``), or both.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, unknown
from .audioset import label_index


@dataclass(frozen=True)
class Concept:
    """A musical concept: the word put into its template slot, its relevant AudioSet labels (may be empty when it
    has a text) and its text description for zero-shot recognizers (None: described by its first label)."""

    name: str
    category: str
    slot: str
    word: str
    labels: tuple[str, ...]
    text: "str | None" = None

    def definition(self) -> dict:
        """The concept as its file states it (``text`` only when given: concept sets without texts keep the cache
        keys they had before texts existed)."""
        fields = {"name": self.name, "category": self.category, "slot": self.slot, "word": self.word,
                  "labels": self.labels}
        return fields if self.text is None else {**fields, "text": self.text}

    @property
    def label_indices(self) -> tuple[int, ...]:
        """Logit indices of the relevant labels (the NDCG ideal ranking)."""
        return tuple(label_index(n) for n in self.labels)

    @property
    def odds_label(self) -> int:
        """Logit index of the first relevant label, used for the intervention odds."""
        return self.label_indices[0]


@dataclass(frozen=True)
class ConceptSet:
    """A prompt template with its slot values and the concepts that fill one slot each."""

    template: str
    slot_order: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    prompts_per_concept: int
    concepts: tuple[Concept, ...]
    source: str = "builtin"

    @cached_property
    def by_name(self) -> dict[str, Concept]:
        return {c.name: c for c in self.concepts}

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.concepts]

    def get(self, name: str) -> Concept:
        """The concept called ``name``; a clear error lists the known ones."""
        try:
            return self.by_name[name]
        except KeyError:
            raise unknown("concept", name, self.names, "Run `mgbench concepts` to list them") from None

    @property
    def categories(self) -> list[str]:
        """The categories of the concepts, in file order."""
        return list(dict.fromkeys(c.category for c in self.concepts))

    def members(self, category: str) -> list[Concept]:
        """The concepts of ``category``, in file order."""
        return [c for c in self.concepts if c.category == category]

    def select(self, names: "list[str] | None") -> list[Concept]:
        """Concepts by name (all when ``names`` is None or empty), in the given order; each at most once."""
        twice = sorted({n for n in names or [] if names.count(n) > 1})
        if twice:
            raise ConfigError(f"concept {twice[0]!r} is named more than once; name each concept once")
        return [self.get(n) for n in names] if names else list(self.concepts)

    def fills(self, name: str, n: "int | None" = None) -> list[dict[str, str]]:
        """The slot values of a concept's first ``n`` prompts (default: ``prompts_per_concept``).

        The concept's slot holds its word; the other slots run over every combination in nested
        loops in ``slot_order`` (outermost first), as the reference code does.
        """
        concept = self.get(name)
        n = self.prompts_per_concept if n is None else n
        free = [s for s in self.slot_order if s != concept.slot]
        combos = itertools.product(*(self.slots[s] for s in free))
        fills = [{**dict(zip(free, values)), concept.slot: concept.word} for values in itertools.islice(combos, n)]
        if len(fills) < n:
            raise ConfigError(f"concept {name!r} has only {len(fills)} prompts; ask for at most that many")
        return fills

    def prompts(self, name: str, n: "int | None" = None) -> list[str]:
        """The first ``n`` prompts of a concept (default: ``prompts_per_concept``): ``fills`` in the template."""
        return [self.template.format(**fill) for fill in self.fills(name, n)]

    def swapped_prompt(self, name: str, prompt_id: int, desired_name: str) -> str:
        """Prompt ``prompt_id`` of concept ``name`` with the desired concept's slot set to its word."""
        desired = self.get(desired_name)
        if prompt_id < 0:
            raise ConfigError(f"prompt id {prompt_id} is negative; give 0 or more")
        fill = self.fills(name, prompt_id + 1)[prompt_id]
        return self.template.format(**{**fill, desired.slot: desired.word})

    def vocabulary(self) -> list[str]:
        """Every word the prompts can contain (for the tiny model's tokenizer), sorted."""
        words = set(self.template.replace("{", " ").replace("}", " ").split())
        words -= set(self.slot_order)
        for value in itertools.chain(*self.slots.values(), (c.word for c in self.concepts)):
            words.update(value.split())
        return sorted({w.strip(".,").lower() for w in words} | {".", ","} - {""})


def pair_type(original: Concept, desired: Concept) -> str:
    """'instrument->genre' style label of an ordered concept pair (original first)."""
    return f"{original.category}->{desired.category}"


def load_concepts(path: "str | Path | None" = None) -> ConceptSet:
    """Load a concept file (default: the paper's concepts shipped with mgbench)."""
    if path is None:
        text = resources.files("mgbench.data").joinpath("concepts.json").read_text()
        source = "builtin"
    else:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"cannot read concept file {path}: {e.strerror}; pass an existing JSON file") from None
        source = str(path)
        if not text.strip():
            raise ConfigError(f"concept file {path} is empty; copy mgbench/data/concepts.json and edit it")
    try:
        raw = json.loads(text)
        slots = {k: tuple(v) for k, v in raw["slots"].items()}
        concepts = tuple(
            Concept(c["name"], c["category"], c["slot"], c["word"], tuple(c.get("labels", ())), c.get("text"))
            for c in raw["concepts"]
        )
        cset = ConceptSet(raw["template"], tuple(raw["slot_order"]), slots, int(raw["prompts_per_concept"]),
                          concepts, source)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"concept file {source} is malformed ({e!r}); copy mgbench/data/concepts.json "
                          "and edit it") from None
    _validate(cset)
    return cset


def _validate(cset: ConceptSet) -> None:
    if not cset.concepts:
        raise ConfigError(f"concept file {cset.source} defines no concepts; list at least one under \"concepts\"")
    if cset.prompts_per_concept < 1:
        raise ConfigError(f"prompts_per_concept in {cset.source} is {cset.prompts_per_concept}; give at least 1")
    if set(cset.slot_order) != set(cset.slots):
        raise ConfigError(f"slot_order {cset.slot_order} must name exactly the slots {sorted(cset.slots)}")
    if len(set(cset.names)) != len(cset.names):
        raise ConfigError(f"concept names must be unique in {cset.source}")
    for c in cset.concepts:
        if c.slot not in cset.slots:
            raise ConfigError(f"concept {c.name!r} uses unknown slot {c.slot!r}; slots: {sorted(cset.slots)}")
        if not c.labels and c.text is None:
            raise ConfigError(f"concept {c.name!r} in {cset.source} has neither \"labels\" nor \"text\"; give AudioSet "
                              "labels (for --recognizer passt), a text (for --recognizer clap), or both")
        if any(not isinstance(label, str) or len(label) < 2 for label in c.labels):
            raise ConfigError(f"concept {c.name!r} has labels {list(c.labels)!r}; give a list of AudioSet display "
                              "names such as [\"Cello\", \"Bowed string instrument\"]")
        if c.text is not None and (not isinstance(c.text, str) or not c.text.strip()):
            raise ConfigError(f"concept {c.name!r} has text {c.text!r}; give a non-empty description such as "
                              "\"a cello melody\"")
        c.label_indices  # noqa: B018 -- raises a clear error for an unknown label name
