"""The tiny PaSST: hear21passt's model and mel front end at a small size, random weights from a seed.

Saved once under ``mgbench_home()/tiny`` and loaded back through ``load_passt_folder``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..paths import build_folder_once, tiny_folder
from ..seeding import redraw_
from .passt import passt_wrapper, save_passt

TINY_PASST = dict(embed_dim=32, depth=2, num_heads=2)


def _init_std(name: str, tensor: torch.Tensor) -> float:
    """0.3 for the linear layers' weights (larger than timm's 0.02, so logits depend on the audio), 0.02 for the
    other random tensors (position and class tokens, biases), as timm initialises them."""
    return 0.3 if name.endswith(".weight") and tensor.dim() == 2 and "embed" not in name else 0.02


def tiny_passt_folder(seed: int = 0) -> Path:
    """Folder of the tiny PaSST classifier (built on first use), loadable with ``load_passt_folder``."""
    def build(tmp: Path) -> None:
        wrapper = passt_wrapper(dict(TINY_PASST))
        redraw_(wrapper.net, seed, _init_std)  # the same weights on every CPU (mgbench.seeding)
        save_passt(tmp, dict(TINY_PASST), wrapper)

    return build_folder_once(tiny_folder("passt", seed), build)
