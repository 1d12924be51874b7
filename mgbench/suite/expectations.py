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

from ..errors import ConfigError
from ..paths import atomic_write_bytes
from .cases import Case, split_intervals

#: Tiny golden tolerance: relative part, and absolute part per metric. The tiny MusicGen runs in float64, so
#: its tokens are the same on every CPU; what is left is the float32 classifier's last bits (at most 4e-6
#: between ATEN_CPU_CAPABILITY default, avx2 and avx512, measured over all 8,782 tiny metrics). One changed
#: token moves a metric by ~1e-2.
GOLDEN_RTOL = 1e-4
GOLDEN_ATOL = 1e-4
#: keys every rule of paper.json has (concept, technique, component, pair_type and layers narrow it further)
RULE_KEYS = ("size", "experiment", "metric", "reading", "reading_error", "tolerance", "source")
SHAPES = {"paper.json": ('{"rules": [{"size", "experiment", "metric", "reading", "reading_error", "tolerance", '
                         '"source", ...}]}'),
          "tiny.json": '{"settings": {...} or null, "values": {case id: {metric: number}}}'}


@dataclass(frozen=True)
class Range:
    """Where a metric is expected to be.

    A paper range knows the noise: it passes when the measured 95% interval ``(lo, hi)`` overlaps
    ``[low, high]`` (the reading +- its reading error). Without an interval (e.g. one prompt) it falls back to the
    point value inside ``widened`` (the reading +- the rule's fixed tolerance). A golden range (``widened`` None)
    always checks the point value: golden values are reproductions, not estimates.
    """

    metric: str
    low: float
    high: float
    source: str
    widened: "tuple[float, float] | None" = None

    def bounds(self, interval: "tuple[float, float] | None") -> tuple[float, float]:
        """The bounds the check uses: the reading band with an interval (or for golden values), else ``widened``."""
        return (self.low, self.high) if self.widened is None or _finite(interval) else self.widened

    def failure(self, value: float, interval: "tuple[float, float] | None" = None) -> "str | None":
        """Why ``value`` (with its interval) is outside the range, or None when it is inside."""
        low, high = self.bounds(interval)
        if self.widened is not None and _finite(interval):
            lo, hi = interval
            if hi >= low and lo <= high:
                return None
            return (f"{self.metric} = {value:.4f}, 95% interval [{lo:.4f}, {hi:.4f}] does not overlap "
                    f"[{low:.4f}, {high:.4f}] ({self.source})")
        if low <= value <= high:
            return None
        fallback = "; no interval, fixed widening" if self.widened is not None else ""
        return f"{self.metric} = {value:.4f} outside [{low:.4f}, {high:.4f}] ({self.source}{fallback})"


def _finite(interval: "tuple[float, float] | None") -> bool:
    return interval is not None and all(x is not None and math.isfinite(x) for x in interval)


def default_expectations_dir() -> Path:
    """``./expectations`` when it exists (a checkout), else the one beside the installed package."""
    here = Path.cwd() / "expectations"
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "expectations"


def _in_layers(spec: str, layer: int) -> bool:
    lo, _, hi = str(spec).partition("-")
    return int(lo) <= layer <= int(hi or lo)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid_paper(data: object) -> bool:
    rules = data.get("rules") if isinstance(data, dict) else None
    return isinstance(rules, list) and all(
        isinstance(r, dict) and all(k in r for k in RULE_KEYS)
        and _is_number(r["tolerance"]) and _is_number(r["reading_error"])
        and all(_is_number(x) for x in (r["reading"] if isinstance(r["reading"], list) else [r["reading"]]))
        for r in rules)


def _valid_golden(data: object) -> bool:
    values = data.get("values") if isinstance(data, dict) else None
    return (isinstance(values, dict) and isinstance(data.get("settings"), (dict, type(None)))
            and all(isinstance(ms, dict) and all(_is_number(v) for v in ms.values()) for ms in values.values()))


def _read(path: Path, valid, default: dict) -> dict:
    """An expectations file (``default`` when there is none); a damaged one is a one-line error naming it."""
    if not path.exists():
        return default
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"expectations file {path} is not readable JSON ({e}); restore it from git or fix it"
                          ) from None
    if not valid(data):
        raise ConfigError(f"expectations file {path} has the wrong shape; expected {SHAPES[path.name]}")
    return data


class Expectations:
    """Looks up the ranges of a case."""

    def __init__(self, folder: "str | Path"):
        self.folder = Path(folder)
        self.rules = _read(self.folder / "paper.json", _valid_paper, {"rules": []})["rules"]
        data = _read(self.golden_path, _valid_golden, {"settings": None, "values": {}})
        self.golden_settings, self.golden = data["settings"], data["values"]

    @property
    def golden_path(self) -> Path:
        return self.folder / "tiny.json"

    def conflicts(self, settings: dict) -> bool:
        """Whether tiny.json holds golden values made with settings other than ``settings``."""
        return bool(self.golden) and self.golden_settings != settings

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
            err, tol = rule["reading_error"], rule["tolerance"]
            out.append(Range(rule["metric"], min(reading) - err, max(reading) + err,
                             f"{rule['source']}; reading {rule['reading']} +- {err}, without an interval +- {tol}",
                             widened=(min(reading) - tol, max(reading) + tol)))
        return out

    def golden_ranges(self, case: Case) -> list[Range]:
        out = []
        for metric, value in self.golden.get(case.id, {}).items():
            tol = GOLDEN_ATOL + GOLDEN_RTOL * abs(value)
            out.append(Range(metric, value - tol, value + tol, f"tiny golden value {value:.6g}"))
        return out

    def ranges(self, case: Case, settings: dict) -> tuple[list[Range], str]:
        """The case's ranges, and why there are none when the list is empty."""
        if case.size == "toy":
            return [], "recorded; the toy world is checked against its planted truth (test_ground_truth)"
        if case.size != "tiny":
            found = self.paper_ranges(case)
            return found, "" if found else "the paper gives no number for this case (recorded, not checked)"
        if self.golden_settings != settings:
            return [], (f"tiny golden values were made with {self.golden_settings}, this run uses {settings}: "
                        "rerun with those settings, or start the file anew with --replace-expectations")
        found = self.golden_ranges(case)
        return found, "" if found else "no golden value yet: run pytest bench/ --update-expectations"

    def update_golden(self, values: dict[str, dict[str, float]], settings: dict, replace: bool = False) -> Path:
        """Merge ``values`` (case id -> metrics) into tiny.json, made with ``settings``; return its path.

        Only point metrics are written: a metric's ``_lo``/``_hi`` interval bounds are dropped.

        Values made with other settings are never dropped silently: that is an error unless ``replace``,
        which starts the file anew with ``settings`` and ``values`` only.
        """
        if self.conflicts(settings) and not replace:
            raise ConfigError(f"{self.golden_path} holds {len(self.golden)} golden values made with "
                              f"{self.golden_settings}, not {settings}; replace them explicitly or use those settings")
        keep = {} if replace else self.golden
        points = {k: split_intervals(ms)[0] for k, ms in values.items()}  # interval bounds are never golden
        merged = {**keep, **{k: {m: float(v) for m, v in ms.items() if math.isfinite(v)} for k, ms in points.items()}}
        atomic_write_bytes(self.golden_path, json.dumps({"settings": settings, "values": dict(sorted(merged.items()))},
                                                        indent=1).encode())
        self.golden_settings, self.golden = settings, merged
        return self.golden_path
