"""Which library runs MusicGen: ``transformers`` (mgbench's own path) or ``audiocraft`` (the paper's; optional).

Both backends give a ``Runner`` (``runner.py``) for the same loaded model, so nothing above ``model/`` knows which
one ran. ``docs/backends.md`` says where the two agree and the one place they differ (padded text).
"""

from __future__ import annotations

from importlib.util import find_spec

from ..errors import ConfigError, unknown
from .loading import LoadedMusicgen
from .runner import TEXT_PADDINGS, GenerationSettings, MusicgenRunner, Runner

BACKENDS = ("transformers", "audiocraft")
#: each backend's own handling of padded text positions (``--text-padding`` default)
NATIVE_TEXT_PADDING = {"transformers": "masked", "audiocraft": "audiocraft"}
INSTALL_AUDIOCRAFT = 'pip install -e ".[audiocraft]" && pip install --no-deps audiocraft==1.3.0'


def _missing_audiocraft(reason: object) -> ConfigError:
    return ConfigError(f"--backend audiocraft needs audiocraft ({reason}); install it with: {INSTALL_AUDIOCRAFT}")


def resolve_backend(backend: str, chosen: "str | None" = None) -> str:
    """Check that ``backend`` is known and installed; return the text padding a run uses: ``chosen``, or the
    backend's own. A combination that is not offered is a one-line error."""
    if backend not in BACKENDS:
        raise unknown("backend", backend, BACKENDS)
    if backend == "audiocraft" and find_spec("audiocraft") is None:
        raise _missing_audiocraft("it is not installed")
    if chosen is None:
        return NATIVE_TEXT_PADDING[backend]
    if chosen not in TEXT_PADDINGS:
        raise unknown("text padding", chosen, TEXT_PADDINGS)
    if backend == "audiocraft" and chosen != "audiocraft":
        raise ConfigError("the audiocraft backend attends to padded text as audiocraft does (--text-padding "
                          "audiocraft); for masked padding use --backend transformers")
    return chosen


def check_compile(backend: str, engine: str, compile_mode: "str | None") -> None:
    """Compiling is for mgbench's own decode loop on transformers: a one-line error otherwise."""
    if compile_mode is not None and (backend != "transformers" or engine != "own"):
        raise ConfigError(f"--compile {compile_mode} compiles mgbench's own decode loop: use it with --backend "
                          "transformers --engine own (the defaults), or --compile off")


def make_runner(loaded: LoadedMusicgen, settings: GenerationSettings, backend: str = "transformers",
                padding: "str | None" = None, engine: str = "own", compile_mode: "str | None" = None,
                batch_size: "int | None" = None) -> Runner:
    """A runner for ``loaded`` through ``backend`` (with ``padding``, default the backend's own). ``engine`` (own
    decode loop or ``generate``) and ``compile_mode`` (``torch.compile`` of the own loop's step, static KV cache,
    every batch padded to ``batch_size`` prompts) are the transformers backend's; audiocraft always runs its own
    ``generate``."""
    padding = resolve_backend(backend, padding)
    check_compile(backend, engine, compile_mode)
    if backend == "transformers":
        return MusicgenRunner(loaded, settings, padding, engine=engine, cache="dynamic" if compile_mode is None
                              else "static", compile_mode=compile_mode, batch_size=batch_size)
    if engine != "own":
        raise ConfigError(f"--engine {engine} is a choice of the transformers backend; the audiocraft backend runs "
                          "audiocraft's generate")
    try:
        from .audiocraft_runner import AudiocraftRunner, load_audiocraft_lm
    except ImportError as e:
        raise _missing_audiocraft(e) from None
    return AudiocraftRunner(loaded, load_audiocraft_lm(loaded, settings.guidance_scale), settings)
