"""The command line's argument types, constants and the helpers that add groups of options to a parser."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NoReturn

from ..errors import ConfigError
from ..zoo.worlds import TINY_RUN, TOY_RUN

#: --compile: the own loop's torch.compile mode (None: eager)
COMPILE_MODES = {"off": None, "default": "default", "reduce-overhead": "reduce-overhead"}
#: exit status after Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one-line ``MgbenchError``s (``main`` prints them and exits 2)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; give a whole number of at least 1")
    return value


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated whole numbers of at least 1 (``2,3,4``)."""
    try:
        return [positive_int(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; give whole numbers of at least 1, e.g. 2,3,4"
                                         ) from None


def rate_list(text: str) -> list[float]:
    """argparse type: comma-separated rates between 0 and 1 (``0.8,0.9``)."""
    try:
        rates = [float(part) for part in text.split(",")]
    except ValueError:
        rates = [math.nan]
    if not all(0 <= rate <= 1 for rate in rates):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; give rates between 0 and 1, e.g. 0.8,0.9")
    return rates


def batch_size_arg(text: str) -> int:
    """argparse type: ``auto`` (0: as many rows as memory allows) or a whole number of at least 1."""
    if text == "auto":
        return 0
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; give auto or a whole number of at least 1"
                                         ) from None


def seconds_arg(text: str) -> float:
    """argparse type: a clip length, a finite number of seconds above 0 (the model's maximum is checked later)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; give a clip length in seconds above 0, e.g. 1")
    return value


def planned_device_arg(text: str) -> str:
    """argparse type: ``cpu``, ``cuda`` or ``cuda:N``, whether or not it is on this machine (``mgbench plan``)."""
    if text == "cpu":
        return text
    import torch

    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda or cuda:N")
    return "cpu" if parsed.type == "cpu" else text


def device_arg(text: str) -> str:
    """argparse type: ``cpu``, ``cuda`` or ``cuda:N``, for a CUDA device that torch sees."""
    text = planned_device_arg(text)
    if text == "cpu":
        return text
    import torch

    parsed = torch.device(text)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: torch sees no CUDA device here; use cpu")
    if (parsed.index or 0) >= count:
        raise argparse.ArgumentTypeError(f"{text!r}: no such CUDA device; use cpu or cuda:0 to cuda:{count - 1}")
    return text


def shard_arg(text: str):
    """argparse type: ``I/N``, shard I (1-based) of N (``experiments.shards.Shard``)."""
    from ..experiments.shards import Shard

    try:
        return Shard.parse(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def folder_arg(text: str) -> str:
    """argparse type: a folder that exists or can be made (no file in the way)."""
    path = Path(text)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, not a folder; give a new or existing folder")
    return text


def add_concepts_file_arg(p: argparse.ArgumentParser, default: "str | None") -> None:
    """``--concepts-file``; a subcommand's copy defaults to SUPPRESS so that it keeps a value given before it."""
    p.add_argument("--concepts-file", default=default, help="JSON concept file (default: the paper's concepts)")


