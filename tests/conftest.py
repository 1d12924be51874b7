import json
import shutil
from importlib import resources
from pathlib import Path

import pytest
import torch

from mgbench.concepts.concept_set import load_concepts
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.zoo.loading import load_musicgen


@pytest.fixture(scope="session")
def tiny():
    return load_musicgen("tiny")


@pytest.fixture(scope="session")
def concepts():
    return load_concepts()


@pytest.fixture
def runner(tiny):
    return MusicgenRunner(tiny, GenerationSettings(seconds=0.5, seed=3))


@pytest.fixture
def prompts(concepts):
    return concepts.prompts("guitar", 2) + concepts.prompts("edm", 2)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


@pytest.fixture
def cello() -> dict:
    """A concept the paper lacks, as a concepts file states it: AudioSet labels and a text."""
    return {"name": "cello", "category": "instrument", "slot": "instrument", "word": "cello",
            "labels": ["Cello", "Bowed string instrument"], "text": "a cello melody"}


@pytest.fixture
def concept_file(tmp_path):
    """``write(*extra)``: the shipped concepts plus ``extra`` concepts as a file in ``tmp_path``; returns its path."""
    def write(*extra: dict):
        raw = json.loads(resources.files("mgbench.data").joinpath("concepts.json").read_text())
        path = tmp_path / "concepts.json"
        path.write_text(json.dumps({**raw, "concepts": raw["concepts"] + list(extra)}))
        return path

    return write


@pytest.fixture
def package_with(tmp_path):
    """``plant(module, line)``: a copy of the package and pyproject.toml in ``tmp_path`` with ``line`` appended to
    ``mgbench/<module>``; returns the copy's root (for the checks that must catch what was planted)."""
    def plant(module: str, line: str) -> Path:
        root = Path(__file__).resolve().parents[1]
        shutil.copytree(root / "mgbench", tmp_path / "mgbench", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(root / "pyproject.toml", tmp_path)
        path = tmp_path / "mgbench" / module
        path.write_text(path.read_text() + f"\n{line}\n")
        return tmp_path

    return plant
