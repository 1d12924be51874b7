"""Expected ranges for bench cases: the paper's (real checkpoints) and golden values (tiny).

``expectations/paper.json`` holds rules read off the paper's figures, each with its source;
``expectations/tiny.json`` holds golden values of the tiny models with the settings they were
made with, rewritten by ``pytest bench/ --update-expectations``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..paths import atomic_write_bytes
from .cases import Case

#: Tiny golden tolerance: relative part, and absolute part per metric. Same machine, same wheels give
#: bit-identical numbers; the slack absorbs float noise from other BLAS builds, not real changes.
GOLDEN_RTOL = 1e-3
GOLDEN_ATOL = 1e-3


@dataclass(frozen=True)
class Range:
    metric: str
    low: float
    high: float
    source: str

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def explain(self, value: float) -> str:
        return f"{self.metric} = {value:.4f} outside [{self.low:.4f}, {self.high:.4f}] ({self.source})"


def default_expectations_dir() -> Path:
    """``./expectations`` when it exists (a checkout), else the one beside the installed package."""
    here = Path.cwd() / "expectations"
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "expectations"


def _in_layers(spec: str, layer: int) -> bool:
    lo, _, hi = str(spec).partition("-")
    return int(lo) <= layer <= int(hi or lo)


class Expectations:
    """Looks up the ranges of a case."""

    def __init__(self, folder: "str | Path"):
        self.folder = Path(folder)
        paper = self.folder / "paper.json"
        self.rules = json.loads(paper.read_text())["rules"] if paper.exists() else []
        golden = self.folder / "tiny.json"
        data = json.loads(golden.read_text()) if golden.exists() else {"settings": None, "values": {}}
        self.golden_settings, self.golden = data["settings"], data["values"]

    def paper_ranges(self, case: Case) -> list[Range]:
        out = []
        for rule in self.rules:
            if rule["size"] != case.size or rule["experiment"] != case.experiment:
                continue
            if any(rule.get(k) is not None and rule[k] != getattr(case, k)
                   for k in ("concept", "technique", "component", "pair_type")):
                continue
            if "layers" in rule and not _in_layers(rule["layers"], case.layer):
                continue
            reading = rule["reading"] if isinstance(rule["reading"], list) else [rule["reading"]] * 2
            out.append(Range(rule["metric"], min(reading) - rule["tolerance"], max(reading) + rule["tolerance"],
                             f"{rule['source']}; reading {rule['reading']} +- {rule['tolerance']}"))
        return out

    def golden_ranges(self, case: Case) -> list[Range]:
        out = []
        for metric, value in self.golden.get(case.id, {}).items():
            tol = GOLDEN_ATOL + GOLDEN_RTOL * abs(value)
            out.append(Range(metric, value - tol, value + tol, f"tiny golden value {value:.6g}"))
        return out

    def ranges(self, case: Case, settings: dict) -> tuple[list[Range], str]:
        """The case's ranges, and why there are none when the list is empty."""
        if case.size != "tiny":
            found = self.paper_ranges(case)
            return found, "" if found else "the paper gives no number for this case (recorded, not checked)"
        if self.golden_settings != settings:
            return [], (f"tiny golden values were made with {self.golden_settings}, this run uses {settings}: "
                        "rerun with those settings or with --update-expectations")
        found = self.golden_ranges(case)
        return found, "" if found else "no golden value yet: run pytest bench/ --update-expectations"

    def update_golden(self, values: dict[str, dict[str, float]], settings: dict) -> Path:
        """Merge ``values`` (case id -> metrics) into tiny.json, made with ``settings``; return its path."""
        keep = self.golden if self.golden_settings == settings else {}
        merged = {**keep, **{k: {m: float(v) for m, v in ms.items() if math.isfinite(v)} for k, ms in values.items()}}
        path = self.folder / "tiny.json"
        atomic_write_bytes(path, json.dumps({"settings": settings, "values": dict(sorted(merged.items()))},
                                            indent=1).encode())
        self.golden_settings, self.golden = settings, merged
        return path