def add_run_args(p: argparse.ArgumentParser, device_type=device_arg) -> None:
    """Arguments of ``run`` (and of ``plan``, which takes the same; its device need not be here)."""
    from ..concepts.recognition import RECOGNIZERS
    from ..engine.sites import PAPER_COMPONENTS
    from ..experiments.catalog import names
    from ..experiments.techniques import TECHNIQUES

    add_generation_args(p, seconds=None, device_type=device_type)
    p.add_argument("--experiments", help="comma list of " + ", ".join(names()) + " (default: all that the backend "
                   "runs, except localization: name it)")
    p.add_argument("--concepts", default=None, help="comma list of concepts (default: all)")
    p.add_argument("--techniques", default=",".join(TECHNIQUES))
    p.add_argument("--components", default=",".join(PAPER_COMPONENTS))
    p.add_argument("--layers", default="all", help="all, or e.g. 0,3,10-12 (0-based)")
    p.add_argument("--alphas", default=None,
                   help="sweep the strength of adjust, h + alpha * (desired mean - original mean), e.g. 0,0.5,1,2,4 "
                        "(default: 1, no alpha column; replace has no strength)")
    p.add_argument("--frames", default=None,
                   help="edit only generated frames T0 <= t < T1, counted as decode steps from 0, e.g. 0-50 "
                        "(default: every frame; not with --compile)")
    p.add_argument("--prompts", type=positive_int, default=None,
                   help=f"prompts per concept (default: 100; {TOY_RUN[0]} for the toy worlds, {TINY_RUN[0]} for tiny)")
    p.add_argument("--recognizer", default="passt", choices=list(RECOGNIZERS),
                   help="how clips are scored against concepts: passt (AudioSet logits, the concepts' labels; the "
                        "paper's) or clap (zero-shot CLAP over the concepts' texts)")
    p.add_argument("--classifier", default=None,
                   help="passt: passt | toy | tiny | folder (default: the one a toy world's planted.json names, "
                        "tiny for random models, else passt); clap: clap (laion/clap-htsat-unfused) | tiny | "
                        "folder | hub id (default: tiny for random models, else clap)")
    p.add_argument("--batch-size", default="auto", type=batch_size_arg,
                   help="prompt rows per generate call: auto (from memory, the default) or a number")
    p.add_argument("--dtype", default="auto", choices=["auto", "float64", "float32", "float16", "bfloat16"],
                   help="auto: float64 for the toy worlds and tiny on the CPU (same numbers on every CPU), else "
                        "float32; float16/bfloat16 apply to the decoder only")
    p.add_argument("--odds", default="odds", choices=["odds", "prob"], help="eq. (1) odds or the reference's p")
    p.add_argument("--both-halves", action="store_true", help="also intervene on the unconditional CFG rows")
    p.add_argument("--cache", default=None, type=folder_arg, help="cache folder (default: $MGBENCH_HOME/cache)")
    p.add_argument("--workers", default=1, type=positive_int,
                   help="run: N shards as Ray tasks, one device each, then write the tables; plan: the time for N "
                        "workers (docs/scale-out.md)")
    p.add_argument("--backend", default="transformers",
                   help="the library that runs MusicGen: transformers (the default) or audiocraft (the paper's; "
                        "README 'audiocraft' says how to install it)")
    p.add_argument("--text-padding", default=None,
                   help="padded text positions in a batch of prompts of different token lengths: masked (ignored; "
                        "transformers' default) or audiocraft (attended to as zeros, as audiocraft does; the "
                        "audiocraft backend's only choice)")


def add_build_plan_args(p: argparse.ArgumentParser) -> None:
    """One option per ``BuildPlan`` field (training steps, seed), defaulting to the shipped build's."""
    from dataclasses import fields

    from ..toy.build import BuildPlan

    for f in fields(BuildPlan):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=f.default,
                       help=f"default: {f.default} (the shipped toy world's)")


def add_generation_args(p: argparse.ArgumentParser, seconds: "float | None" = 4.0, device_type=device_arg) -> None:
    """Arguments shared by every command that generates audio."""
    p.add_argument("--model", default="toy", help="toy | toy-early | toy-split (toy worlds) | tiny | small | medium | "
                                                  "large | small-random | medium-random | large-random (random "
                                                  "weights) | hub id | folder")
    p.add_argument("--seconds", type=seconds_arg, default=seconds,
                   help=f"clip length (default: 4; for run, 4 and {TOY_RUN[1]:g} for the toy worlds and tiny)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", type=device_type, help="cpu, cuda or cuda:N")
    p.add_argument("--download", action="store_true", help="download hub weights that are not cached")
    p.add_argument("--engine", default="own", choices=["own", "generate"],
                   help="decode loop: mgbench's own (default; one decoder forward per frame) or transformers' "
                        "generate (the same codes)")
    p.add_argument("--compile", default="off", choices=list(COMPILE_MODES),
                   help="torch.compile the own loop's decoder step (default, or reduce-overhead: CUDA graphs); "
                        "every pass (baselines, captures, cuts, edits) runs the one compiled step, batches padded "
                        "to --batch-size")
