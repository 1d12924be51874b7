"""The ``mgbench`` command line. Each subcommand is a function ``cmd_<name>(args) -> int``."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import NoReturn

from ..errors import ConfigError, MgbenchError

#: The offline models' default runs are the paper's, with fewer prompts and shorter clips (prompts per concept,
#: seconds) so that they end in minutes on a CPU.
OFFLINE_RUNS = {"toy": (2, 1.0), "tiny": (2, 1.0)}
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


def device_arg(text: str) -> str:
    """argparse type: ``cpu``, ``cuda`` or ``cuda:N``, for a CUDA device that torch sees."""
    if text == "cpu":
        return text
    import torch

    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda or cuda:N")
    if parsed.type == "cpu":
        return "cpu"
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


def _concepts(args: argparse.Namespace):
    from ..concepts.concept_set import load_concepts

    return load_concepts(args.concepts_file)


def cmd_concepts(args: argparse.Namespace) -> int:
    """List the concepts, their prompt counts and their relevant AudioSet labels."""
    cset = _concepts(args)
    for c in cset.concepts:
        labels = ", ".join(f"{name} ({idx})" for name, idx in zip(c.labels, c.label_indices))
        print(f"{c.name:<10} {c.category:<10} {cset.prompts_per_concept:>4} prompts  odds label {c.odds_label:>3}  "
              f"labels: {labels}")
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    """Print a concept's prompts, one per line, in order."""
    print("\n".join(_concepts(args).prompts(args.concept, args.n)))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the known model names and whether each is available offline."""
    from ..model.architectures import HUB_NAMES
    from ..model.loading import MODEL_NAMES, is_available, resolve_source
    from ..model.random_sizes import RANDOM_SIZES

    offline = {"toy": "shipped: the toy world", "tiny": "built offline from a seed",
               **{name: f"{size} shapes, random weights" for name, size in RANDOM_SIZES.items()}}
    names = [args.name] if args.name else list(MODEL_NAMES)
    for name in names:
        source = offline.get(name) or HUB_NAMES.get(name) or resolve_source(name)
        state = "available offline" if is_available(name) else "not downloaded"
        print(f"{name:<14} {source:<28} {state}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate one clip per prompt and write WAV files."""
    from ..experiments.pipeline import check_clip_length
    from ..model.backends import make_runner
    from ..model.loading import load_musicgen
    from ..model.runner import GenerationSettings
    from ..report.audio import write_wav

    loaded = load_musicgen(args.model, device=args.device, allow_download=args.download)
    settings = GenerationSettings(seconds=args.seconds, seed=args.seed)
    check_clip_length(loaded, settings)
    runner = make_runner(loaded, settings, engine=args.engine, compile_mode=COMPILE_MODES[args.compile])
    audio = runner.generate(args.prompt)
    out = Path(args.out)
    for i, clip in enumerate(audio):
        path = out / f"clip{i}.wav"
        write_wav(path, clip, loaded.sample_rate)
        print(f"{path}  ({args.prompt[i]!r}, {clip.shape[-1] / loaded.sample_rate:.2f} s)")
    return 0


