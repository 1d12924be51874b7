"""The 527 AudioSet classes, in the order AudioSet classifiers emit their logits."""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib import resources

import pandas as pd

from ..errors import unknown

NUM_CLASSES = 527


@lru_cache(maxsize=1)
def audioset_labels() -> pd.DataFrame:
    """Table with columns ``index, mid, display_name`` (one row per class, in logit order)."""
    with resources.files("mgbench.data").joinpath("audioset_class_labels_indices.csv").open() as f:
        table = pd.read_csv(f)
    if len(table) != NUM_CLASSES or list(table["index"]) != list(range(NUM_CLASSES)):
        raise RuntimeError("mgbench's AudioSet label file is damaged: reinstall mgbench")
    return table


def label_names() -> list[str]:
    """Display names of the 527 classes in logit order."""
    return list(audioset_labels()["display_name"])


def label_index(name: str) -> int:
    """Logit index of an AudioSet class given its display name (exact, case-sensitive)."""
    names = label_names()
    try:
        return names.index(name)
    except ValueError:
        close = difflib.get_close_matches(name, names, n=6, cutoff=0.5)
        raise unknown("AudioSet label", name, close or ["(none close)"],
                      "All names: mgbench/data/audioset_class_labels_indices.csv") from None
