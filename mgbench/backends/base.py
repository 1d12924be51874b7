"""A backend: a library that runs MusicGen, declared once with its site table and what it can do.

Everything above the engine asks a ``Backend`` instead of comparing its name: whether it can run a feature
(``require``), which text padding it uses (``padding``) and for a runner (``runner``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.util import find_spec

from ..engine.runner import TEXT_PADDINGS, GenerationSettings, Runner
from ..errors import ConfigError, unknown
from ..zoo.loading import LoadedMusicgen

#: what a backend may be able to do, and how a user would say it
CAPABILITIES = {
    "frame windows": "edits limited to a window of frames (--frames)",
    "decoder layers": "generation through the loaded model's transformers decoder layers (the tuned lens hooks them)",
    "compile": "a compiled decoder step (--compile)",
    "engines": "a choice of decode loop (--engine)",
}
#: makes a runner: (loaded model, settings, text padding, engine, compile mode, batch size) -> Runner
RunnerFactory = Callable[[LoadedMusicgen, GenerationSettings, str, str, "str | None", "int | None"], Runner]


@dataclass(frozen=True)
class Backend:
    """A library that runs MusicGen: its name, where each site is inside a decoder layer (component -> module
    path), what it can do (``CAPABILITIES``), the text paddings it offers (its own first) and how it makes a runner;
    ``module`` must be importable for it to run (``install`` says how to get it)."""

    name: str
    sites: Mapping[str, str]
    capabilities: frozenset[str]
    text_paddings: tuple[str, ...]
    make: RunnerFactory
    module: str = ""
    install: str = ""

    def missing(self, reason: object) -> ConfigError:
        return ConfigError(f"--backend {self.name} needs {self.module} ({reason}); install it with: {self.install}")

    def padding(self, chosen: "str | None" = None) -> str:
        """The text padding a run uses: ``chosen`` or the backend's own; a one-line error for anything it does not
        offer, or when the backend is not installed."""
        if self.module and find_spec(self.module) is None:
            raise self.missing("it is not installed")
        if chosen is None:
            return self.text_paddings[0]
        if chosen not in TEXT_PADDINGS:
            raise unknown("text padding", chosen, TEXT_PADDINGS)
        if chosen not in self.text_paddings:
            raise ConfigError(f"the {self.name} backend offers --text-padding {', '.join(self.text_paddings)}; for "
                              f"{chosen} padding drop --backend {self.name}")
        return chosen

    def require(self, capability: str, what: str, drop: str) -> None:
        """A one-line error when ``what`` needs a capability this backend lacks (``drop``: the option to drop; the
        default backend, transformers, has every capability)."""
        if capability not in self.capabilities:
            raise ConfigError(f"{what} needs {CAPABILITIES[capability]}, which the {self.name} backend does not "
                              f"offer: drop --backend {self.name} or {drop}")

    def check(self, padding: "str | None", engine: str, compile_mode: "str | None") -> str:
        """Check a run's backend choices before anything loads; return its text padding."""
        resolved = self.padding(padding)
        if engine != "own":
            self.require("engines", f"--engine {engine}", "--engine")
        if compile_mode is not None:
            self.require("compile", f"--compile {compile_mode}", "--compile")
            if engine != "own":
                raise ConfigError(f"--compile {compile_mode} compiles mgbench's own decode loop: use it with --engine "
                                  "own (the default), or --compile off")
        return resolved

    def runner(self, loaded: LoadedMusicgen, settings: GenerationSettings, padding: "str | None" = None,
               engine: str = "own", compile_mode: "str | None" = None, batch_size: "int | None" = None) -> Runner:
        """A runner for ``loaded`` through this backend (a compiled one pads every batch to ``batch_size``)."""
        return self.make(loaded, settings, self.check(padding, engine, compile_mode), engine, compile_mode,
                         batch_size)

