"""The shipped family of toy worlds: ``toy`` (``data/toy/musicgen``) and the worlds of ``data/toy/worlds/<name>``.

A world is stored as what differs from ``toy``: ``weights.safetensors`` (the tensors that differ or are new;
its metadata ``drop`` lists ``toy``'s tensors the world does not have), ``planted.json``, ``build.json`` and
any other file of the model folder that differs (``config.json`` when its text encoder does). On first use
``world_folder`` assembles a normal ``from_pretrained`` folder under ``$MGBENCH_HOME/worlds``, named by the
content it is made of and renamed into place atomically, so the real loader is what loads a world.
``write_world`` stores a built world that way (how the shipped ones were made).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..paths import build_folder_once, folder_digest, mgbench_home, toy_folder

#: Bump when the assembly changes: folders assembled by older versions are ignored.
WORLDS_VERSION = 1
WEIGHTS = "model.safetensors"  # the weights file of a model folder
DELTA = "weights.safetensors"  # a world's tensors that differ from toy's
RECORD = "build.json"  # a world's build record: kept in the package, not in the model folder

#: a run's default (prompts per concept, clip seconds; ``loading.default_run``). The toy worlds': 1 s is their
#: training clips' length, and 4 prompts the fewest at which their ground-truth checks pass with probability >= 0.99
#: (docs/toy-world.md "Power"); tiny's are its golden values'; the paper's, 100 prompts of 4 s
TOY_RUN, TINY_RUN, PAPER_RUN = (4, 1.0), (2, 1.0), (100, 4.0)


def worlds_root() -> Path:
    """Where the shipped worlds' differences from ``toy`` live (inside the package)."""
    return toy_folder() / "worlds"


def stored_file(name: str, filename: str) -> Path:
    """A shipped world's model-folder file read where it is stored, without assembling the world: its own where it
    differs from ``toy``'s, else ``toy``'s."""
    own = worlds_root() / name / filename
    return own if own.is_file() else toy_folder() / "musicgen" / filename


def world_names() -> tuple[str, ...]:
    """The shipped worlds besides ``toy``."""
    root = worlds_root()
    return tuple(sorted(p.name for p in root.iterdir() if (p / DELTA).is_file())) if root.is_dir() else ()


def world_folder(name: str) -> Path:
    """The ``from_pretrained`` folder of the shipped world ``name`` (assembled on first use)."""
    base, delta = toy_folder() / "musicgen", worlds_root() / name
    digest = hashlib.sha256(f"{WORLDS_VERSION}|{folder_digest(base)}|{folder_digest(delta)}".encode()).hexdigest()
    return build_folder_once(mgbench_home() / "worlds" / f"{name}-{digest[:16]}",
                             lambda tmp: assemble_world(base, delta, tmp))


def assemble_world(base: Path, delta: Path, out: Path) -> None:
    """Write into ``out`` the model folder made of ``base``'s files overlaid with the world ``delta``."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    for source in (base, delta):
        for path in source.iterdir():
            if path.is_file() and path.name not in (WEIGHTS, DELTA, RECORD) and not path.name.startswith("."):
                shutil.copyfile(path, out / path.name)
    with safe_open(str(delta / DELTA), "pt") as f:
        drop = set(json.loads((f.metadata() or {}).get("drop", "[]")))
    tensors = {k: v for k, v in load_file(str(base / WEIGHTS)).items() if k not in drop}
    save_file({**tensors, **load_file(str(delta / DELTA))}, str(out / WEIGHTS), metadata={"format": "pt"})


def write_world(built: Path, out: Path, base: "Path | None" = None) -> None:
    """Store the model folder ``built`` (and the ``build.json`` beside it) in ``out`` as its differences from
    ``base`` (default: the shipped ``toy``'s model folder)."""
    import torch
    from safetensors.torch import load_file, save_file

    base = base or toy_folder() / "musicgen"
    out.mkdir(parents=True, exist_ok=True)
    ours, theirs = load_file(str(built / WEIGHTS)), load_file(str(base / WEIGHTS))
    changed = {k: v for k, v in ours.items() if k not in theirs or theirs[k].dtype != v.dtype
               or theirs[k].shape != v.shape or not torch.equal(theirs[k], v)}
    drop = sorted(k for k in theirs if k not in ours)
    save_file(changed, str(out / DELTA), metadata={"format": "pt", "drop": json.dumps(drop)})
    for path in built.iterdir():
        same = (base / path.name).is_file() and (base / path.name).read_bytes() == path.read_bytes()
        if path.is_file() and path.name != WEIGHTS and not path.name.startswith(".") and not same:
            shutil.copyfile(path, out / path.name)
    shutil.copyfile(built.parent / RECORD, out / RECORD)
