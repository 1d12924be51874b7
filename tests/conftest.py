import pytest
import torch

from mgbench.concepts.concept_set import load_concepts
from mgbench.model.loading import load_musicgen
from mgbench.model.runner import GenerationSettings, MusicgenRunner


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
