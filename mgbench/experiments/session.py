"""A benchmark session: one model, one classifier, one set of settings, and their result store."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch

from .. import __version__
from ..backends import Backend, get_backend
from ..classify.clap import clap_identity, load_clap
from ..classify.loading import classifier_identity, load_classifier
from ..concepts.concept_set import Concept, ConceptSet, load_concepts
from ..concepts.recognition import Recognition, recognition
from ..engine.batching import loaded_batch_size
from ..engine.hooks import Capture
from ..engine.runner import GenerationSettings, Runner
from ..engine.sites import PAPER_COMPONENTS, Site, all_sites
from ..engine.workspace import padded
from ..errors import ConfigError
from ..paths import mgbench_home
from ..progress import progress
from ..zoo.architectures import ModelFacts
from ..zoo.loading import RANDOM_MODELS, LoadedMusicgen, load_musicgen, local_identity, model_facts, planted_classifier
from .metrics import ODDS
from .store import ResultStore

#: clips per classifier call outside float64 runs: every call the same size (``Session.classify``)
CLASSIFY_CHUNK = 32
DTYPES = {"float64": torch.float64, "float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: models that run in float64 on the CPU with ``dtype="auto"``: small enough that it costs little, and it
#: makes their sampled tokens the same on every CPU (float32 kernels differ in the last bits between
#: AVX2, AVX-512 and plain builds, and a token near a tie flips). So does every planted model (a toy world:
#: a folder with ``planted.json``, shipped or built).
EXACT_MODELS = ("toy", "tiny")
#: default classifiers: the toy world's for the toy model, the random tiny PaSST for models with random weights
#: (their numbers are meaningless anyway, and it needs no download), the paper's PaSST for every other model;
#: a planted model's is the one its ``planted.json`` names
DEFAULT_CLASSIFIERS = {"toy": "toy", **{name: "tiny" for name in RANDOM_MODELS}}


@dataclass(frozen=True)
class RunConfig:
    """Everything a run's numbers depend on, plus where to keep them."""

    model: str = "toy"
    classifier: "str | None" = None  # default: toy for the toy model, tiny for random models, passt otherwise
    recognizer: str = "passt"  # passt: AudioSet labels; clap: zero-shot over the concepts' texts (recognition.py)
    prompts: int = 100
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    device: str = "cpu"
    batch_size: int = 0  # prompt rows per generate call; 0: as many as memory allows (batching.auto_batch_size)
    dtype: str = "auto"  # float64 for toy and tiny on the CPU, else float32; float16 / bfloat16: the decoder
    odds: str = ODDS
    both_halves: bool = False  # also intervene on the unconditional (CFG) rows
    concepts_file: "str | None" = None
    cache: "str | None" = None  # default: $MGBENCH_HOME/cache
    download: bool = False  # fetch hub weights that are not cached (not part of any cache key)
    backend: str = "transformers"  # the library that runs MusicGen (model/backends.py)
    text_padding: "str | None" = None  # masked | audiocraft; default: the backend's own (model/backends.py)
    engine: str = "own"  # own decode loop or transformers' generate: the same codes, so no part of any cache key
    compile_mode: "str | None" = None  # torch.compile of the own loop's step: same codes up to float rounding

    @property
    def resolved_dtype(self) -> str:
        """The dtype ``auto`` stands for: float64 for the toy worlds (every planted model) and tiny on the CPU (same
        tokens on every CPU), else float32."""
        if self.dtype != "auto":
            return self.dtype
        exact = self.model in EXACT_MODELS or planted_classifier(self.model) is not None
        return "float64" if exact and self.device == "cpu" else "float32"

    @property
    def resolved_text_padding(self) -> str:
        """The text padding ``None`` stands for: the backend's own (masked for transformers)."""
        return get_backend(self.backend).padding(self.text_padding)

    @property
    def classifier_name(self) -> str:
        """The classifier ``None`` stands for: with CLAP the tiny one for random models, else the hub's; with PaSST
        ``DEFAULT_CLASSIFIERS``."""
        if self.classifier:
            return self.classifier
        if self.recognizer == "clap":
            return "tiny" if self.model in RANDOM_MODELS else "clap"
        return DEFAULT_CLASSIFIERS.get(self.model) or planted_classifier(self.model) or "passt"


@dataclass
class ConceptPass:
    """What one baseline generation of a concept's prompts yields (all sites captured)."""

    logits: torch.Tensor  # (prompts, classes) recognizer logits of the un-intervened clips
    means: dict[str, torch.Tensor]  # "L3.mlp/cond" -> (hidden,) mean over steps and prompts
    layer_outputs: torch.Tensor  # (prompts, layers, hidden) time-averaged residual output per layer


