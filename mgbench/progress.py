"""Progress that a person can read wherever it goes: tqdm's bars on a terminal; in a log file (CI, Slurm, nohup)
plain lines, as pip and transformers write them: one when a stage starts, one when it ends, with counts and
elapsed time, and one a minute in between for long stages. No escape codes, no carriage returns.

``MGBENCH_PROGRESS=bars|lines|off`` overrides the choice (default: bars when stderr is a terminal, else lines);
tqdm's own ``TQDM_DISABLE=1`` silences both.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
#: seconds between the lines of a long stage in a log
LINE_INTERVAL_S = 60.0


def mode() -> str:
    """``bars``, ``lines`` or ``off``: how progress is shown in this process."""
    if os.environ.get("TQDM_DISABLE", "") not in ("", "0"):
        return "off"
    chosen = os.environ.get("MGBENCH_PROGRESS", "")
    if chosen in ("bars", "lines", "off"):
        return chosen
    return "bars" if sys.stderr.isatty() else "lines"


class Progress:
    """A stage of ``total`` units (batches, rows, steps) named ``desc``: a tqdm bar on a terminal, else lines.

    Use as a context manager and call ``update(n)`` as units finish; a stage with nothing to do says nothing.
    """

    def __init__(self, desc: str, total: int, unit: str = "batch"):
        self.desc, self.total, self.unit, self.done = desc, int(total), unit, 0
        self.mode = mode() if self.total > 0 else "off"
        self.bar = None
        self.start = self.last = time.monotonic()

    def _line(self, text: str) -> None:
        print(f"mgbench: {self.desc}: {text}", file=sys.stderr, flush=True)

    def _units(self, n: int, of: str = "") -> str:
        """``n`` units in words: ``3 batches``, ``1 batch``, ``3/10 rows`` (with ``of="/10"``)."""
        plural = self.unit + ("es" if self.unit.endswith(("s", "ch", "sh", "x")) else "s")
        return f"{n:,d}{of} {self.unit if n == 1 and not of else plural}"

    def __enter__(self) -> "Progress":
        if self.mode == "bars":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, leave=False)
        elif self.mode == "lines":
            self._line(f"{self._units(self.total)} to do")
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode == "lines" and time.monotonic() - self.last >= LINE_INTERVAL_S and self.done < self.total:
            self.last = time.monotonic()
            self._line(f"{self._units(self.done, f'/{self.total:,d}')} done, {self.last - self.start:.0f} s so far")

    def __exit__(self, kind, error, traceback) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "lines" and kind is None:
            self._line(f"{self._units(self.done)} done in {time.monotonic() - self.start:.1f} s")


def progress(items: Iterable[T], desc: str, total: "int | None" = None, unit: str = "batch") -> Iterator[T]:
    """``items``, reporting progress as a ``Progress`` stage (``total`` defaults to ``len(items)``)."""
    items = list(items) if total is None else items
    with Progress(desc, len(items) if total is None else total, unit) as stage:
        for item in items:
            yield item
            stage.update()