def _run_setup(args: argparse.Namespace):
    """The session and selection that ``run`` and ``plan`` share."""
    from ..experiments.pipeline import Selection, parse_layers
    from ..experiments.session import RunConfig, Session
    from ..model.runner import GenerationSettings

    default_prompts, default_seconds = OFFLINE_RUNS.get(args.model, (100, 4.0))
    prompts = args.prompts if args.prompts is not None else default_prompts
    clip = args.seconds if args.seconds is not None else default_seconds
    config = RunConfig(
        model=args.model, classifier=args.classifier, device=args.device, dtype=args.dtype,
        batch_size=args.batch_size, prompts=prompts, odds=args.odds, both_halves=args.both_halves,
        generation=GenerationSettings(seconds=clip, seed=args.seed),
        concepts_file=args.concepts_file, cache=args.cache, download=args.download, backend=args.backend,
        text_padding=args.text_padding, engine=args.engine, compile_mode=COMPILE_MODES[args.compile])
    split = lambda text: tuple(x.strip() for x in text.split(",") if x.strip()) if text else None  # noqa: E731
    selection = Selection(experiments=split(args.experiments), concepts=split(args.concepts),
                          techniques=split(args.techniques), components=split(args.components),
                          layers=parse_layers(args.layers))
    session = Session(config)
    return session, selection.validate(session)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the experiments and write tidy tables and a summary (resumes from the cache)."""
    from dataclasses import asdict

    from ..experiments.pipeline import run_info, run_selection, summarize, write_tables

    if args.shard is not None and args.workers > 1:
        raise ConfigError("--shard and --workers exclude each other: give --shard I/N to run one shard here, or "
                          "--workers N to run all N shards on Ray")
    session, selection = _run_setup(args)
    if args.shard is not None:
        from ..experiments.shards import run_shard

        print(f"shard {args.shard}: {run_shard(session, selection, args.shard)} (in {session.store.dir}); when every "
              "shard is done, the same command without --shard writes the tables")
        return 0
    if args.workers > 1:
        from ..experiments.workers import run_workers

        run_workers(session, selection, args.workers)
    tables = run_selection(session, selection)
    out = Path(args.out)
    info = {**run_info(session), "selection": asdict(selection)}
    written = write_tables(out, tables, info)
    lines = [f"# mgbench run: {args.model}", ""] + [f"- {k}: {v}" for k, v in info.items() if k != "versions"]
    for name, table in summarize(tables).items():
        lines += ["", f"## {name}", "", table.round(4).reset_index().to_markdown(index=False)]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    written.append(out / "summary.md")
    if "interventions" in tables and args.listen > 0:
        from ..report.listening import write_examples

        examples = write_examples(session, tables["interventions"], out, prompts=args.listen)
        written += [out / p for p in [*examples.path, *sorted(set(examples.baseline_path))]]
    if not args.no_report:
        from ..report.render import build_report

        written += build_report(out)
    for path in written:
        print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Build report.md and report.html (with figures) from a results folder."""
    from ..report.render import build_report

    for path in build_report(args.results, out=args.out, baseline=args.baseline):
        print(path)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the clips a run needs, its projected time on this device and the disk its caches need."""
    from ..experiments.planning import make_plan, paper_generations, scaled_rate

    session, selection = _run_setup(args)
    plan = make_plan(session, selection, args.workers)
    print(f"model {args.model} on {args.device} through {args.backend}, batch size {session.batch_size}, "
          f"{session.config.prompts} prompts, {session.config.generation.seconds:g} s clips")
    for name, count in plan.generations.items():
        print(f"  {name:<14} {count:>10,d} clips to generate")
    hours = plan.seconds / 3600
    print(f"  total          {plan.total:>10,d} clips at {plan.clips_per_s:.1f} clips/s (calibrated here): "
          f"{hours:.2f} h")
    if args.workers > 1:
        print(f"  on {args.workers} workers (one device each, `run --workers {args.workers}` or --shard I/"
              f"{args.workers}): {plan.worker_seconds / 3600:.2f} h, the busiest worker's {max(plan.worker_clips):,d} "
              "clips (plus loading the model once per worker)")
    print(f"  disk: {(plan.tensor_bytes + plan.row_bytes) / 2**20:.1f} MiB "
          f"(means {plan.tensor_bytes / 2**20:.1f} MiB, result rows {plan.row_bytes / 2**20:.1f} MiB)")
    print(f"  resolvable effect difference: {plan.resolvable:.3f} with {plan.prompts} prompts per concept (paired "
          f"over prompts, two-sided alpha 0.05, power 0.8; sd of per-prompt effects {plan.effect_sd:.3f}, "
          f"{plan.effect_sd_source})")
    if args.model in ("small", "medium", "large"):
        total = 0.0
        print("full paper (both techniques, all 90 ordered pairs, 100 prompts, 4 s), projected by decoder FLOPs:")
        for size in ("small", "medium", "large"):
            rate = scaled_rate(plan.clips_per_s, args.model, size, session.config.generation.seconds)
            total += paper_generations(size) / rate
            print(f"  {size:<7} {paper_generations(size):>10,d} clips at {rate:.1f} clips/s: "
                  f"{paper_generations(size) / rate / 3600:.1f} h")
        print(f"  all sizes: {total / 3600:.1f} h")
    return 0


def cmd_toy_build(args: argparse.Namespace) -> int:
    """Train the toy world (codec, classifier, MusicGen with its planted mechanism), check it, save it."""
    from dataclasses import fields

    from ..toy.build import BuildPlan, build_toy
    from ..toy.checks import TARGETS

    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} exists; give --out a new folder (a build never overwrites one)")
    plan = BuildPlan(**{f.name: getattr(args, f.name) for f in fields(BuildPlan)})
    record = build_toy(out, plan, log=lambda line: print(f"mgbench: {line}", file=sys.stderr))
    missed = []
    for check, target in TARGETS.items():
        for category, value in record[check].items():
            print(f"{check} {category}: {value:.3f} (target {target:g})")
            missed += [f"{check} {category}"] if value < target else []
    print(f"built in {record['build_seconds']:.0f} s: {out} (use it with --model {out / 'musicgen'} "
          f"--classifier {out / 'classifier'})")
    if missed:
        print(f"mgbench: warning: below target: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


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
    add_run_args(p)
    p.set_defaults(func=cmd_plan)

    toy = sub.add_parser("toy", help="the toy world: a MusicGen with a planted, known mechanism")
    p = toy.add_subparsers(dest="toy_command", required=True).add_parser("build", help=cmd_toy_build.__doc__)
    p.add_argument("--out", required=True, type=folder_arg, help="a new folder for the built toy world")
    add_build_plan_args(p)
    p.set_defaults(func=cmd_toy_build)
    for p in sub.choices.values():  # also accepted after the subcommand, where users put it
        add_concepts_file_arg(p, default=argparse.SUPPRESS)
    return parser


def add_concepts_file_arg(p: argparse.ArgumentParser, default: "str | None") -> None:
    """``--concepts-file``; a subcommand's copy defaults to SUPPRESS so that it keeps a value given before it."""
    p.add_argument("--concepts-file", default=default, help="JSON concept file (default: the paper's concepts)")