class Session:
    """Lazily loads the model and classifier; computes and caches concept passes."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.backend: Backend = get_backend(config.backend)
        self.backend.check(config.text_padding, config.engine, config.compile_mode)  # before anything loads
        self.concepts: ConceptSet = load_concepts(config.concepts_file)
        self.recognition: Recognition = recognition(self.concepts, config.recognizer)  # checked before loading
        self._passes: dict[str, ConceptPass] = {}  # in memory after the first read or computation

    @cached_property
    def musicgen(self) -> LoadedMusicgen:
        if self.config.resolved_dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {self.config.dtype!r}; use auto or one of {', '.join(DTYPES)}")
        dtype = DTYPES[self.config.resolved_dtype]
        return load_musicgen(self.config.model, device=self.config.device, dtype=dtype,
                             allow_download=self.config.download)

    @cached_property
    def facts(self) -> ModelFacts:
        """The model's shapes and rates, from its configuration (its weights are not loaded for them)."""
        return self.musicgen.facts if "musicgen" in self.__dict__ else model_facts(self.config.model)

    @cached_property
    def batch_size(self) -> int:
        """Prompt rows per generate call: the configured number, or the memory-based automatic size."""
        return self.config.batch_size or loaded_batch_size(self.musicgen, self.config.generation.seconds)

    @cached_property
    def runner(self) -> Runner:
        """The session's runner; compiled, it pads every batch to ``batch_size`` prompts and every text to the bucket
        of the longest prompt of the concepts (one graph, the same kernels for a prompt in every batch)."""
        c = self.config
        runner = self.backend.runner(self.musicgen, c.generation, c.resolved_text_padding, c.engine, c.compile_mode,
                                     self.batch_size)
        runner.fit_text(self._all_prompts())
        return runner

    def _all_prompts(self) -> list[str]:
        """Every prompt of the run's concepts (a concept with fewer prompts than asked for is refused when selected)."""
        texts = []
        for concept in self.concepts.concepts:
            with contextlib.suppress(ConfigError):
                texts += self.prompts(concept.name)
        return texts

    @cached_property
    def classifier(self):
        """The recognizer's model: an AudioSet classifier, or CLAP bound to the concepts' texts."""
        c = self.config
        if c.recognizer == "clap":
            return load_clap(c.classifier_name, self.recognition.classes, c.device, c.download)
        return load_classifier(c.classifier_name, device=c.device)

    @cached_property
    def store(self) -> ResultStore:
        return ResultStore(Path(self.config.cache or mgbench_home() / "cache"), self.key())

    def local_store(self) -> "ResultStore | None":
        """The session's store if its model and classifier are on this machine, else None (nothing can be cached
        for them yet); loads, builds and downloads nothing (``mgbench plan``)."""
        return self.store if self.key(load=False) is not None else None

    def identities(self, load: bool = True) -> "tuple[str | None, str | None]":
        """The model's and the classifier's content identities, from their files; where they are not on this
        machine, None, or with ``load`` the loaders' own (which build the offline models or say what is missing)."""
        c = self.config
        model = local_identity(c.model)
        classifier = clap_identity(c.classifier_name) if c.recognizer == "clap" else classifier_identity(
            c.classifier_name)
        if load:
            model = model or self.musicgen.identity
            classifier = classifier or self.classifier.identity
        return model, classifier

    def key(self, load: bool = True) -> "dict | None":
        """What every cached number of this session depends on (None without ``load`` where a model is missing)."""
        c = self.config
        model, classifier = self.identities(load)
        if model is None or classifier is None:
            return None
        concept_data = json.dumps([x.definition() for x in self.concepts.concepts] + [self.concepts.template,
                                   self.concepts.slots, self.concepts.slot_order], sort_keys=True)
        key = {"mgbench": __version__, "model": model, "classifier": classifier,
               "prompts": c.prompts, "generation": c.generation.as_dict(), "odds": c.odds, "dtype": c.resolved_dtype,
               "both_halves": c.both_halves, "backend": c.backend, "text_padding": c.resolved_text_padding,
               "concepts": hashlib.sha256(concept_data.encode()).hexdigest()[:16]}
        if c.compile_mode is not None:  # compiled kernels round differently, and by shape: their rows are kept apart
            key["compile"] = {"mode": c.compile_mode, "passes": "one step", "batch": self.batch_size}
        if c.recognizer != "passt":  # PaSST's keys are those from before recognizers could be chosen
            key["recognizer"] = c.recognizer
        return key

    def label(self, table: pd.DataFrame, category: bool = True) -> pd.DataFrame:
        """``table`` with the model and classifier columns first, the recognizer last and (with ``category``, for a
        table with a ``concept`` column) the concept's category after it: what makes tables of many runs
        concatenable."""
        out = table.copy()
        if category and "concept" in out:
            out.insert(out.columns.get_loc("concept") + 1, "category",
                       [self.concepts.get(c).category for c in out["concept"]])
        out.insert(0, "classifier", self.config.classifier_name)
        out.insert(0, "model", self.config.model)
        return out.assign(recognizer=self.config.recognizer)

    def prompts(self, concept: str) -> list[str]:
        return self.concepts.prompts(concept, self.config.prompts)

    def classify(self, audio: torch.Tensor) -> torch.Tensor:
        """Classifier logits of clips. A clip's logits must not depend on the clips that share its batch (then an edit
        that changes no token changes no number, exactly), and the classifier's kernels sum in another order for
        another batch size: in float64 runs each clip is classified alone, in others in chunks of exactly
        ``CLASSIFY_CHUNK`` clips (the last one padded with copies of its last clip)."""
        rate = self.musicgen.sample_rate
        if self.config.resolved_dtype == "float64":
            return torch.cat([self.classifier.logits(clip[None], rate).cpu() for clip in audio])
        chunks = [padded(list(chunk), CLASSIFY_CHUNK) for chunk in audio.split(CLASSIFY_CHUNK)]
        return torch.cat([self.classifier.logits(torch.stack(chunk), rate).cpu() for chunk in chunks])[:len(audio)]

    def batches(self, n: int):
        """Index ranges of at most ``batch_size`` rows."""
        return [range(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]

    def generate(self, prompts: list[str], edits: "list | None" = None,
                 noise_keys: "list[str] | None" = None) -> torch.Tensor:
        """Clips for any number of prompts (with optional per-prompt edits and noise keys), ``batch_size`` rows
        per call."""
        pick = lambda items, rows: None if items is None else [items[i] for i in rows]  # noqa: E731
        return torch.cat([self.runner.generate(pick(prompts, rows), edits=pick(edits, rows),
                                               noise_keys=pick(noise_keys, rows))
                          for rows in self.batches(len(prompts))])

    def concept_pass(self, concept: Concept) -> ConceptPass:
        """Baseline clips of a concept's prompts, with every site's mean captured (cached on disk and in memory)."""
        if concept.name not in self._passes:
            self._passes[concept.name] = self._load_or_compute_pass(concept)
        return self._passes[concept.name]

    def _load_or_compute_pass(self, concept: Concept) -> ConceptPass:
        cached = self.store.load_tensors(f"pass-{concept.name}", {"concept": concept.name})
        if cached is not None:
            return _unpack(cached)
        loaded, prompts = self.musicgen, self.prompts(concept.name)
        sites = all_sites(loaded.num_layers, (*PAPER_COMPONENTS, "resid"))
        logits, row_means = [], {s: [] for s in sites}
        for rows in progress(self.batches(len(prompts)), f"baseline {concept.name}"):
            capture = Capture(sites)
            batch = [prompts[i] for i in rows]
            logits.append(self.classify(self.runner.generate(batch, capture=capture)))
            for s in sites:
                row_means[s].append(capture.row_means(s).view(2 if self.runner.guided else 1, len(batch), -1))
        tensors = {"logits": torch.cat(logits)}
        for s in sites:
            per_prompt = torch.cat(row_means[s], dim=1)  # (halves, prompts, hidden)
            tensors[f"{s}/cond"] = per_prompt[0].mean(0)
            if per_prompt.shape[0] == 2:
                tensors[f"{s}/uncond"] = per_prompt[1].mean(0)
            if s.component == "resid":
                tensors[f"{s}/per_prompt"] = per_prompt[0]
        self.store.save_tensors(f"pass-{concept.name}", tensors, {"concept": concept.name})
        return _unpack(tensors)

    def means(self, concept: Concept, site: Site) -> tuple[torch.Tensor, "torch.Tensor | None"]:
        """(conditional, unconditional) mean output of ``site`` over the concept's prompts."""
        means = self.concept_pass(concept).means
        return means[f"{site}/cond"], means.get(f"{site}/uncond")


def _unpack(tensors: dict[str, torch.Tensor]) -> ConceptPass:
    resid = sorted((Site.parse(k.split("/")[0]) for k in tensors if k.endswith("/per_prompt")))
    layer_outputs = torch.stack([tensors[f"{s}/per_prompt"] for s in resid], dim=1)
    means = {k: v for k, v in tensors.items() if k.endswith(("/cond", "/uncond"))}
    return ConceptPass(tensors["logits"], means, layer_outputs)
