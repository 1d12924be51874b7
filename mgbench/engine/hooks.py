"""Forward hooks that read (capture) or change (intervene on) site outputs during generation.

Generation with classifier-free guidance runs a doubled batch: rows ``0..B-1`` are the conditional
rows of the ``B`` prompts and rows ``B..2B-1`` the unconditional ones (null text condition). Hooks
see every forward call of the decoder (one per generation step with the KV cache) and are always
removed when the ``with`` block ends, also when generation raises.

An edit may be limited to a window of generated frames ``[t0, t1)`` (``RowEdit.frames``), frames counted as
decode steps from 0. A ``FrameClock`` pre-hook on the decoder tells the edit hooks which frame a call computes;
outside its window a row's output is left exactly as it is.

transformers' MusicGen ``generate`` runs the first frame twice (N + 1 decoder calls for N frames,
both first calls without a cache). Under that engine a capture therefore restarts whenever the
decoder is called without a cache, so that every generated frame counts exactly once in its means;
mgbench's own loop (``decode.py``) calls the decoder once per frame and needs no restart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from .sites import TRANSFORMERS_SITES, Site, site_module

REPLACE, ADD = "replace", "add"
@dataclass(frozen=True)
class RowEdit:
    """An intervention on one prompt's rows: at ``site``, set the output to ``cond`` (``replace``) or add it (``add``).

    ``uncond``, when given, is applied the same way to the prompt's unconditional row. ``frames`` ``(t0, t1)``
    limits the edit to generated frames ``t0 <= t < t1`` (None: every frame).
    """

    site: Site
    mode: str
    cond: torch.Tensor
    uncond: "torch.Tensor | None" = None
    frames: "tuple[int, int] | None" = None

    def __post_init__(self) -> None:
        if self.mode not in (REPLACE, ADD):
            raise ValueError(f"RowEdit mode must be {REPLACE!r} or {ADD!r}, not {self.mode!r}")
        if self.frames is not None and not 0 <= self.frames[0] <= self.frames[1]:
            raise ValueError(f"RowEdit frames must be (t0, t1) with 0 <= t0 <= t1, not {self.frames!r}")


class FrameClock:
    """The generated frame (decode step, from 0) that the decoder's current call computes.

    Its pre-hook on the decoder starts at frame 0 on a call without a KV cache (transformers' ``generate`` runs
    frame 0 twice, both without one) and otherwise counts one frame per call (mgbench's own loop passes its cache
    from frame 0 on), so a frame means the same on both engines. Build one per generate call.
    """

    def __init__(self) -> None:
        self.frame = -1

    def pre_hook(self, decoder: torch.nn.Module) -> tuple[torch.nn.Module, object]:
        """``(decoder, hook)`` for ``installed``'s pre-hooks."""
        def hook(module, args, kwargs):
            self.frame = 0 if kwargs.get("cache", kwargs.get("past_key_values")) is None else self.frame + 1

        return decoder, hook


def output_tensor(output: "torch.Tensor | tuple") -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def installed(hooks: "list[tuple[torch.nn.Module, object]]",
              pre_hooks: "Sequence[tuple[torch.nn.Module, object]]" = ()) -> Iterator[None]:
    """Register forward hooks ``(module, fn)`` (and forward pre-hooks that take keyword arguments) for the block,
    and always remove them afterwards."""
    handles = []
    try:
        for module, fn in pre_hooks:
            handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
        for module, fn in hooks:
            handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


Window = "tuple[int, int] | None"


def _edit_hook(rows: torch.Tensor, values: torch.Tensor, add: torch.Tensor, batch_rows: int,
               windows: "Sequence[Window]" = (), clock: "FrameClock | None" = None):
    """A hook that edits ``rows`` of a site's output; ``rows``, ``values`` ``(n, 1, hidden)`` and ``add``
    ``(n, 1, 1)`` already live on the model's device in its dtype, so a step copies nothing to the device.
    With ``windows`` (one per row, None: every frame) and the ``clock``, only the rows whose window holds the
    current frame are edited; the others keep their output exactly. The rows live at a frame are picked on the
    host and moved to the device once per distinct set of rows, not per step."""
    picked: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def hook(module, args, output):
        out = output_tensor(output)
        if out.shape[0] != batch_rows:
            raise RuntimeError(f"intervention planned for {batch_rows} rows but the decoder ran {out.shape[0]}")
        at_rows, at_values, at_add = rows, values, add
        if clock is not None:
            live = tuple(i for i, w in enumerate(windows) if w is None or w[0] <= clock.frame < w[1])
            if not live:
                return output
            if live not in picked:
                pick = torch.tensor(live, device=rows.device)
                picked[live] = rows[pick], values[pick], add[pick]
            at_rows, at_values, at_add = picked[live]
        sel = out.index_select(0, at_rows)
        out.index_copy_(0, at_rows, torch.where(at_add, sel + at_values, at_values.expand_as(sel)))
        return output

    return hook


