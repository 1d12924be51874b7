"""Edit slots: site hooks installed once, before ``torch.compile``, driven by device tensors set in place.

A compiled decoder silently skips forward hooks registered after compiling (dynamo does not guard on
a module's hooks), so a compiled run with per-batch edit hooks would equal the plain run without any
error. ``EditSlots`` instead registers one permanent hook on every site before anything compiles.
Each hook reads its site's slot in three tensors on the model's device: which rows to edit, whether
to add or replace, and the vectors. A batch writes its edits into them in place (``EditSlots.applied``)
and clears them after, so compiled code, and under CUDA graphs the captured kernels, which keep reading
the same addresses, see every batch's edits.

The arithmetic is the per-batch hook's (``hooks._edit_hook``): a replaced row becomes its vector, an added
row ``out + vector`` and every other row keeps ``out`` exactly, so uncompiled runs give the same bits
either way and an empty slot changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from ..zoo.loading import persistent
from .hooks import RowEdit, edit_rows, has_windows, output_tensor
from .sites import TRANSFORMERS_SITES, all_sites, site_module

#: the layers' attribute that holds their slots
SLOTS_ATTRIBUTE = "_mgbench_edit_slots"


def static(tensor: torch.Tensor) -> torch.Tensor:
    """Mark ``tensor`` as living at a fixed address (CUDA graphs read and write it in place, never copy it)."""
    torch._dynamo.mark_static_address(tensor)
    return tensor


class EditSlots:
    """One permanent, tensor-driven edit hook per site of ``layers`` (every component of ``components``)."""

    def __init__(self, layers: torch.nn.ModuleList, components: "dict[str, str]" = TRANSFORMERS_SITES):
        self.sites = all_sites(len(layers), tuple(components))
        self.modules = [site_module(layers, site, components) for site in self.sites]
        self.index = {site: i for i, site in enumerate(self.sites)}
        weight = next(layers.parameters())
        self.device, self.dtype, self.hidden = weight.device, weight.dtype, layers[0].embed_dim
        self.rows = 0  # the decoder batch the slots are sized for (0: none yet)
        self.mask = self.add = self.values = torch.empty(0)
        self._sized: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.modules)]

    def _hook(self, i: int):
        def hook(module, args, output):
            out = output_tensor(output)
            if out.shape[0] != self.rows:  # a batch the slots were not set for: nothing to edit
                return output
            edited = torch.where(self.mask[i], torch.where(self.add[i], out + self.values[i], self.values[i]), out)
            return (edited, *output[1:]) if isinstance(output, tuple) else edited

        return persistent(hook)

    def _size(self, rows: int) -> None:
        """Switch to the slots of a decoder batch of ``rows``, allocated once per batch size and marked static: a
        compiled step's graph (and a CUDA graph) holds their addresses, so the same batch size keeps its graph, edits
        or not, also after batches of another size."""
        if rows not in self._sized:
            n, kw = len(self.sites), dict(device=self.device)
            self._sized[rows] = tuple(static(t) for t in (
                torch.zeros(n, rows, 1, 1, dtype=torch.bool, **kw), torch.zeros(n, rows, 1, 1, dtype=torch.bool, **kw),
                torch.zeros(n, rows, 1, self.hidden, dtype=self.dtype, **kw)))
        self.mask, self.add, self.values = self._sized[rows]
        self.rows = rows

    @contextlib.contextmanager
    def applied(self, edits: "Sequence[RowEdit | None]", guided: bool = True) -> Iterator[None]:
        """Write ``edits`` (one per prompt, as ``hooks.edit_hooks`` takes them; all ``None`` for a plain batch) into
        the slots for the block, in place, once for the whole batch; clear them afterwards, also when the block
        raises."""
        if has_windows(edits):
            raise ValueError("edit slots edit every frame; run edits limited to frames (--frames) uncompiled")
        by_site = edit_rows(edits, guided)
        missing = [str(site) for site in by_site if site not in self.index]
        if missing:
            raise ValueError(f"no edit slot at {', '.join(missing)}; slots exist for layers 0..{self.sites[-1].layer} "
                             f"and components {', '.join(sorted({s.component for s in self.sites}))}")
        self._size(2 * len(edits) if guided else len(edits))
        try:
            for site, items in by_site.items():
                i = self.index[site]
                rows = torch.tensor([r for r, _, _, _ in items], device=self.device)
                self.mask[i].index_fill_(0, rows, True)
                adds = torch.tensor([a for _, _, a, _ in items], device=self.device)
                self.add[i].index_copy_(0, rows, adds[:, None, None])
                vectors = torch.stack([v for _, v, _, _ in items]).to(device=self.device, dtype=self.dtype)
                self.values[i].index_copy_(0, rows, vectors[:, None, :])
            yield
        finally:
            self.mask.zero_()

    @classmethod
    def on(cls, layers: torch.nn.ModuleList) -> "EditSlots":
        """The slots of ``layers`` (transformers' site names), installed on first use and kept with the layers, so
        every runner of one model shares one set of hooks."""
        slots = getattr(layers, SLOTS_ATTRIBUTE, None)
        if slots is None:
            slots = cls(layers)
            setattr(layers, SLOTS_ATTRIBUTE, slots)
        return slots
