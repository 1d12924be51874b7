"""Time and peak memory of ``mgbench report`` and its diff on synthetic paper-scale results (a benchmark, not a test).

Writes the synthetic full paper (``tests/paper_scale.py``: small + medium + large, 6.5 M intervention rows at 100
prompts) and a second copy with other noise and a few changed aggregates (the previous night), plus a 25 k-row
small run at 2 prompts, then measures each command in its own subprocess (``/usr/bin/time -v``: wall time and peak
resident memory) and prints one table row per measurement:

- 25 k: small at 2 prompts; 1.3 M: ``DIR/small``; 2.6 M: ``DIR/large``; 6.5 M: ``DIR`` (all three sizes);
- ``report``: ``mgbench report RUN``; ``diff``: ``mgbench report RUN --baseline OTHER_RUN``.

Usage: ``python bench/scale_check.py --work /tmp/scale`` (about 10 minutes on 2 cores; ``--keep`` reuses folders
already written there). ``--code before=DIR --code after=.`` measures two checkouts, alternating; ``--intervals N``
adds the groups per second of ``with_intervals`` against the per-group scipy calls; ``--csv PATH`` writes the rows.
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


#: ``compare_results`` alone: both runs loaded (the floor), then the diff; prints the loaded RSS (GB), the diff's
#: seconds and its aggregates
COMPARE = """import resource, sys, time
from mgbench.report.diff import compare_results
from mgbench.report.results import load_results
current, baseline = load_results(sys.argv[1]), load_results(sys.argv[2])
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
start = time.perf_counter()
compared = compare_results(current, baseline)
print(round(loaded, 2), round(time.perf_counter() - start, 1), len(compared), int(compared.changed.sum()))
"""


def measure(argv: "list[str]", out: Path, cap_gb: float, code: Path = ROOT) -> dict:
    """Run ``python ARGV`` under ``/usr/bin/time -v``, its output in OUT: wall seconds and peak RSS (GB; ``time``'s
    maximum resident set size, counted from the process' start), and what it printed.

    A run whose memory passes ``cap_gb`` is stopped (the machine is shared) and its row says so. ``code``: the
    checkout whose mgbench runs (e.g. an older commit's, for a before/after comparison)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    with open(out / "stderr.txt", "wb") as stderr, open(out / "stdout.txt", "wb") as stdout:
        child = subprocess.Popen(["/usr/bin/time", "-v", sys.executable, *argv], env=environment(code), cwd=code,
                                 stdout=stdout, stderr=stderr)
        stopped = False
        while child.poll() is None:
            if rss_gb(child.pid) > cap_gb:
                for pid in Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)  # the command, run by ``time``
                stopped = True
            time.sleep(0.05)
    seconds = round(time.perf_counter() - start, 1)
    if stopped:
        return {"seconds": f"stopped at {seconds}", "peak_gb": f"> {cap_gb}", "printed": ""}
    stderr = (out / "stderr.txt").read_text()
    if child.returncode != 0:
        raise SystemExit(f"python {' '.join(argv)} failed:\n{stderr[-2000:]}")
    peak = next(int(line.split()[-1]) for line in stderr.splitlines() if "Maximum resident set size" in line)
    return {"seconds": seconds, "peak_gb": round(peak / 1e6, 2), "printed": (out / "stdout.txt").read_text().strip()}


def environment(code: Path) -> dict:
    """The environment of a measured command: ``code``'s mgbench first (the command also runs in ``code``: Python puts
    the working folder before PYTHONPATH), two threads unless OMP_NUM_THREADS says otherwise (e.g. 1 under ``nice``
    on a machine shared with long jobs)."""
    return {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}


def imported(code: Path) -> str:
    """Where the mgbench that a command run for ``code`` imports lives."""
    return subprocess.run([sys.executable, "-c", "import mgbench; print(mgbench.__file__)"], env=environment(code),
                          cwd=code, capture_output=True, text=True, check=True).stdout.strip()


def report_row(run: Path, other: "Path | None", out: Path, cap_gb: float, code: Path) -> dict:
    """``mgbench report RUN [--baseline OTHER]``, measured, with report.md's lines and size."""
    argv = ["-m", "mgbench.cli", "report", str(run), *(["--baseline", str(other)] if other else []), "--out", str(out)]
    row = measure(argv, out, cap_gb, code)
    row.pop("printed")
    report = out / "report.md"
    return {**row, "report_lines": len(report.read_text().splitlines()) if report.exists() else None,
            "report_kb": round(report.stat().st_size / 1e3) if report.exists() else None}


def compare_row(run: Path, other: Path, out: Path, cap_gb: float, code: Path) -> dict:
    """``compare_results`` alone, measured: its seconds and the memory it adds to both loaded runs."""
    row = measure(["-c", COMPARE, str(run), str(other)], out, cap_gb, code)
    loaded, seconds, aggregates, changed = row.pop("printed").split() or [None] * 4
    return {**row, "loaded_gb": float(loaded), "diff_seconds": float(seconds), "aggregates": int(aggregates),
            "changed": int(changed)} if loaded else row


def intervals_speed(run: Path, reference_groups: int) -> pd.DataFrame:
    """Groups per second of ``with_intervals`` (vectorized) and of the per-group scipy calls it replaced, on the bench's
    intervention cases: one group per (technique, pair, site), its 4 metrics over the run's prompts. The reference runs
    on the first ``reference_groups`` groups only (at ~50 ms a group it would take minutes for all)."""
    import reference_stats

    from mgbench.stats.intervals import with_intervals

    table = pd.read_parquet(run / "interventions.parquet")
    by, metrics = ["technique", "original", "desired", "layer", "component"], ["effect", "effect_original",
                                                                                "effect_desired", "precision"]
    first = table[table.groupby(by, sort=False).ngroup() < reference_groups]
    rows = []
    for name, compute, part in (("per group (scipy each)", reference_stats.with_intervals, first),
                                ("vectorized", with_intervals, first), ("vectorized", with_intervals, table)):
        start = time.perf_counter()
        groups = len(compute(part, by, metrics))
        seconds = time.perf_counter() - start
        rows.append({"with_intervals": name, "groups": groups, "seconds": round(seconds, 1),
                     "groups_per_s": round(groups / seconds, 1)})
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the fixtures and reports")
    parser.add_argument("--keep", action="store_true", help="reuse fixtures already written in --work")
    parser.add_argument("--csv", type=Path, help="also write the rows here")
    parser.add_argument("--cap-gb", type=float, default=4.5, help="stop a command whose memory passes this (GB)")
    parser.add_argument("--code", action="append", metavar="NAME=DIR",
                        help="a checkout whose mgbench is measured, repeatable (each command runs once per checkout, "
                        "alternating, so that a shared machine's load falls on all alike); default: this one. "
                        "`git archive BASE mgbench | tar -x -C DIR` gives the code before a change")
    parser.add_argument("--scales", default="25k,1.3M,2.6M,6.5M", help="comma list of 25k, 1.3M, 2.6M, 6.5M")
    parser.add_argument("--commands", default="report,diff,compare", help="comma list of report, diff (the report "
                        "with --baseline) and compare (compare_results alone)")
    parser.add_argument("--intervals", type=int, default=0, metavar="GROUPS",
                        help="also time with_intervals on small's intervention cases (the per-group reference on "
                        "the first GROUPS of them)")
    args = parser.parse_args()
    work, codes = args.work, dict(c.split("=", 1) for c in args.code or [f"this={ROOT}"])
    wrote = {"25k": write(work / "a25k", ("small",), 2, 0, args.keep)
             + write(work / "b25k", ("small",), 2, 1, args.keep)}
    if set(args.scales.split(",")) - {"25k"} or args.intervals:
        wrote["paper"] = write(work / "a", SIZES, 100, 0, args.keep) + write(work / "b", SIZES, 100, 1, args.keep)
    for name, code in codes.items():
        print(f"{name}: {imported(Path(code).resolve())}", flush=True)
    print(f"fixtures written in {', '.join(f'{k}: {v:.1f} s' for k, v in wrote.items())}", flush=True)
    runs = {"25k": ("a25k/small", "b25k/small"), "1.3M": ("a/small", "b/small"), "2.6M": ("a/large", "b/large"),
            "6.5M": ("a", "b")}
    rows = []
    for scale in args.scales.split(","):
        run, other = runs[scale]
        commands = {"report": (f"mgbench report {run}", report_row, None),
                    "diff": (f"mgbench report {run} --baseline {other}", report_row, work / other),
                    "compare": (f"compare_results({run}, {other}) alone", compare_row, work / other)}
        for command, (text, row, baseline) in ((c, commands[c]) for c in args.commands.split(",")):
            for name, code in codes.items():
                rows.append({"rows": scale, "code": name, "command": text,
                             **row(work / run, baseline, work / "out" / f"{scale}-{command}-{name}", args.cap_gb,
                                   Path(code).resolve())})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print("\n" + table.to_markdown(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.intervals:
        print("\n" + intervals_speed(work / "a" / "small", args.intervals).to_markdown(index=False))


if __name__ == "__main__":
    main()
