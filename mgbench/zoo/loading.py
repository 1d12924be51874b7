"""Load MusicGen by name: ``toy`` and the other toy worlds (``toy-early``, ``toy-split``: shipped, trained;
``worlds``), ``tiny`` (random, offline), ``small``/``medium``/``large`` (hub), ``small-random``/``medium-random``/
``large-random`` (published sizes, random, offline), a hub id or a local folder."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import MissingWeightsError, unknown
from ..paths import content_identity, random_folder, toy_folder
from ..quiet import quiet_transformers
from .architectures import HUB_NAMES, ModelFacts
from .random_sizes import RANDOM_SIZES, published_config, random_musicgen_folder
from .tiny import build_tiny_tokenizer, tiny_config, tiny_musicgen_folder
from .worlds import PAPER_RUN, TINY_RUN, TOY_RUN, stored_file, world_folder, world_names

#: the shipped toy worlds besides ``toy`` (``worlds``)
WORLD_NAMES = world_names()
MODEL_NAMES = ("toy", *WORLD_NAMES, "tiny", *HUB_NAMES, *RANDOM_SIZES)
OFFLINE_MODELS = ("toy", *WORLD_NAMES, "tiny", *RANDOM_SIZES)  # shipped or built here: always available
#: models with random weights: they exercise the machinery (and its speed); their numbers are meaningless
RANDOM_MODELS = ("tiny", *RANDOM_SIZES)
HUB_ID = r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*"  # owner/name, as the Hugging Face hub spells repo ids
#: marks a hook installed when a model is set up, before anything compiles, and kept for the model's life
#: (edit slots, the dtype cast of the text states): the only hooks a compiled decoder may carry
PERSISTENT_HOOK = "_mgbench_persistent_hook"


def persistent(hook):
    """Mark ``hook`` as ``PERSISTENT_HOOK``; return it."""
    setattr(hook, PERSISTENT_HOOK, True)
    return hook


@dataclass
class LoadedMusicgen:
    """A MusicGen model with its processor, plus an identity string for cache keys."""

    name: str
    model: "torch.nn.Module"
    processor: object
    identity: str

    @property
    def decoder_layers(self) -> "torch.nn.ModuleList":
        return self.model.decoder.model.decoder.layers

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers)

    @property
    def num_codebooks(self) -> int:
        return self.model.decoder.num_codebooks

    @property
    def frame_rate(self) -> int:
        return self.model.audio_encoder.config.frame_rate

    @property
    def sample_rate(self) -> int:
        return self.model.config.audio_encoder.sampling_rate

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def facts(self) -> ModelFacts:
        return ModelFacts.of_config(self.model.config)


def resolve_source(name: str, build: bool = True) -> str:
    """Map a model name to what ``from_pretrained`` takes: a local folder or a hub id. The offline random models are
    built on first use, unless ``build`` is False (then their folder may not exist yet)."""
    if name == "toy":
        return str(toy_folder() / "musicgen")
    if name in WORLD_NAMES:
        return str(world_folder(name))
    if name == "tiny":
        return str(tiny_musicgen_folder())
    if name in RANDOM_SIZES:
        return str(random_musicgen_folder(name) if build else random_folder(name, 0))
    if name in HUB_NAMES:
        return HUB_NAMES[name]
    folder = Path(name)
    if folder.is_dir():
        if not (folder / "config.json").is_file() or not [*folder.glob("*.safetensors"), *folder.glob("*.bin")]:
            raise MissingWeightsError(f"folder {name} holds no MusicGen model: it needs config.json and weights "
                                      "(*.safetensors or *.bin), as save_pretrained writes them")
        return name
    if re.fullmatch(HUB_ID, name) and not folder.exists():
        return name  # a hub id such as "facebook/musicgen-melody"
    raise unknown("model", name, MODEL_NAMES, "Or pass a local folder or a Hugging Face hub id (owner/name)")


def planted_truth(name: str) -> "dict | None":
    """The planted mechanism shipped with a model (``planted.json`` beside its weights, as the toy world has it),
    or None for models without one."""
    import json

    if name in RANDOM_MODELS or name in HUB_NAMES:  # none has one (and a random size is not built to find out)
        return None
    if name in WORLD_NAMES:  # read where the world is stored, without assembling it (--no-compute builds nothing)
        return json.loads(stored_file(name, "planted.json").read_text())
    source = Path(resolve_source(name))
    path = source / "planted.json"
    return json.loads(path.read_text()) if source.is_dir() and path.is_file() else None


def default_run(name: str) -> tuple[int, float]:
    """A model's default (prompts per concept, clip seconds): a planted world's (shipped or built), tiny's, or the
    paper's."""
    if name == "tiny":
        return TINY_RUN
    return TOY_RUN if name in ("toy", *WORLD_NAMES) or planted_truth(name) is not None else PAPER_RUN


def planted_classifier(name: str) -> "str | None":
    """The classifier that hears a planted model's world, as its ``planted.json`` names it (``toy``, or a folder
    relative to the model's, e.g. ``../classifier`` for a world built from scratch); None without one."""
    planted = planted_truth(name)
    if planted is None:
        return None
    named = planted.get("classifier", "toy")
    folder = Path(resolve_source(name)) / named
    return str(folder.resolve()) if folder.is_dir() else named


