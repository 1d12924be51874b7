"""The ``mgbench`` command line. Each subcommand is a function ``cmd_<name>(args) -> int``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MgbenchError


def _concepts(args: argparse.Namespace):
    from .concepts import load_concepts

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
    from .models import HUB_NAMES, MODEL_NAMES, is_available, resolve_source

    names = [args.name] if args.name else list(MODEL_NAMES)
    for name in names:
        source = "built offline from a seed" if name == "tiny" else HUB_NAMES.get(name) or resolve_source(name)
        state = "available offline" if is_available(name) else "not downloaded"
        print(f"{name:<8} {source:<28} {state}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate one clip per prompt and write WAV files."""
    from .audio import write_wav
    from .models import load_musicgen
    from .runner import GenerationSettings, MusicgenRunner

    loaded = load_musicgen(args.model, device=args.device)
    runner = MusicgenRunner(loaded, GenerationSettings(seconds=args.seconds, seed=args.seed))
    audio = runner.generate(args.prompt)
    out = Path(args.out)
    for i, clip in enumerate(audio):
        path = out / f"clip{i}.wav"
        write_wav(path, clip, loaded.sample_rate)
        print(f"{path}  ({args.prompt[i]!r}, {clip.shape[-1] / loaded.sample_rate:.2f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="mgbench", description="Benchmark the inner mechanisms of MusicGen.")
    parser.add_argument("--version", action="version", version=f"mgbench {__version__}")
    parser.add_argument("--concepts-file", default=None, help="JSON concept file (default: the paper's concepts)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("concepts", help=cmd_concepts.__doc__).set_defaults(func=cmd_concepts)

    p = sub.add_parser("prompts", help=cmd_prompts.__doc__)
    p.add_argument("concept")
    p.add_argument("-n", type=int, default=None, help="how many (default: the concept file's prompts_per_concept)")
    p.set_defaults(func=cmd_prompts)

    p = sub.add_parser("models", help=cmd_models.__doc__)
    p.add_argument("name", nargs="?", help="one model name, hub id or folder")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("generate", help=cmd_generate.__doc__)
    p.add_argument("prompt", nargs="+")
    add_generation_args(p)
    p.add_argument("--out", default="out", help="folder for the WAV files")
    p.set_defaults(func=cmd_generate)
    return parser


def add_generation_args(p: argparse.ArgumentParser, seconds: float = 4.0) -> None:
    """Arguments shared by every command that generates audio."""
    p.add_argument("--model", default="tiny", help="tiny | small | medium | large | hub id | folder")
    p.add_argument("--seconds", type=float, default=seconds)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def main(argv: "list[str] | None" = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MgbenchError as e:
        print(f"mgbench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
