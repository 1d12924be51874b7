"""Captures and DecoderLens cuts inside the compiled step: hooks installed once, before ``torch.compile``.

A compiled run must generate its baselines, captures, cuts and edits with one and the same step: compiled
kernels round differently from eager ones, so a baseline from the eager step and an edit from the compiled
one differ even where the edit changes nothing (a null edit's effect would not be 0). Compiled code skips
hooks registered after compiling, so, like ``slots.EditSlots`` for edits, every site and layer carries one
permanent hook from the start, driven by device tensors that a batch sets in place:

- ``CaptureTaps`` adds each site's output (in float32 or wider, as ``hooks.Capture`` sums it) into a running
  sum per row, at every step of every batch (the sums are zeroed when a batch starts and read by a capture
  after it). The same arithmetic as ``Capture``'s hooks, so the sums are equal bit for bit where the step is.
- ``CutGates`` keeps each layer's output (``live``) or passes its input through unchanged: a cut after ``k``
  layers runs every layer but the final norm reads layer ``k - 1``'s output exactly, as ``hooks.cut_decoder``
  gives it (the skipped layers' work is spent and discarded: a compiled cut costs a full step).

``install`` puts the hooks on in the order the arithmetic needs (edit, capture, gate): a capture sees the
edited output, and a gated layer's own edits and captures are discarded with its output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..zoo.loading import persistent
from .hooks import Capture, output_tensor
from .sites import TRANSFORMERS_SITES, all_sites, site_module
from .slots import EditSlots, static

#: the layers' attributes that hold their taps and gates
TAPS_ATTRIBUTE, GATES_ATTRIBUTE = "_mgbench_capture_taps", "_mgbench_cut_gates"


class CaptureTaps:
    """One permanent hook per site of ``layers`` that sums the site's output per row into ``sums`` (site, row)."""

    def __init__(self, layers: torch.nn.ModuleList, components: "dict[str, str]" = TRANSFORMERS_SITES):
        self.sites = all_sites(len(layers), tuple(components))
        self.index = {site: i for i, site in enumerate(self.sites)}
        weight = next(layers.parameters())
        self.device, self.hidden = weight.device, layers[0].embed_dim
        self.dtype = torch.promote_types(weight.dtype, torch.float32)
        self.rows, self.sums = 0, torch.empty(0)
        self._sized: dict[int, torch.Tensor] = {}  # one buffer per decoder batch, allocated once (fixed addresses)
        self.handles = [site_module(layers, site, components).register_forward_hook(self._hook(i))
                        for i, site in enumerate(self.sites)]

    def _hook(self, i: int):
        def hook(module, args, output):
            out = output_tensor(output)
            if out.shape[0] == self.rows:
                self.sums[i].add_(out.to(self.dtype).sum(dim=1))
            return output

        return persistent(hook)

    def start(self, rows: int) -> None:
        """Zero the sums for a batch of ``rows`` decoder rows (before every batch of a compiled runner, so that its
        step always holds the taps: a step traced without them would be another graph)."""
        if rows not in self._sized:
            self._sized[rows] = static(torch.zeros(len(self.sites), rows, self.hidden, dtype=self.dtype,
                                                   device=self.device))
        self.rows, self.sums = rows, self._sized[rows]
        self.sums.zero_()

    def read(self, capture: Capture, rows: torch.Tensor, steps: int, layers: int) -> None:
        """Fill ``capture`` with the batch's sums of its sites at decoder ``rows`` (a batch's real rows), over
        ``steps`` frames; sites of layers at or past ``layers`` (a cut) ran no step and are left out, as the
        per-batch hooks leave them."""
        for site in capture.sites:
            if site.layer < layers:
                capture.sums[site] = self.sums[self.index[site]].index_select(0, rows)
                capture.steps[site] = steps


class CutGates:
    """One permanent hook per layer of ``layers``: a layer whose ``live`` flag is off passes its input through."""

    def __init__(self, layers: torch.nn.ModuleList):
        self.live = static(torch.ones(len(layers), dtype=torch.bool, device=next(layers.parameters()).device))
        self.handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)]

    def _hook(self, i: int):
        def hook(module, args, output):
            out = output_tensor(output)
            kept = torch.where(self.live[i], out, args[0])
            return (kept, *output[1:]) if isinstance(output, tuple) else kept

        return persistent(hook)

    @contextlib.contextmanager
    def cut(self, layers: "int | None") -> Iterator[None]:
        """For the block, only the first ``layers`` layers count (None: all); every layer counts again afterwards."""
        if layers is not None:
            if not 1 <= layers <= len(self.live):
                raise ValueError(f"cannot cut a {len(self.live)}-layer decoder after {layers} layers; "
                                 f"use 1..{len(self.live)}")
            self.live[layers:] = False
        try:
            yield
        finally:
            self.live.fill_(True)


def install(layers: torch.nn.ModuleList) -> tuple[EditSlots, CaptureTaps, CutGates]:
    """The edit slots, capture taps and cut gates of ``layers``, installed on first use (in that order) and kept with
    the layers, so every runner of one model shares one set of hooks."""
    slots = EditSlots.on(layers)
    if getattr(layers, TAPS_ATTRIBUTE, None) is None:
        setattr(layers, TAPS_ATTRIBUTE, CaptureTaps(layers))
    if getattr(layers, GATES_ATTRIBUTE, None) is None:
        setattr(layers, GATES_ATTRIBUTE, CutGates(layers))
    return slots, getattr(layers, TAPS_ATTRIBUTE), getattr(layers, GATES_ATTRIBUTE)
