"""The tiny PaSST: hear21passt's model and mel front end at a small size, random weights from a seed.

Saved once under ``mgbench_home()/tiny`` and loaded back through ``load_passt_folder``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..paths import build_folder_once, tiny_folder
from .passt import passt_wrapper, save_passt

TINY_PASST = dict(embed_dim=32, depth=2, num_heads=2)


def tiny_passt_folder(seed: int = 0) -> Path:
    """Folder of the tiny PaSST classifier (built on first use), loadable with ``load_passt_folder``."""
    def build(tmp: Path) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            wrapper = passt_wrapper(dict(TINY_PASST))
            for module in wrapper.net.modules():  # a larger init than timm's 0.02, so logits depend on the audio
                if isinstance(module, torch.nn.Linear):
                    torch.nn.init.normal_(module.weight, std=0.3)
            save_passt(tmp, dict(TINY_PASST), wrapper)

    return build_folder_once(tiny_folder("passt", seed), build)
