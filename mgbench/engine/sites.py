"""Sites: a (layer, component) place in MusicGen's decoder whose output mgbench reads or changes.

Components map to modules of each ``MusicgenDecoderLayer``; their outputs are taken before the
residual add, as in the paper:

============  ======================  =========================================
component     module                  output
============  ======================  =========================================
self_attn     ``self_attn``           self-attention after ``out_proj``
cross_attn    ``encoder_attn``        cross-attention (text) after ``out_proj``
mlp           ``fc2``                 MLP output
resid         the layer itself        residual stream after the layer (capture)
============  ======================  =========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..errors import SiteError, unknown

#: the transformers backend's sites: the module of a ``MusicgenDecoderLayer`` whose output is each component's
TRANSFORMERS_SITES = {"self_attn": "self_attn", "cross_attn": "encoder_attn", "mlp": "fc2", "resid": ""}
COMPONENTS = tuple(TRANSFORMERS_SITES)  # every component a site may have
#: The components the paper intervenes on.
PAPER_COMPONENTS = ("self_attn", "cross_attn", "mlp")
_SITE_RE = re.compile(r"^L(\d+)\.(\w+)$")


@dataclass(frozen=True, order=True)
class Site:
    """One place in the decoder: ``layer`` is 0-based, ``component`` one of ``COMPONENTS``."""

    layer: int
    component: str

    def __str__(self) -> str:
        return f"L{self.layer}.{self.component}"

    @classmethod
    def parse(cls, text: str) -> "Site":
        """Parse ``L12.mlp``-style text."""
        match = _SITE_RE.match(text.strip())
        if not match:
            raise SiteError(f"cannot read site {text!r}; write it as L<layer>.<component>, e.g. L12.mlp "
                            f"(components: {', '.join(COMPONENTS)})")
        return cls(int(match.group(1)), match.group(2))

    def validate(self, num_layers: int) -> "Site":
        """Check the site against a decoder of ``num_layers`` layers; return it."""
        if self.component not in COMPONENTS:
            raise unknown("site component", self.component, list(COMPONENTS))
        if not 0 <= self.layer < num_layers:
            raise SiteError(f"site {self}: layer {self.layer} is out of range; this model has layers "
                            f"0..{num_layers - 1}")
        return self


def all_sites(num_layers: int, components: "tuple[str, ...] | list[str]" = PAPER_COMPONENTS,
              layers: "list[int] | None" = None) -> list[Site]:
    """Every (layer, component) site, layer-major, validated."""
    chosen = range(num_layers) if layers is None else layers
    return [Site(layer, c).validate(num_layers) for layer in chosen for c in components]


def site_module(decoder_layers: torch.nn.ModuleList, site: Site,
                components: "dict[str, str]" = TRANSFORMERS_SITES) -> torch.nn.Module:
    """The module whose forward output is ``site``'s output; ``components`` names each component's module inside
    a layer (another library's layers have other names: each backend's ``sites``)."""
    site.validate(len(decoder_layers))
    layer = decoder_layers[site.layer]
    path = components[site.component]
    return layer.get_submodule(path) if path else layer