def edit_rows(edits: "Sequence[RowEdit | None]",
              guided: bool = True) -> "dict[Site, list[tuple[int, torch.Tensor, bool, Window]]]":
    """``edits[b]`` (``None``: leave prompt ``b`` alone) as ``(decoder row, vector, adds, frames)`` per site.

    With ``guided`` the decoder batch is doubled for classifier-free guidance and an edit's ``uncond``
    vector goes to row ``B + b``.
    """
    n = len(edits)
    by_site: dict[Site, list[tuple[int, torch.Tensor, bool, Window]]] = {}
    for b, edit in enumerate(edits):
        if edit is None:
            continue
        by_site.setdefault(edit.site, []).append((b, edit.cond, edit.mode == ADD, edit.frames))
        if edit.uncond is not None:
            if not guided:
                raise ValueError("an unconditional-row edit needs classifier-free guidance (guidance_scale > 1)")
            by_site[edit.site].append((n + b, edit.uncond, edit.mode == ADD, edit.frames))
    return by_site


def has_windows(edits: "Sequence[RowEdit | None] | None") -> bool:
    """Whether any of ``edits`` is limited to a window of frames."""
    return any(e is not None and e.frames is not None for e in edits or ())


def edit_hooks(layers: torch.nn.ModuleList, edits: "Sequence[RowEdit | None]", guided: bool = True,
               components: "dict[str, str]" = TRANSFORMERS_SITES, clock: "FrameClock | None" = None) -> list:
    """Hooks that apply ``edits[b]`` to prompt ``b`` (``edit_rows``), one per edited site.

    ``components`` locates the sites in ``layers`` (``site_module``). The rows and vectors are put on
    the site's device, in its dtype, here: once per batch, never per generation step. Edits limited to frames
    need the ``clock`` whose pre-hook runs on the decoder.
    """
    if has_windows(edits) and clock is None:
        raise ValueError("edits limited to frames need a FrameClock on the decoder")
    hooks = []
    for site, items in edit_rows(edits, guided).items():
        module = site_module(layers, site, components)
        weight = next(module.parameters())
        rows = torch.tensor([r for r, _, _, _ in items], device=weight.device)
        values = torch.stack([v for _, v, _, _ in items]).to(device=weight.device, dtype=weight.dtype)[:, None, :]
        add = torch.tensor([a for _, _, a, _ in items], device=weight.device)[:, None, None]
        windows = [w for _, _, _, w in items]
        hooks.append((module, _edit_hook(rows, values, add, 2 * len(edits) if guided else len(edits), windows,
                                         clock if has_windows(edits) else None)))
    return hooks


@dataclass
class Capture:
    """Running sums of site outputs over generated frames (each frame once), per batch row."""

    sites: list[Site]
    sums: dict[Site, torch.Tensor] = field(default_factory=dict)
    steps: dict[Site, int] = field(default_factory=dict)

    def restart_hook(self, decoder: torch.nn.Module) -> tuple[torch.nn.Module, object]:
        """A pre-hook for the decoder (the module holding ``layers``): a call without a KV cache starts the
        sequence at frame 0 again, so what was summed before is dropped."""
        def hook(module, args, kwargs):
            if kwargs.get("cache", kwargs.get("past_key_values")) is None:
                self.sums.clear()
                self.steps.clear()

        return decoder, hook

    def hooks(self, layers: torch.nn.ModuleList, components: "dict[str, str]" = TRANSFORMERS_SITES) -> list:
        """Forward hooks that add each captured site's output (summed over the positions of the call) per row;
        ``components`` locates the sites in ``layers`` (``site_module``)."""
        def make(site: Site):
            def hook(module, args, output):
                out = output_tensor(output).detach()
                total = out.to(torch.promote_types(out.dtype, torch.float32)).sum(dim=1)
                self.sums[site] = total if site not in self.sums else self.sums[site] + total
                self.steps[site] = self.steps.get(site, 0) + out.shape[1]
            return hook

        return [(site_module(layers, site, components), make(site)) for site in self.sites]

    def row_means(self, site: Site) -> torch.Tensor:
        """Time-averaged output per decoder row, ``(rows, hidden)`` on the CPU."""
        if site not in self.sums:
            raise KeyError(f"site {site} was not captured (captured: {', '.join(map(str, self.sites))})")
        return (self.sums[site] / self.steps[site]).cpu()

    def half_means(self, site: Site, num_prompts: int) -> tuple[torch.Tensor, "torch.Tensor | None"]:
        """Mean over steps and prompts of the conditional rows and of the unconditional rows (None without CFG)."""
        means = self.row_means(site)
        uncond = means[num_prompts:].mean(0) if means.shape[0] == 2 * num_prompts else None
        return means[:num_prompts].mean(0), uncond


@contextlib.contextmanager
def cut_decoder(decoder: torch.nn.Module, num_layers: int) -> Iterator[None]:
    """Run only the first ``num_layers`` decoder layers (then the final norm and heads, as usual): DecoderLens."""
    full = decoder.layers
    if not 1 <= num_layers <= len(full):
        raise ValueError(f"cannot cut a {len(full)}-layer decoder after {num_layers} layers; use 1..{len(full)}")
    decoder.layers = torch.nn.ModuleList(list(full)[:num_layers])
    try:
        yield
    finally:
        decoder.layers = full
