"""Every import of the package is declared where it is needed (pyproject's ``[tool.deptry]``), and the check catches
an undeclared one: runtime imports in ``dependencies``, optional ones in their extra, none from the test extra."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def deptry(root: Path) -> subprocess.CompletedProcess:
    """deptry on the package under ``root`` with that copy's pyproject.toml."""
    return subprocess.run([sys.executable, "-m", "deptry", "--no-ansi", "mgbench"], cwd=root, capture_output=True,
                          text=True)


def test_every_import_is_declared():
    result = deptry(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module, line, rule", [
    ("stats/power.py", "import statsmodels", "DEP004"),  # a package only the test extra installs
    ("report/page.py", "import mgbench_undeclared_package", "DEP001"),  # declared nowhere
], ids=["test-extra-at-run-time", "undeclared"])
def test_an_undeclared_import_fails(package_with, module, line, rule):
    result = deptry(package_with(module, line))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{rule} '{line.split()[1]}'" in result.stdout + result.stderr