def cached_snapshot(repo_id: str) -> "Path | None":
    """The local Hugging Face cache snapshot of ``repo_id`` if its config and weights are there."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(config, str):
        return None
    snapshot = Path(config).parent
    return snapshot if any(snapshot.glob("*.safetensors")) or any(snapshot.glob("*.bin")) else None


def is_available(name: str) -> bool:
    """Whether ``name`` can be loaded without a network (the shipped and randomly built models always can; this
    builds nothing)."""
    if name in OFFLINE_MODELS:
        return True
    source = resolve_source(name)
    if Path(source).is_dir():
        return True
    return cached_snapshot(source) is not None


def model_facts(name: str) -> ModelFacts:
    """The facts of model ``name`` from its configuration alone, so that a run can be checked and planned before its
    weights are downloaded (or built): the published configuration of the paper's sizes and their random
    counterparts, else the ``config.json`` of the folder or of the hub id's cached snapshot."""
    from transformers import MusicgenConfig

    size = RANDOM_SIZES.get(name, name)
    if size in HUB_NAMES:
        return ModelFacts.of_config(published_config(size))
    if name == "tiny":  # (without building it)
        return ModelFacts.of_config(tiny_config(len(build_tiny_tokenizer())))
    # a shipped world's stored configuration, without assembling the world
    source = str(stored_file(name, "config.json").parent) if name in WORLD_NAMES else resolve_source(name)
    if not Path(source).is_dir():
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(source, "config.json")
        if not isinstance(config, str):
            raise MissingWeightsError(missing_weights_message(source))
        source = str(Path(config).parent)
    with quiet_transformers():
        return ModelFacts.of_config(MusicgenConfig.from_pretrained(source))


def local_identity(name: str) -> "str | None":
    """The content identity of model ``name`` (as ``LoadedMusicgen.identity``) if its weights are on this machine,
    else None; builds and downloads nothing (but the tiny model, built in a second)."""
    source = resolve_source(name, build=False)
    if Path(source).is_dir() or (name not in RANDOM_SIZES and cached_snapshot(source) is not None):
        return model_identity(source)
    return None


def missing_weights_message(repo_id: str) -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return (f"MusicGen weights {repo_id!r} are not in the local Hugging Face cache ({HF_HUB_CACHE}). Add --download "
            f"where the hub can be reached, or on a machine with internet run `hf download {repo_id}` "
            f"(huggingface_hub) and copy the cache folder, set HF_HOME to where it lives, or pass a local folder "
            f"with --model PATH.")


def load_musicgen(name: str = "toy", device: str = "cpu", dtype: "torch.dtype | None" = None,
                  allow_download: bool = False) -> LoadedMusicgen:
    """Load a MusicGen model and processor by name (see ``MODEL_NAMES``), a hub id or a local folder.

    ``torch.float64`` applies to the whole model (text encoder, decoder, codec: every number exact to the
    last bits on any CPU); a half dtype (e.g. ``torch.float16`` on CUDA) to the decoder only. Hub weights that are not
    in the local cache are an error unless ``allow_download`` (mgbench works offline first).
    """
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    source = resolve_source(name)
    local = Path(source).is_dir()
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
    if not local and cached_snapshot(source) is None and (offline or not allow_download):
        raise MissingWeightsError(missing_weights_message(source))
    try:
        with quiet_transformers():
            model = MusicgenForConditionalGeneration.from_pretrained(source, dtype=torch.float32)
            processor = AutoProcessor.from_pretrained(source)
    except OSError as e:
        if local:
            raise MissingWeightsError(f"cannot load MusicGen from folder {source}: {e}. The folder needs the files "
                                      "that save_pretrained writes (config.json, model.safetensors, processor)"
                                      ) from None
        raise MissingWeightsError(missing_weights_message(source)) from None
    model = model.to(device).eval()
    if dtype == torch.float64:
        model.to(dtype)
    elif dtype is not None:  # only the decoder: T5 and EnCodec stay in float32
        model.decoder.to(dtype)
        model.decoder.register_forward_pre_hook(_cast_text_states(dtype), with_kwargs=True)
    return LoadedMusicgen(name, model, processor, model_identity(source))


def _cast_text_states(dtype: torch.dtype):
    """A pre-hook that hands the (float32) text encoder's states to a decoder running in ``dtype``."""
    def hook(module, args, kwargs):
        states = kwargs.get("encoder_hidden_states")
        if states is not None and states.dtype != dtype:
            kwargs["encoder_hidden_states"] = states.to(dtype)
        return args, kwargs

    return persistent(hook)  # installed at load, before anything compiles


def model_identity(source: str) -> str:
    """The model's content (a hash of its config, weights and processor files) for cache keys: not its name or
    folder, so weights edited in place are a new model and a copied folder the same one."""
    folder = Path(source) if Path(source).is_dir() else cached_snapshot(source)
    if folder is None:
        raise MissingWeightsError(missing_weights_message(source))
    return content_identity(folder)
