"""``mgbench toy build``: train a planted toy world from a recipe, check it, save it.

A world shares what its recipe does not change with the shipped ``toy`` world: the codec, the classifier,
the tokenizer, the decoder's code embeddings and output heads (they say what the codes are, not where the
text enters) and, when no entry is restricted, the T5 text encoder. Those are loaded and frozen, and only
the decoder's layers (and ``enc_to_dec_proj``; or, for restricted entries, the per-token block text side of
``toy.text``) are trained. ``from_scratch`` trains everything as the shipped world was built: two
processes share the work (this machine has two cores), one trains the codec and then the classifier on
its audio, the other the MusicGen.

The folder written holds ``musicgen/`` (``from_pretrained``, with ``planted.json``: the ground truth read off
the weights, the recipe and the classifier that hears the world), ``build.json`` (settings, times and the
checks' numbers) and, from scratch, ``classifier/`` (``load_passt_folder``).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from ..classify.passt import save_passt
from ..concepts.concept_set import ConceptSet, load_concepts
from ..paths import atomic_write_bytes, build_folder_once
from ..quiet import quiet_transformers
from ..zoo.loading import load_musicgen, resolve_source
from ..zoo.tiny import build_tiny_tokenizer
from .checks import TARGETS, classifier_accuracy, prompt_following
from .classifier import TOY_PASST, train_classifier
from .codec import train_codec
from .musicgen import PAD, PLANTED_LAYER, toy_config, train_musicgen
from .planted import planted_truth
from .recipe import Recipe
from .text import block_text_config, isolation_masks, text_layout
from .world import Synth, ToyWorld

#: what every world built on the shipped one loads from it and keeps frozen (parameter name prefixes)
SHARED = ("audio_encoder.", "decoder.model.decoder.embed_tokens.", "decoder.lm_heads.")
#: shared too when no entry is restricted: the T5 text encoder
SHARED_TEXT = ("text_encoder.",)


@dataclass(frozen=True)
class BuildPlan:
    """Training lengths and seeds, and the prompts per concept of the prompt-following check: the defaults are what
    the shipped toy world was built with."""

    codec_steps: int = 900
    classifier_steps: int = 2500
    classifier_clips: int = 2500
    musicgen_steps: int = 2200
    seed: int = 0
    check_prompts: int = 10


def default_recipe(concepts: ConceptSet, num_layers: int = 4) -> Recipe:
    """The shipped ``toy`` world's recipe: every word enters at layer 2's cross-attention."""
    return Recipe.parse([f"L{PLANTED_LAYER}.cross_attn"], tuple(concepts.categories), num_layers)


def _train_audio(plan: BuildPlan, folder: Path) -> dict:
    """In a process of its own: the codec, then the classifier on its audio; both saved under ``folder``."""
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    concepts = load_concepts()
    world = ToyWorld.from_concepts(concepts)
    start = time.perf_counter()
    with quiet_transformers():
        codec = train_codec(world, Synth(), plan.codec_steps, seed=plan.seed)
    codec_seconds = time.perf_counter() - start
    save_file({k: v.contiguous() for k, v in codec.state_dict().items()}, str(folder / "codec.safetensors"))
    classifier = train_classifier(world, codec, concepts, plan.classifier_steps, plan.classifier_clips,
                                  seed=plan.seed + 1)
    save_passt(folder / "classifier", dict(TOY_PASST), classifier)
    return {"codec_seconds": codec_seconds, "classifier_seconds": time.perf_counter() - start - codec_seconds}


def world_model(recipe: Recipe, concepts: ConceptSet, tokenizer, seed: int, base: "torch.nn.Module | None" = None):
    """A new MusicGen for ``recipe`` (initialized from ``seed``) and its isolation masks; with ``base``, the parts in
    ``SHARED`` (and ``SHARED_TEXT`` for unrestricted recipes) are loaded from it and frozen."""
    from transformers import MusicgenForConditionalGeneration

    text = None
    if recipe.restricted:
        text = block_text_config(len(tokenizer), toy_config(len(tokenizer)).decoder.hidden_size)
    with quiet_transformers():
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(toy_config(len(tokenizer), text))
    layout = text_layout(concepts, tokenizer, model.config.decoder.hidden_size) if recipe.restricted else None
    masks = isolation_masks(model, recipe, layout) if layout is not None else []
    if base is not None:
        shared = SHARED + (() if recipe.restricted else SHARED_TEXT)
        state = {k: v for k, v in base.state_dict().items() if k.startswith(shared)}
        unexpected = model.load_state_dict(state, strict=False).unexpected_keys
        assert not unexpected, unexpected
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(not name.startswith(shared))
    return model, masks


def _save(model: torch.nn.Module, folder: Path, planted: dict, base: "Path | None") -> None:
    """The model folder: the weights and config, ``planted.json``, and the processor and generation settings (with
    ``base``, a model folder: its files, shared)."""
    import shutil

    from transformers import EncodecFeatureExtractor, MusicgenProcessor

    model.generation_config.update(do_sample=True, top_k=250, temperature=1.0, guidance_scale=3.0, max_length=1500,
                                   decoder_start_token_id=PAD, pad_token_id=PAD, bos_token_id=PAD)
    with quiet_transformers():
        model.save_pretrained(folder)
    if base is None:
        MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(sampling_rate=32000),
                          tokenizer=build_tiny_tokenizer()).save_pretrained(folder)
    else:
        for path in base.iterdir():
            if path.is_file() and path.name not in ("model.safetensors", "config.json", "planted.json"):
                shutil.copyfile(path, folder / path.name)
    atomic_write_bytes(folder / "planted.json", json.dumps(planted, indent=2).encode())


def build_toy(folder: Path, plan: BuildPlan = BuildPlan(), recipe: "Recipe | None" = None,
              from_scratch: bool = False, log=print) -> dict:
    """Build a toy world into ``folder`` (atomically; an existing folder is kept) and return its build record."""
    from safetensors.torch import load_file

    concepts = load_concepts()
    recipe = recipe or default_recipe(concepts)

    def train(base: "torch.nn.Module | None") -> tuple[torch.nn.Module, float]:
        torch.set_num_threads(1)
        tokenizer = build_tiny_tokenizer()
        model, masks = world_model(recipe, concepts, tokenizer, plan.seed, base)
        start = time.perf_counter()
        train_musicgen(model, ToyWorld.from_concepts(concepts), concepts, tokenizer, plan.musicgen_steps,
                       seed=plan.seed + 2, entries=tuple(e.site.layer for e in recipe.entries), masks=masks)
        return model, time.perf_counter() - start

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        what = f"the MusicGen ({plan.musicgen_steps} steps) of recipe {' '.join(recipe.texts)}"
        if from_scratch:
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                audio = pool.submit(_train_audio, plan, tmp)
                log(f"training the codec ({plan.codec_steps} steps) and classifier ({plan.classifier_steps} steps) "
                    f"in a second process, {what} here")
                model, seconds = train(None)
                record = {"musicgen_seconds": seconds, **audio.result()}
            model.audio_encoder.load_state_dict(load_file(str(tmp / "codec.safetensors")))
            (tmp / "codec.safetensors").unlink()
            classifier, base_folder = "../classifier", None
        else:
            log(f"training {what}, on the shipped world's codec, code embeddings and heads"
                + ("" if recipe.restricted else " and T5"))
            base = load_musicgen("toy")
            model, seconds = train(base.model)
            record = {"musicgen_seconds": seconds, "base": base.identity}
            classifier, base_folder = "toy", Path(resolve_source("toy"))
        planted = {**planted_truth(model), "classifier": classifier}
        if planted["recipe"] != recipe.texts:
            raise RuntimeError(f"the trained weights plant {planted['recipe']}, not the recipe {recipe.texts}")
        _save(model, tmp / "musicgen", planted, base_folder)
        used = {k: v for k, v in asdict(plan).items() if from_scratch or not k.startswith(("codec", "classifier"))}
        record.update(train_seconds=time.perf_counter() - start, plan=used, recipe=recipe.texts,
                      from_scratch=from_scratch)
        torch.set_num_threads(2)
        log("checking: classifier accuracy on held-out clips, prompt following")
        heard = str(tmp / "classifier") if from_scratch else classifier
        following, settings = prompt_following(tmp / "musicgen", plan.check_prompts)
        record.update(classifier_accuracy=classifier_accuracy(tmp / "musicgen", heard),
                      prompt_following=following, prompt_following_settings=settings)
        record["build_seconds"] = time.perf_counter() - start
        atomic_write_bytes(tmp / "build.json", json.dumps(record, indent=2).encode())

    build_folder_once(folder, build)
    return json.loads((folder / "build.json").read_text())


def missed_targets(record: dict, planted: dict) -> list[str]:
    """The checks of a build ``record`` below their ``TARGETS`` (prompt following only for the categories whose
    words enter the decoder, per ``planted``)."""
    missed = []
    for check, target in TARGETS.items():
        for category, value in record[check].items():
            judged = check != "prompt_following" or planted["entry_layers"].get(category) is not None
            missed += [f"{check} {category}"] if judged and value < target else []
    return missed
