"""Intervention techniques: how an edit is made from the original and the desired concept's mean output at a site.

Each is a function ``(original mean, desired mean, alpha) -> (edit mode, vector)``; add a technique here and the
command line, the bench cases and the tables take its name. ``adjust`` is the additive steer
``h + alpha * (desired - original)``; alpha 1 gives the paper's adjust bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..engine.hooks import ADD, REPLACE

TECHNIQUES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], tuple[str, torch.Tensor]]] = {
    "replace": lambda original, desired, alpha: (REPLACE, desired),
    "adjust": lambda original, desired, alpha: (ADD, alpha * (desired - original)),
}
#: techniques without a strength (replace sets the output, whatever alpha): not swept, their rows carry alpha 1
UNSCALED = ("replace",)
