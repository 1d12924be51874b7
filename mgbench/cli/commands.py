"""The ``mgbench`` subcommands: each is a function ``cmd_<name>(args) -> int``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ..perf.cost import DEVICE_PROFILES
from .arguments import COMPILE_MODES


def _concepts(args: argparse.Namespace):
    from ..concepts.concept_set import load_concepts

    return load_concepts(args.concepts_file)


def cmd_concepts(args: argparse.Namespace) -> int:
    """List the concepts, their prompt counts, their relevant AudioSet labels and their CLAP texts."""
    from ..concepts.recognition import clap_text

    cset = _concepts(args)
    for c in cset.concepts:
        labels = ", ".join(f"{name} ({idx})" for name, idx in zip(c.labels, c.label_indices))
        odds = f"odds label {c.odds_label:>3}" if c.labels else "no AudioSet labels"
        print(f"{c.name:<10} {c.category:<10} {cset.prompts_per_concept:>4} prompts  {odds}  labels: {labels or '-'}"
              f"  clap text: {clap_text(c)!r}")
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    """Print a concept's prompts, one per line, in order."""
    print("\n".join(_concepts(args).prompts(args.concept, args.n)))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the known model names and whether each is available offline."""
    from ..zoo.architectures import HUB_NAMES
    from ..zoo.loading import MODEL_NAMES, WORLD_NAMES, is_available, resolve_source
    from ..zoo.random_sizes import RANDOM_SIZES
    from ..zoo.worlds import worlds_root

    def world(name: str) -> str:
        planted = json.loads((worlds_root() / name / "planted.json").read_text())
        return f"toy world: {' '.join(planted['recipe'])}"

    offline = {"toy": "toy world: L2.cross_attn", "tiny": "built offline from a seed",
               **{name: world(name) for name in WORLD_NAMES},
               **{name: f"{size} shapes, random weights" for name, size in RANDOM_SIZES.items()}}
    names = [args.name] if args.name else list(MODEL_NAMES)
    rows = [(name, offline.get(name) or HUB_NAMES.get(name) or resolve_source(name),
             "available offline" if is_available(name) else "not downloaded") for name in names]
    width = max(28, *(len(source) for _, source, _ in rows))
    for name, source, state in rows:
        print(f"{name:<14} {source:<{width}} {state}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate one clip per prompt and write WAV files."""
    from ..backends import make_runner
    from ..engine.runner import GenerationSettings
    from ..experiments.selection import check_clip_length
    from ..paths import write_wav
    from ..zoo.loading import load_musicgen

    loaded = load_musicgen(args.model, device=args.device, allow_download=args.download)
    settings = GenerationSettings(seconds=args.seconds, seed=args.seed)
    check_clip_length(loaded.facts, settings, args.model)
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
    from ..engine.runner import GenerationSettings
    from ..experiments.catalog import validate
    from ..experiments.selection import Selection, parse_alphas, parse_frames, parse_layers
    from ..experiments.session import RunConfig, Session
    from ..zoo.loading import default_run

    default_prompts, default_seconds = default_run(args.model)
    prompts = args.prompts if args.prompts is not None else default_prompts
    clip = args.seconds if args.seconds is not None else default_seconds
    config = RunConfig(
        model=args.model, classifier=args.classifier, recognizer=args.recognizer, device=args.device, dtype=args.dtype,
        batch_size=args.batch_size, prompts=prompts, odds=args.odds, both_halves=args.both_halves,
        generation=GenerationSettings(seconds=clip, seed=args.seed),
        concepts_file=args.concepts_file, cache=args.cache, download=args.download, backend=args.backend,
        text_padding=args.text_padding, engine=args.engine, compile_mode=COMPILE_MODES[args.compile])
    split = lambda text: tuple(x.strip() for x in text.split(",") if x.strip()) if text else None  # noqa: E731
    session = Session(config)
    selection = Selection(experiments=split(args.experiments),
                          concepts=split(args.concepts),
                          techniques=split(args.techniques), components=split(args.components),
                          layers=parse_layers(args.layers), alphas=parse_alphas(args.alphas),
                          frames=parse_frames(args.frames))
    return session, validate(session, selection)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the experiments and write tidy tables and a summary (resumes from the cache)."""
    from ..experiments.pipeline import run_selection, write_results

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
    out = Path(args.out)
    written = write_results(session, selection, run_selection(session, selection), out, listen=args.listen)
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


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.2f} h" if hours < 10 else f"{hours:,.0f} h"


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the clips a run needs, its time (calibrated here, or projected for a GPU that is not here), the disk its
    caches need and the effect difference it resolves; needs neither the weights nor the device."""
    from ..experiments.planning import make_plan, paper_generations, scaled_rate
    from ..zoo.architectures import REAL_SIZES
    from ..zoo.loading import local_identity
    from ..zoo.random_sizes import RANDOM_SIZES

    session, selection = _run_setup(args)
    plan = make_plan(session, selection, args.workers, tuple(args.gpu_profile or DEVICE_PROFILES))
    facts, c = session.facts, session.config
    weights = "on this machine" if local_identity(args.model) else "not on this machine"
    print(f"model {args.model} ({facts.num_layers} decoder layers, hidden {facts.shape.hidden}, from its "
          f"configuration; weights {weights}) on {args.device} through {args.backend}, {c.prompts} prompts, "
          f"{c.generation.seconds:g} s clips; cache {plan.cache}")
    for name, count in plan.generations.items():
        print(f"  {name:<14} {count:>10,d} clips to generate")
    print(f"  total          {plan.total:>10,d} clips")
    for rate in plan.rates:
        workers = (f"; on {args.workers} workers (one device each, `run --workers {args.workers}` or --shard I/"
                   f"{args.workers}): {_hours(plan.worker_seconds(rate))}, the busiest worker's "
                   f"{max(plan.worker_clips):,d} clips" if args.workers > 1 else "")
        print(f"  {rate.device}: {rate.clips_per_s:.3g} clips/s at batch {rate.batch} ({rate.how}): "
              f"{_hours(plan.seconds(rate))} on 1{workers}")
    print(f"  disk: {(plan.tensor_bytes + plan.row_bytes) / 2**20:.1f} MiB "
          f"(means {plan.tensor_bytes / 2**20:.1f} MiB, result rows {plan.row_bytes / 2**20:.1f} MiB)")
    print(f"  resolvable effect difference: {plan.resolvable:.3f} with {plan.prompts} prompts per concept (paired "
          f"over prompts, two-sided alpha 0.05, power 0.8; sd of per-prompt effects {plan.effect_sd:.3f}, "
          f"{plan.effect_sd_source})")
    if RANDOM_SIZES.get(args.model, args.model) in REAL_SIZES:
        print("full paper (both techniques, all 90 ordered pairs, 100 prompts, 4 s), scaled by decoder FLOPs:")
        for rate in plan.rates:
            seconds = {size: paper_generations(size) / scaled_rate(rate.clips_per_s, facts.shape,
                                                                   c.generation.seconds, size, 4.0)
                       for size in REAL_SIZES}
            print(f"  {rate.device}: " + ", ".join(f"{size} {paper_generations(size):,d} clips {_hours(t)}"
                                                  for size, t in seconds.items())
                  + f"; all sizes {_hours(sum(seconds.values()))} on 1, "
                    f"{_hours(sum(seconds.values()) / args.workers)} on {args.workers}")
    return 0


