"""``TunedLens``: per-layer affine translators from a decoder layer's residual output to the final layer's."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..engine.hooks import output_tensor
from ..errors import ConfigError


class TunedLens(torch.nn.Module):
    """Translator ``k`` maps layer ``k``'s output ``h`` to ``h + W_k h + b_k``, an estimate of the final layer's
    output (the input of the decoder's final norm). ``W_k`` and ``b_k`` start at zero, so an untrained lens is
    the plain DecoderLens cut; the last layer needs none (the identity)."""

    def __init__(self, hidden: int, layers: int):
        super().__init__()
        self.translators = torch.nn.ModuleList(torch.nn.Linear(hidden, hidden) for _ in range(layers - 1))
        for translator in self.translators:
            torch.nn.init.zeros_(translator.weight)
            torch.nn.init.zeros_(translator.bias)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "TunedLens":
        """A lens holding ``state`` (a ``state_dict``), in its dtype."""
        bias = state["translators.0.bias"]
        lens = cls(bias.shape[0], len(state) // 2 + 1).to(bias.dtype)
        lens.load_state_dict(state)
        return lens

    @property
    def num_layers(self) -> int:
        return len(self.translators) + 1

    def forward(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Layer ``layer``'s (0-based) output ``h`` translated to the final layer's."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"the lens has layers 0..{self.num_layers - 1}, not {layer}")
        if layer == self.num_layers - 1:
            return h
        translator = self.translators[layer]
        return h + translator(h.to(translator.weight.dtype)).to(h.dtype)

    def hook(self, layer: int):
        """A forward hook for decoder layer ``layer`` that translates its output in place (under a DecoderLens cut
        after that layer, the final norm and heads then read the translated state)."""
        def hook(module, args, output):
            out = output_tensor(output)
            out.copy_(self(out, layer))
            return output

        return hook

    def save(self, path: Path, info: dict) -> None:
        """The translators as safetensors, with ``info`` (what they were trained on) in the metadata."""
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(path),
                  metadata={"mgbench_tuned_lens": json.dumps(info, sort_keys=True, default=str)})


def load_lens(path: Path) -> tuple[TunedLens, dict]:
    """A lens saved by ``TunedLens.save`` and its info; a one-line error for a file that is not one."""
    try:
        with safe_open(str(path), "pt") as f:
            info = json.loads((f.metadata() or {})["mgbench_tuned_lens"])
        lens = TunedLens.from_state(load_file(str(path)))
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as e:
        raise ConfigError(f"{path} is not a tuned lens saved by mgbench ({type(e).__name__}: {e}); a run of the "
                          "tuned-lens experiment writes one into its results folder (tuned_lens.safetensors)") from None
    return lens, info
