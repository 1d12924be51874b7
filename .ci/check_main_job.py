"""CI: the main job's report recovers the planted truth (every row of every "Planted truth recovered?" table says
yes) and its log is readable (fewer than 100 lines from the run's first line on, no escape codes or carriage
returns anywhere).

Usage: python .ci/check_main_job.py RESULTS_FOLDER LOG_FILE
"""

import re
import sys
from pathlib import Path


def planted_rows(report: str) -> list[list[str]]:
    """The rows of the planted-truth tables of report.md, as cells (header row first per table)."""
    rows, inside = [], False
    for line in report.splitlines():
        if line.startswith("## "):
            inside = line.startswith("## Planted truth recovered?")
        elif inside and line.startswith("|") and not line.startswith("|:") and not line.startswith("|-"):
            rows.append([cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip("|"))])
        elif inside and line.startswith("### "):
            inside = False  # the tables under it (site ranking, lens) are numbers, not checks
    return rows


def main(results: Path, log: Path) -> int:
    rows = planted_rows((results / "report.md").read_text())
    header = rows[0] if rows else []
    checks = [dict(zip(header, row)) for row in rows if row != header]
    failed = [row for row in checks if row.get("recovered") != "yes"]
    text = log.read_text()
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("mgbench: ")), len(lines))
    lines = lines[first:]  # what the run wrote (pip's install output comes before it)
    problems = [f"planted truth not recovered: {row}" for row in failed]
    problems += ["no planted-truth checks in the report"] if not checks else []
    problems += [f"the log has {len(lines)} lines (at most 99)"] if len(lines) >= 100 else []
    problems += ["the log holds escape codes or carriage returns"] if "\x1b" in text or "\r" in text else []
    for problem in problems:
        print(f"check_main_job: {problem}", file=sys.stderr)
    print(f"check_main_job: {len(checks)} planted-truth checks, {len(checks) - len(failed)} recovered; log of "
          f"{len(lines)} lines")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
