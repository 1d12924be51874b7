"""The ``mgbench`` command line: ``main`` parses the arguments, runs a subcommand and turns errors into one line.

``arguments`` (argument types, constants, the groups of options that subcommands share), ``commands``
(one function ``cmd_<name>(args) -> int`` per subcommand); here ``build_parser``, ``main`` and the
public names of both modules, re-exported. Imports every layer below (``report``, ``experiments``,
``toy``, ``model``, ``concepts``, ``errors``, ``paths``); nothing imports it.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import MgbenchError
from ..perf.cost import DEVICE_PROFILES
from .arguments import (
    COMPILE_MODES,
    EXIT_INTERRUPTED,
    ArgumentParser,
    add_build_plan_args,
    add_concepts_file_arg,
    add_generation_args,
    add_run_args,
    batch_size_arg,
    device_arg,
    folder_arg,
    int_list,
    planned_device_arg,
    positive_int,
    rate_list,
    seconds_arg,
    shard_arg,
)
from .commands import (
    cmd_concepts,
    cmd_generate,
    cmd_models,
    cmd_plan,
    cmd_prompts,
    cmd_report,
    cmd_run,
    cmd_toy_build,
    cmd_toy_power,
)

__all__ = [
    "COMPILE_MODES", "EXIT_INTERRUPTED", "ArgumentParser", "add_build_plan_args",
    "add_concepts_file_arg", "add_generation_args", "add_run_args", "batch_size_arg", "build_parser", "cmd_concepts",
    "cmd_generate", "cmd_models", "cmd_plan", "cmd_prompts", "cmd_report", "cmd_run", "cmd_toy_build", "cmd_toy_power",
    "device_arg",
    "folder_arg", "interrupted_message", "main", "planned_device_arg", "positive_int", "seconds_arg", "shard_arg",
]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = ArgumentParser(prog="mgbench", description="Benchmark the inner mechanisms of MusicGen.")
    parser.add_argument("--version", action="version", version=f"mgbench {__version__}")
    add_concepts_file_arg(parser, default=None)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("concepts", help=cmd_concepts.__doc__).set_defaults(func=cmd_concepts)

    p = sub.add_parser("prompts", help=cmd_prompts.__doc__)
    p.add_argument("concept")
    p.add_argument("-n", type=positive_int, default=None,
                   help="how many (default: the concept file's prompts_per_concept)")
    p.set_defaults(func=cmd_prompts)

    p = sub.add_parser("models", help=cmd_models.__doc__)
    p.add_argument("name", nargs="?", help="one model name, hub id or folder")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("generate", help=cmd_generate.__doc__)
    p.add_argument("prompt", nargs="+")
    add_generation_args(p)
    p.add_argument("--out", default="out", type=folder_arg, help="folder for the WAV files")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help=cmd_run.__doc__)
    add_run_args(p)
    p.add_argument("--out", default="results", type=folder_arg, help="folder for the tables and the summary")
    p.add_argument("--listen", type=int, default=3, help="prompts to pick listening examples from (0: none)")
    p.add_argument("--no-report", action="store_true", help="skip report.md / report.html")
    p.add_argument("--shard", default=None, type=shard_arg,
                   help="I/N: compute only shard I of N of the missing work into the cache, write no tables "
                        "(docs/scale-out.md)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help=cmd_report.__doc__)
    p.add_argument("results", help="a results folder (mgbench run --out, or pytest bench/ --results)")
    p.add_argument("--baseline", default=None, help="an earlier results folder to diff against")
    p.add_argument("--out", default=None, type=folder_arg,
                   help="where to write the report (default: the results folder)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("plan", help=cmd_plan.__doc__)
    add_run_args(p, device_type=planned_device_arg)
    p.add_argument("--gpu-profile", action="append", choices=list(DEVICE_PROFILES),
                   help="where --device is not here, project for this GPU (repeatable; default: every profile)")
    p.set_defaults(func=cmd_plan)

    toy = sub.add_parser("toy", help="the toy world: a MusicGen with a planted, known mechanism")
    toy_commands = toy.add_subparsers(dest="toy_command", required=True)
    p = toy_commands.add_parser("build", help=cmd_toy_build.__doc__)
    p.add_argument("--out", required=True, type=folder_arg, help="a new folder for the built toy world")
    p.add_argument("--entry", action="append", default=None, metavar="SITE[:CATEGORIES]",
                   help="where the text enters, e.g. L0.cross_attn, or L1.cross_attn:instrument (only the instrument "
                        "words enter there); repeat for more entries (default: L2.cross_attn, the shipped toy's)")
    p.add_argument("--from-scratch", action="store_true",
                   help="also train the codec, the classifier and the text encoder (default: the shipped world's)")
    add_build_plan_args(p)
    p.set_defaults(func=cmd_toy_build)
    p = toy_commands.add_parser("power", help=cmd_toy_power.__doc__)
    p.add_argument("results", help="the --out folder of `mgbench run --model <toy world>`")
    p.add_argument("--prompts", type=int_list, default=[2, 3, 4], help="numbers of prompts to judge (default: 2,3,4)")
    p.add_argument("--rates", type=rate_list, default=[0.7, 0.8, 0.9, 0.95],
                   help="prompt-following rates for the lens power (default: 0.7,0.8,0.9,0.95)")
    p.add_argument("--draws", type=positive_int, default=200, help="bootstrap resamples per number (default: 200)")
    p.set_defaults(func=cmd_toy_power)
    for p in sub.choices.values():  # also accepted after the subcommand, where users put it
        add_concepts_file_arg(p, default=argparse.SUPPRESS)
    return parser


def interrupted_message(args: "argparse.Namespace | None") -> str:
    """What Ctrl-C leaves behind, and how to go on."""
    if args is not None and args.command in ("run", "plan"):
        from ..paths import mgbench_home

        cache = args.cache or mgbench_home() / "cache"
        return (f"interrupted; every finished batch of rows is saved in the cache {cache}: "
                "run the same command again to resume")
    return "interrupted"


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings about the user's data (a cache file moved aside) as one line, without source locations."""
    print(f"mgbench: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: "list[str] | None" = None) -> int:
    args = None
    try:
        with warnings.catch_warnings():  # restores the warning display on the way out
            warnings.showwarning = _one_line_warning
            args = build_parser().parse_args(argv)
            return args.func(args)
    except MgbenchError as e:
        print(f"mgbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mgbench: {interrupted_message(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
