"""Which library runs MusicGen: each a ``Backend`` (``base.py``) declared once: ``transformers`` (mgbench's own path,
the default) and ``audiocraft`` (the paper's; optional). Every backend gives a ``Runner`` for the same loaded model,
so nothing above knows which one ran; ``docs/backends.md`` says where the two agree and the one place they differ
(padded text). Imports ``engine``, ``zoo`` and ``errors``.
"""

from __future__ import annotations

from ..engine.runner import GenerationSettings, Runner
from ..errors import unknown
from ..zoo.loading import LoadedMusicgen
from .audiocraft import AUDIOCRAFT, INSTALL_AUDIOCRAFT
from .base import CAPABILITIES, Backend
from .transformers import TRANSFORMERS

BACKENDS = {backend.name: backend for backend in (TRANSFORMERS, AUDIOCRAFT)}
__all__ = ["BACKENDS", "CAPABILITIES", "INSTALL_AUDIOCRAFT", "Backend", "get_backend", "make_runner"]


def get_backend(name: str) -> Backend:
    """The backend called ``name``; a one-line error listing the others."""
    if name not in BACKENDS:
        raise unknown("backend", name, tuple(BACKENDS))
    return BACKENDS[name]


def make_runner(loaded: LoadedMusicgen, settings: GenerationSettings, backend: str = "transformers",
                padding: "str | None" = None, engine: str = "own", compile_mode: "str | None" = None,
                batch_size: "int | None" = None) -> Runner:
    """A runner for ``loaded`` through ``backend`` (``Backend.runner``)."""
    return get_backend(backend).runner(loaded, settings, padding, engine, compile_mode, batch_size)
