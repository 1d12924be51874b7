"""``mgbench toy build``: train the toy world's codec, classifier and MusicGen, check them, save them.

Two processes share the work (this machine has two cores): one trains the codec and then the
classifier on its audio, the other the MusicGen (which needs codes only). The folder written holds
``musicgen/`` (``from_pretrained``, with ``planted.json``: the ground truth, beside the weights it
describes), ``classifier/`` (``load_passt_folder``) and ``build.json`` (settings, times and the checks'
numbers).
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
from ..concepts.concept_set import load_concepts
from ..paths import atomic_write_bytes, build_folder_once
from ..quiet import quiet_transformers
from ..zoo.tiny import build_tiny_tokenizer
from .checks import classifier_accuracy, planted_truth, prompt_following
from .classifier import TOY_PASST, train_classifier
from .codec import train_codec
from .musicgen import PAD, toy_config, train_musicgen
from .world import Synth, ToyWorld


@dataclass(frozen=True)
class BuildPlan:
    """Training lengths and seeds: the defaults are what the shipped toy world was built with."""

    codec_steps: int = 900
    classifier_steps: int = 2500
    classifier_clips: int = 2500
    musicgen_steps: int = 2200
    seed: int = 0


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


def build_toy(folder: Path, plan: BuildPlan = BuildPlan(), log=print) -> dict:
    """Build the toy world into ``folder`` (atomically; an existing folder is kept) and return its build record."""
    from safetensors.torch import load_file
    from transformers import EncodecFeatureExtractor, MusicgenForConditionalGeneration, MusicgenProcessor

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            audio = pool.submit(_train_audio, plan, tmp)
            log(f"training the codec ({plan.codec_steps} steps) and classifier ({plan.classifier_steps} steps) "
                f"in a second process, the MusicGen ({plan.musicgen_steps} steps) here")
            torch.set_num_threads(1)
            concepts = load_concepts()
            tokenizer = build_tiny_tokenizer()
            with quiet_transformers():
                torch.manual_seed(plan.seed)
                model = MusicgenForConditionalGeneration(toy_config(len(tokenizer)))
            mg_start = time.perf_counter()
            train_musicgen(model, ToyWorld.from_concepts(concepts), concepts, tokenizer, plan.musicgen_steps,
                           seed=plan.seed + 2)
            record = {"musicgen_seconds": time.perf_counter() - mg_start, **audio.result()}
        model.audio_encoder.load_state_dict(load_file(str(tmp / "codec.safetensors")))
        (tmp / "codec.safetensors").unlink()
        model.generation_config.update(do_sample=True, top_k=250, temperature=1.0, guidance_scale=3.0,
                                       max_length=1500, decoder_start_token_id=PAD, pad_token_id=PAD, bos_token_id=PAD)
        with quiet_transformers():
            model.save_pretrained(tmp / "musicgen")
        MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(sampling_rate=32000),
                          tokenizer=tokenizer).save_pretrained(tmp / "musicgen")
        atomic_write_bytes(tmp / "musicgen" / "planted.json", json.dumps(planted_truth(model), indent=2).encode())
        torch.set_num_threads(2)
        log("checking: classifier accuracy on held-out clips, prompt following")
        record.update(train_seconds=time.perf_counter() - start, plan=asdict(plan),
                      classifier_accuracy=classifier_accuracy(tmp), prompt_following=prompt_following(tmp))
        record["build_seconds"] = time.perf_counter() - start
        atomic_write_bytes(tmp / "build.json", json.dumps(record, indent=2).encode())

    build_folder_once(folder, build)
    return json.loads((folder / "build.json").read_text())