def cmd_toy_build(args: argparse.Namespace) -> int:
    """Train a toy world from a recipe (its MusicGen, on the shipped world's codec and classifier; --from-scratch:
    all of it), check it, save it."""
    from dataclasses import fields

    from ..concepts.concept_set import load_concepts
    from ..toy.build import BuildPlan, build_toy, default_recipe, missed_targets
    from ..toy.checks import TARGETS
    from ..toy.recipe import Recipe

    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} exists; give --out a new folder (a build never overwrites one)")
    categories = default_recipe(load_concepts()).categories  # the toy world's concepts (it is built from them)
    recipe = Recipe.parse(args.entry, categories, 4) if args.entry else None
    plan = BuildPlan(**{f.name: getattr(args, f.name) for f in fields(BuildPlan)})
    record = build_toy(out, plan, recipe, args.from_scratch,
                       log=lambda line: print(f"mgbench: {line}", file=sys.stderr))
    planted = json.loads((out / "musicgen" / "planted.json").read_text())
    for check, target in TARGETS.items():
        for category, value in record[check].items():
            judged = check != "prompt_following" or planted["entry_layers"][category] is not None
            print(f"{check} {category}: {value:.3f} ({f'target {target:g}' if judged else 'no entry: not judged'})")
    missed = missed_targets(record, planted)
    print(f"built in {record['build_seconds']:.0f} s: {out} (use it with --model {out / 'musicgen'})")
    if missed:
        print(f"mgbench: warning: below target: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


def cmd_toy_power(args: argparse.Namespace) -> int:
    """How often a toy world's ground-truth checks pass at fewer prompts: the lens checks' exact binomial power,
    the intervention checks' by resampling the run's prompts; writes power.csv beside the run."""
    import pandas as pd

    from ..concepts.concept_set import load_concepts
    from ..report.results import load_results
    from ..suite.ground_truth import categories_of, checks
    from ..suite.planted import Planted
    from ..suite.power import INTERVENTION_CHECKS, intervention_power, lens_power

    results = load_results(args.results)
    planted_runs = {model: info for model, info in results.runs.items() if info.get("planted")}
    if not planted_runs:
        raise ConfigError(f"{args.results} holds no run of a toy world (no planted truth in its run.json); give the "
                          "--out folder of `mgbench run --model toy` (or another world)")
    concepts = load_concepts()
    tables = []
    for model, info in planted_runs.items():
        planted = Planted(info["planted"])
        categories = categories_of(planted, concepts)
        counts = {c: (len(concepts.members(c)), 1 / len(concepts.members(c))) for c in categories}
        tables.append(lens_power(counts, args.prompts, args.rates).assign(model=model))
        mine = {name: results.of(name, model) for name in ("interventions", "ceiling")}
        if not mine["interventions"].empty:
            listed = [c for c in checks(planted, categories, sorted(set(mine["interventions"].technique)), [], [])
                      if c.name in INTERVENTION_CHECKS]
            tables.append(intervention_power(mine, planted, listed, args.prompts, args.draws).assign(model=model))
    power = pd.concat(tables, ignore_index=True)
    power.to_csv(Path(args.results) / "power.csv", index=False)
    print(power.to_markdown(index=False, floatfmt=".3f"))
    return 0
