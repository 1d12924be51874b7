"""Recipes of planted toy worlds: where the prompt's text enters the decoder, and which words enter where.

A recipe is a list of entries ``SITE[:CATEGORY[,CATEGORY]]`` (``mgbench toy build --entry ...``): each
entry is a cross-attention whose output projection is trained; every other cross-attention's is zero and
frozen. An entry with categories (*restricted*) reads only the words of those categories (the concept
set's categories: ``instrument``, ``genre``); an entry without carries every word that no restricted entry
claims (the other categories' words and the template's other words: mood, tempo, ...). A recipe in which
every entry is restricted lets the template's other words reach no site.

``roles`` sorts every site, per category and for the text as a whole, by how the text can reach it:

- ``entry``: a cross-attention where the words (of the category) enter;
- ``no_path``: a cross-attention with a zero output projection: its output is exactly 0 for every input;
- ``downstream``: after the (category's) first entry in a decoding step: it reads the entry's output through
  the residual stream (an entry of another category too, through its queries);
- ``through_codes``: before it: the words reach it only through the codes generated at earlier steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.sites import PAPER_COMPONENTS, Site, all_sites
from ..errors import ConfigError, SiteError

#: the order of a decoder layer's components within a decoding step
COMPONENT_ORDER = {"self_attn": 0, "cross_attn": 1, "mlp": 2}
#: the text block of the words that name no category: the template's words and its other slots (mood, tempo)
OTHER = "other"


@dataclass(frozen=True)
class Entry:
    """A cross-attention where text enters; ``categories`` empty: every word that no restricted entry claims."""

    site: Site
    categories: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.site}:{','.join(self.categories)}" if self.categories else str(self.site)


@dataclass(frozen=True)
class Recipe:
    """The entries of a planted world, validated against a decoder's layers and a concept set's categories."""

    entries: tuple[Entry, ...]
    categories: tuple[str, ...]  # the concept set's categories, in its order

    @classmethod
    def parse(cls, texts: "list[str] | tuple[str, ...]", categories: "tuple[str, ...] | list[str]",
              num_layers: int) -> "Recipe":
        """Read ``--entry`` texts; a one-line ``ConfigError`` names the first problem."""
        if not texts:
            raise ConfigError("a recipe needs at least one --entry SITE[:CATEGORIES], e.g. --entry L2.cross_attn")
        entries = tuple(sorted((_parse_entry(text, tuple(categories), num_layers) for text in texts),
                               key=lambda e: e.site))  # in the decoder's order, as planted.json lists them
        sites = [e.site for e in entries]
        twice = next((s for s in sites if sites.count(s) > 1), None)
        if twice is not None:
            raise ConfigError(f"site {twice} is given twice; give each site at most one --entry")
        for category in categories:
            holders = [str(e.site) for e in entries if category in e.categories]
            if len(holders) > 1:
                raise ConfigError(f"category {category!r} is in two entries ({', '.join(holders)}); give each "
                                  "category at most one entry")
        return cls(entries, tuple(categories))

    @property
    def restricted(self) -> bool:
        """Whether any entry reads only some categories' words (then the world needs a per-token text side)."""
        return any(e.categories for e in self.entries)

    @property
    def texts(self) -> list[str]:
        """The recipe as ``--entry`` values (``Recipe.parse`` reads them back)."""
        return [str(e) for e in self.entries]

    def blocks(self, entry: Entry) -> tuple[str, ...]:
        """The text blocks (categories, and ``OTHER``) that reach ``entry``."""
        if entry.categories:
            return entry.categories
        claimed = {c for e in self.entries for c in e.categories}
        return (*[c for c in self.categories if c not in claimed], OTHER)

    def entries_of(self, block: str) -> list[Site]:
        """The sites where the words of ``block`` (a category or ``OTHER``) enter."""
        return [e.site for e in self.entries if block in self.blocks(e)]


def _parse_entry(text: str, categories: tuple[str, ...], num_layers: int) -> Entry:
    site_text, _, category_text = text.partition(":")
    try:
        site = Site.parse(site_text)
    except SiteError:  # not L<layer>.<component>
        site = None
    if site is None or site.component != "cross_attn" or not 0 <= site.layer < num_layers:
        raise ConfigError(f"entry {text!r}: an entry is a cross-attention site, L0.cross_attn to "
                          f"L{num_layers - 1}.cross_attn, optionally with categories (SITE:CATEGORY[,CATEGORY])")
    if ":" not in text:
        return Entry(site)
    chosen = tuple(c.strip() for c in category_text.split(","))
    unknown = [c for c in chosen if c not in categories]
    if unknown or not chosen:
        raise ConfigError(f"entry {text!r}: unknown category {unknown[0] if unknown else ''!r}; valid: "
                          f"{', '.join(categories)}")
    if len(set(chosen)) < len(chosen):
        raise ConfigError(f"entry {text!r} names a category twice")
    return Entry(site, tuple(c for c in categories if c in chosen))


def _after(site: Site, entry: Site) -> bool:
    return (site.layer, COMPONENT_ORDER[site.component]) > (entry.layer, COMPONENT_ORDER[entry.component])


def site_roles(entries: list[Site], open_sites: list[Site], num_layers: int) -> dict[str, str]:
    """Every site's role for words that enter at ``entries`` (``open_sites``: every cross-attention that is not
    zero)."""
    roles = {}
    for site in all_sites(num_layers, PAPER_COMPONENTS):
        if site in entries:
            roles[str(site)] = "entry"
        elif site.component == "cross_attn" and site not in open_sites:
            roles[str(site)] = "no_path"
        elif entries and _after(site, min(entries)):
            roles[str(site)] = "downstream"
        else:
            roles[str(site)] = "through_codes"
    return roles
