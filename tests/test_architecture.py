"""The package's layout holds (pyproject's ``[tool.importlinter]`` contracts), and the check catches breaks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mgbench

ROOT = Path(__file__).resolve().parents[1]
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
LAYERS, CYCLES = "Layers (imports point down)", "No import cycles among siblings"  # the contracts' names


def lint(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the package under ``root`` (that copy, not the installed one)."""
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)})


def test_imports_point_down_the_layers_without_cycles():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{LAYERS} KEPT" in result.stdout and f"{CYCLES} KEPT" in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    # the engine importing the report: upward, and so also a circle between the two packages
    ("engine/sites.py", "from ..report import figures", {LAYERS, CYCLES}),
    ("concepts/audioset.py", "from ..experiments import metrics", {LAYERS, CYCLES}),
    ("classify/passt.py", "from ..zoo import loading", {LAYERS}),  # the zoo and the classifiers stay independent
    ("zoo/tiny.py", "from . import loading", {CYCLES}),  # loading imports tiny: a circle inside zoo/
], ids=["upward", "upward-to-experiments", "sibling", "cycle"])
def test_a_broken_layout_is_caught(package_with, module, line, broken):
    result = lint(package_with(module, line))
    assert result.returncode == 1, result.stdout
    found = {line.removesuffix(" BROKEN") for line in result.stdout.splitlines() if line.endswith(" BROKEN")}
    assert found == broken, result.stdout


def test_every_subpackage_says_what_lives_there():
    for init in (ROOT / "mgbench").glob("*/__init__.py"):
        if init.parent.name != "data":
            assert "Imports" in (init.read_text()), f"{init} should say what it may import"


def test_public_api_resolves_lazily():
    code = ("import sys, mgbench; assert 'torch' not in sys.modules; "
            "[getattr(mgbench, n) for n in mgbench.__all__]; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert set(mgbench.__all__) <= set(dir(mgbench))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mgbench.nope  # noqa: B018
