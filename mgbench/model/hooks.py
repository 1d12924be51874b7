"""Forward hooks that read (capture) or change (intervene on) site outputs during generation.

Generation with classifier-free guidance runs a doubled batch: rows ``0..B-1`` are the conditional
rows of the ``B`` prompts and rows ``B..2B-1`` the unconditional ones (null text condition). Hooks
see every forward call of the decoder (one per generation step with the KV cache) and are always
removed when the ``with`` block ends, also when generation raises.

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

from .sites import COMPONENT_MODULES, Site, site_module

REPLACE, ADD = "replace", "add"
#: marks a hook installed when a model is set up, before anything compiles, and kept for the model's life
#: (edit slots, the dtype cast of the text states): the only hooks a compiled decoder may carry
PERSISTENT_HOOK = "_mgbench_persistent_hook"


def persistent(hook):
    """Mark ``hook`` as ``PERSISTENT_HOOK``; return it."""
    setattr(hook, PERSISTENT_HOOK, True)
    return hook


@dataclass(frozen=True)
class RowEdit:
    """An intervention on one prompt's rows: at ``site``, set the output to ``cond`` (``replace``) or add it (``add``).

    ``uncond``, when given, is applied the same way to the prompt's unconditional row.
    """

    site: Site
    mode: str
    cond: torch.Tensor
    uncond: "torch.Tensor | None" = None

    def __post_init__(self) -> None:
        if self.mode not in (REPLACE, ADD):
            raise ValueError(f"RowEdit mode must be {REPLACE!r} or {ADD!r}, not {self.mode!r}")


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


def _edit_hook(rows: torch.Tensor, values: torch.Tensor, add: torch.Tensor, batch_rows: int):
    """A hook that edits ``rows`` of a site's output; ``rows``, ``values`` ``(n, 1, hidden)`` and ``add``
    ``(n, 1, 1)`` already live on the model's device in its dtype, so a step copies nothing to the device."""
    def hook(module, args, output):
        out = output_tensor(output)
        if out.shape[0] != batch_rows:
            raise RuntimeError(f"intervention planned for {batch_rows} rows but the decoder ran {out.shape[0]}")
        sel = out.index_select(0, rows)
        out.index_copy_(0, rows, torch.where(add, sel + values, values.expand_as(sel)))
        return output

    return hook


def edit_rows(edits: "Sequence[RowEdit | None]",
              guided: bool = True) -> "dict[Site, list[tuple[int, torch.Tensor, bool]]]":
    """``edits[b]`` (``None``: leave prompt ``b`` alone) as ``(decoder row, vector, adds)`` per site.

    With ``guided`` the decoder batch is doubled for classifier-free guidance and an edit's ``uncond``
    vector goes to row ``B + b``.
    """
    n = len(edits)
    by_site: dict[Site, list[tuple[int, torch.Tensor, bool]]] = {}
    for b, edit in enumerate(edits):
        if edit is None:
            continue
        by_site.setdefault(edit.site, []).append((b, edit.cond, edit.mode == ADD))
        if edit.uncond is not None:
            if not guided:
                raise ValueError("an unconditional-row edit needs classifier-free guidance (guidance_scale > 1)")
            by_site[edit.site].append((n + b, edit.uncond, edit.mode == ADD))
    return by_site


def edit_hooks(layers: torch.nn.ModuleList, edits: "Sequence[RowEdit | None]", guided: bool = True,
               components: "dict[str, str]" = COMPONENT_MODULES) -> list:
    """Hooks that apply ``edits[b]`` to prompt ``b`` (``edit_rows``), one per edited site.

    ``components`` locates the sites in ``layers`` (``site_module``). The rows and vectors are put on
    the site's device, in its dtype, here: once per batch, never per generation step.
    """
    hooks = []
    for site, items in edit_rows(edits, guided).items():
        module = site_module(layers, site, components)
        weight = next(module.parameters())
        rows = torch.tensor([r for r, _, _ in items], device=weight.device)
        values = torch.stack([v for _, v, _ in items]).to(device=weight.device, dtype=weight.dtype)[:, None, :]
        add = torch.tensor([a for _, _, a in items], device=weight.device)[:, None, None]
        hooks.append((module, _edit_hook(rows, values, add, 2 * len(edits) if guided else len(edits))))
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

    def hooks(self, layers: torch.nn.ModuleList, components: "dict[str, str]" = COMPONENT_MODULES) -> list:
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
