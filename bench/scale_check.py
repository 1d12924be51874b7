"""Time and peak memory of ``mgbench report`` and its diff on synthetic paper-scale results (a benchmark, not a test).

Writes the synthetic full paper (``tests/paper_scale.py``: small + medium + large, 6.5 M intervention rows at 100
prompts) and a second copy with other noise and a few changed aggregates (the previous night), plus a 25 k-row
small run at 2 prompts, then measures each command in its own subprocess (``/usr/bin/time -v``: wall time and peak
resident memory) and prints one table row per measurement:

- 25 k: small at 2 prompts; 1.3 M: ``DIR/small``; 2.6 M: ``DIR/large``; 6.5 M: ``DIR`` (all three sizes);
- ``report``: ``mgbench report RUN``; ``diff``: ``mgbench report RUN --baseline OTHER_RUN``.

Usage: ``python bench/scale_check.py --work /tmp/scale`` (about 10 minutes on 2 cores; ``--keep`` reuses folders
already written there). ``--csv PATH`` also writes the rows as CSV.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from paper_scale import SIZES, Shift, write_paper_results  # noqa: E402


def changes(sizes: "tuple[str, ...]") -> tuple[Shift, ...]:
    """The previous night's differences: per size one DecoderLens point, one site's precision, one concept's ceiling."""
    return tuple(shift for size in sizes for shift in (
        Shift(size, "decoderlens", (("concept", "guitar"), ("layer", 3)), "ndcg", -0.05),
        Shift(size, "interventions", (("technique", "adjust"), ("component", "mlp"), ("layer", 7)), "precision", 0.1),
        Shift(size, "ceiling", (("original", "jazz"),), "effect_desired", -0.3)))


def write(folder: Path, sizes: "tuple[str, ...]", prompts: int, seed: int, keep: bool) -> float:
    """Write a fixture (the baseline copy when ``seed`` is not 0); return the seconds it took (0 when kept)."""
    if keep and all((folder / size / "run.json").exists() for size in sizes):
        return 0.0
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    write_paper_results(folder, sizes, prompts, seed=seed, changes=changes(sizes) if seed else ())
    return time.perf_counter() - start


def rss_gb(pid: int) -> float:
    """The resident memory of process ``pid`` and its children now (GB), from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = next((int(line.split()[1]) / 1e6 for line in status.splitlines() if line.startswith("VmRSS:")), 0.0)
    return own + sum(rss_gb(int(child)) for child in children)


def measure(args: "list[str]", out: Path, cap_gb: float, code: Path = ROOT) -> dict:
    """Run ``mgbench report ARGS --out OUT`` under ``/usr/bin/time -v``: wall seconds, peak RSS (GB; ``time``'s
    maximum resident set size, counted from the process' start), report.md's lines and size.

    A run whose memory passes ``cap_gb`` is stopped (the machine is shared) and its row says so. ``code``: the
    checkout whose mgbench runs (e.g. an older commit's, for a before/after comparison)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "2"}
    start = time.perf_counter()
    with open(out / "stderr.txt", "wb") as stderr:
        child = subprocess.Popen(["/usr/bin/time", "-v", sys.executable, "-m", "mgbench.cli", "report", *args, "--out",
                                  str(out)], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        stopped = False
        while child.poll() is None:
            if rss_gb(child.pid) > cap_gb:
                for pid in Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)  # the report, run by ``time``
                stopped = True
            time.sleep(0.05)
    seconds = round(time.perf_counter() - start, 1)
    if stopped:
        return {"seconds": f"stopped at {seconds}", "peak_gb": f"> {cap_gb}", "report_lines": None, "report_kb": None}
    stderr = (out / "stderr.txt").read_text()
    if child.returncode != 0:
        raise SystemExit(f"mgbench report {' '.join(args)} failed:\n{stderr[-2000:]}")
    peak = next(int(line.split()[-1]) for line in stderr.splitlines() if "Maximum resident set size" in line)
    report = out / "report.md"
    return {"seconds": seconds, "peak_gb": round(peak / 1e6, 2), "report_lines": len(report.read_text().splitlines()),
            "report_kb": round(report.stat().st_size / 1e3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the fixtures and reports")
    parser.add_argument("--keep", action="store_true", help="reuse fixtures already written in --work")
    parser.add_argument("--csv", type=Path, help="also write the rows here")
    parser.add_argument("--cap-gb", type=float, default=4.5, help="stop a command whose memory passes this (GB)")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose mgbench is measured (default: "
                        "this one; e.g. `git archive BASE mgbench | tar -x -C DIR` for the code before a change)")
    parser.add_argument("--scales", default="25k,1.3M,2.6M,6.5M", help="comma list of 25k, 1.3M, 2.6M, 6.5M")
    args = parser.parse_args()
    work = args.work
    wrote = {"25k": write(work / "a25k", ("small",), 2, 0, args.keep) + write(work / "b25k", ("small",), 2, 1, args.keep)}
    if set(args.scales.split(",")) - {"25k"}:
        wrote["paper"] = write(work / "a", SIZES, 100, 0, args.keep) + write(work / "b", SIZES, 100, 1, args.keep)
    runs = {"25k": ("a25k/small", "b25k/small"), "1.3M": ("a/small", "b/small"), "2.6M": ("a/large", "b/large"),
            "6.5M": ("a", "b")}
    rows = []
    for scale in args.scales.split(","):
        run, other = runs[scale]
        for command, extra in (("report", []), ("diff", ["--baseline", str(work / other)])):
            rows.append({"rows": scale, "command": f"mgbench report {run}" + (f" --baseline {other}" if extra else ""),
                         **measure([str(work / run), *extra], work / "out" / f"{scale}-{command}", args.cap_gb,
                                 args.code)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"\nfixtures written in {', '.join(f'{k}: {v:.1f} s' for k, v in wrote.items())}\n")
    print(table.to_markdown(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
