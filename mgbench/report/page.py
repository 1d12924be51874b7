"""The report as a page: a list of blocks rendered twice, as markdown (GitHub) and as HTML (offline, with audio
players), so the two always say the same thing.

A block is a tuple: ``("h", level, text)``, ``("p", text)``, ``("img", path)``, ``("table", frame)``,
``("audio", frame)`` or ``("link", text, relative path)``. Both renderings open with a table of contents (each
heading an anchor; the markdown's lists the level-2 headings, the HTML's the level-3 ones too) and fold long tables
into ``<details>``: the numbers behind a figure right under it, and any table longer than ``FOLD_ROWS`` rows.
"""

from __future__ import annotations

import html
import re

import pandas as pd

Block = tuple
#: tables longer than this are folded (the numbers behind a figure are folded whatever their length)
FOLD_ROWS = 12
#: the page's look: readable width, compact tables, figures at most the page wide
STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em}"
         "table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
         "img{max-width:100%}details{margin:.5em 0}summary{cursor:pointer;color:#444}nav li{margin:2px 0}")


def anchor(text: str) -> str:
    """The anchor id of a heading, as GitHub makes them: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.lower()).strip().replace(" ", "-")


def _headings(blocks: list[Block], deepest: int = 3) -> list[tuple[int, str]]:
    return [(b[1], b[2]) for b in blocks if b[0] == "h" and 2 <= b[1] <= deepest]


def _folds(blocks: list[Block]) -> list["str | None"]:
    """Per block: the summary line under which it is folded, or None."""
    folds: list["str | None"] = []
    for i, block in enumerate(blocks):
        if block[0] != "table":
            folds.append(None)
        elif i and blocks[i - 1][0] == "img":
            folds.append(f"numbers behind the figure ({len(block[1])} rows)")
        else:
            folds.append(f"table ({len(block[1])} rows)" if len(block[1]) > FOLD_ROWS else None)
    return folds


def _escaped(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``|`` in its text cells and index escaped (``\\|``): a bare one would split the cell."""
    escape = lambda v: v.replace("|", "\\|") if isinstance(v, str) else v  # noqa: E731
    out = table.map(escape)
    if not isinstance(out.index, pd.MultiIndex):
        out.index = out.index.map(escape)
    return out


def _markdown_table(table: pd.DataFrame) -> str:
    if isinstance(table.index, pd.MultiIndex):  # one column per key, not a column of tuples
        return _escaped(table.reset_index()).to_markdown(index=False, floatfmt=".4g")
    return _escaped(table).to_markdown(floatfmt=".4g")


def render_markdown(blocks: list[Block]) -> str:
    """The blocks as GitHub markdown."""
    lines: list[str] = []
    contents = ["Contents:", ""] + [f"- [{text}](#{anchor(text)})" for _, text in _headings(blocks, deepest=2)]
    previous = None
    for block, fold in zip(blocks, _folds(blocks)):
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
            if block[1] == 1:
                lines += [*contents, ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "img":
            _add_in_row(lines, f"![{block[1].stem}](figures/{block[1].name})", previous == kind, " ")
        elif kind == "table":
            table = _markdown_table(block[1])
            lines += [f"<details><summary>{fold}</summary>", "", table, "", "</details>", ""] if fold else [table, ""]
        elif kind == "audio":
            table = block[1].assign(intervened=[f"[wav]({p})" for p in block[1].intervened],
                                    baseline=[f"[wav]({p})" for p in block[1].baseline])
            lines += [table.to_markdown(index=False, floatfmt=".3f"), ""]
        elif kind == "link":
            _add_in_row(lines, f"{block[1]}[{block[2]}]({block[2]})", previous == kind, "; ")
        previous = kind
    return "\n".join(lines)


def _add_in_row(lines: list[str], text: str, joined: bool, separator: str) -> None:
    """Add ``text`` as a paragraph of its own, or (``joined``: a figure or link after one of its kind) to the last
    paragraph, after ``separator``: a section's figures side by side, its links on one line."""
    if joined:
        lines[-2] += separator + text
    else:
        lines += [text, ""]


def render_html(blocks: list[Block]) -> str:
    """The blocks as one HTML page (figures and audio linked relative to it)."""
    title = next((b[2] for b in blocks if b[0] == "h" and b[1] == 1), "mgbench report")
    contents = "".join(f"<li style='margin-left:{1.5 * (level - 2)}em'><a href='#{anchor(text)}'>"
                       f"{html.escape(text)}</a></li>" for level, text in _headings(blocks))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>"]
    for block, fold in zip(blocks, _folds(blocks)):
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]} id='{anchor(block[2])}'>{html.escape(block[2])}</h{block[1]}>")
            if block[1] == 1:
                parts.append(f"<nav><b>Contents</b><ul>{contents}</ul></nav>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "img":
            parts.append(f"<img src='figures/{html.escape(block[1].name)}' alt='{html.escape(block[1].stem)}'>")
        elif kind == "table":
            table = block[1].to_html(float_format=lambda v: f"{v:.4g}")
            parts.append(f"<details><summary>{html.escape(fold)}</summary>{table}</details>" if fold else table)
        elif kind == "audio":
            player = lambda p: f"<audio controls preload='none' src='{html.escape(p)}'></audio>"  # noqa: E731
            table = block[1].assign(intervened=block[1].intervened.map(player), baseline=block[1].baseline.map(player))
            parts.append(table.to_html(index=False, escape=False, float_format=lambda v: f"{v:.3f}"))
        elif kind == "link":
            parts.append(f"<p>{html.escape(block[1])}<a href='{html.escape(block[2])}'>{html.escape(block[2])}</a></p>")
    return "\n".join(parts + ["</body></html>"])
