"""The planted truth of a world (its ``planted.json``), read for the checks: each category's entry sites and
layer and every site's role for that category.

A role says how a category's words can reach a site: ``entry`` (the words enter the decoder there),
``no_path`` (a cross-attention that outputs exactly 0 for every input), ``downstream`` (after an entry, in
the same frame) or ``through_codes`` (only through the codes generated earlier). Files written before
worlds had per-category roles (one entry for every category) are read as such.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..engine.sites import Site
from ..errors import ConfigError
from ..zoo.loading import planted_truth as model_planted_truth


def site_names(table: pd.DataFrame) -> list[str]:
    """Each row's site (its ``layer`` and ``component``) by name, ``L2.cross_attn``."""
    return [str(Site(int(layer), component)) for layer, component in zip(table["layer"], table["component"])]


@dataclass(frozen=True)
class Planted:
    """A world's planted truth, from the dict of its ``planted.json``."""

    truth: dict

    @property
    def statement(self) -> str:
        return self.truth["statement"]

    @property
    def sites(self) -> list[str]:
        return list(self.truth["sites"])

    @property
    def last_layer(self) -> int:
        """The full model's layer (the last decoder layer)."""
        return max(Site.parse(site).layer for site in self.sites)

    def roles(self, category: str) -> dict[str, str]:
        """Every site's role for ``category``'s words."""
        return self.truth.get("roles_by_category", {}).get(category, self.truth["sites"])

    def entry_layer(self, category: str) -> "int | None":
        """The first layer where ``category``'s words enter (None: they enter nowhere)."""
        layers = self.truth.get("entry_layers", {})
        return layers[category] if category in layers else self.truth["entry_layer"]

    def sites_with(self, category: str, role: str) -> list[str]:
        """The sites of ``role`` for ``category``'s words, in decoder order."""
        return [site for site, its in self.roles(category).items() if its == role]

    def entries(self, category: str) -> list[str]:
        """``category``'s entry sites, in decoder order."""
        return self.sites_with(category, "entry")

    def role_of_rows(self, category: str, table: pd.DataFrame) -> pd.Series:
        """The role for ``category`` of each row's site (its ``layer`` and ``component``)."""
        roles = self.roles(category)
        return pd.Series([roles.get(site, "unknown") for site in site_names(table)], index=table.index)

    @property
    def categories(self) -> list[str]:
        """The categories with their own roles (none in files written before per-category roles)."""
        return list(self.truth.get("roles_by_category", {}))

    def role_label(self, site: str, categories: "list[str]") -> str:
        """``site``'s role in words: one role when every category's is the same, else each category's."""
        roles = {category: self.roles(category).get(site, "unknown") for category in categories}
        if len(set(roles.values())) <= 1:
            return next(iter(roles.values()), self.truth["sites"].get(site, "unknown"))
        return ", ".join(f"{category} {role}" for category, role in roles.items())

    def where(self, category: str) -> str:
        """``category``'s entry sites in words (``L1.cross_attn``, or ``no entry``)."""
        return "+".join(self.entries(category)) or "no entry"


def planted_truth(model: str) -> Planted:
    """The planted truth of a model that has one (a one-line error otherwise)."""
    truth = model_planted_truth(model)
    if truth is None:
        raise ConfigError(f"model {model} has no planted mechanism (planted.json beside its weights); "
                          "ground-truth checks need the toy world (--model toy) or a folder built by mgbench toy build")
    return Planted(truth)