def add_run_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``run`` (and of ``plan``, which takes the same)."""
    from ..experiments.interventions import TECHNIQUES
    from ..experiments.pipeline import EXPERIMENTS
    from ..model.sites import PAPER_COMPONENTS

    add_generation_args(p, seconds=None)
    p.add_argument("--experiments", default=",".join(EXPERIMENTS), help="comma list of " + ", ".join(EXPERIMENTS))
    p.add_argument("--concepts", default=None, help="comma list of concepts (default: all)")
    p.add_argument("--techniques", default=",".join(TECHNIQUES))
    p.add_argument("--components", default=",".join(PAPER_COMPONENTS))
    p.add_argument("--layers", default="all", help="all, or e.g. 0,3,10-12 (0-based)")
    p.add_argument("--prompts", type=positive_int, default=None,
                   help=f"prompts per concept (default: 100; {OFFLINE_RUNS['toy'][0]} for toy and tiny)")
    p.add_argument("--classifier", default=None,
                   help="passt | toy | tiny | folder (default: toy / tiny for those models, else passt)")
    p.add_argument("--batch-size", default="auto", type=batch_size_arg,
                   help="prompt rows per generate call: auto (from memory, the default) or a number")
    p.add_argument("--dtype", default="auto", choices=["auto", "float64", "float32", "float16", "bfloat16"],
                   help="auto: float64 for toy and tiny on the CPU (same numbers on every CPU), else float32; "
                        "float16/bfloat16 apply to the decoder only")
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


def add_generation_args(p: argparse.ArgumentParser, seconds: "float | None" = 4.0) -> None:
    """Arguments shared by every command that generates audio."""
    p.add_argument("--model", default="toy", help="toy | tiny | small | medium | large | small-random | "
                                                  "medium-random | large-random (random weights) | hub id | folder")
    p.add_argument("--seconds", type=seconds_arg, default=seconds,
                   help="clip length (default: 4; for run, 4 and %g for toy and tiny)" % OFFLINE_RUNS["toy"][1])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--download", action="store_true", help="download hub weights that are not cached")
    p.add_argument("--engine", default="own", choices=["own", "generate"],
                   help="decode loop: mgbench's own (default; one decoder forward per frame) or transformers' "
                        "generate (the same codes)")
    p.add_argument("--compile", default="off", choices=list(COMPILE_MODES),
                   help="torch.compile the own loop's decoder step (default, or reduce-overhead: CUDA graphs); "
                        "edits run compiled, captures and cuts uncompiled")


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

