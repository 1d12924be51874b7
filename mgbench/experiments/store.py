"""On-disk cache of results and tensors, keyed by everything they depend on.

A store is a folder named by the hash of its key (model identity, classifier, settings, concept
set, mgbench version...). Tables are written as parquet shards, one per finished unit of work, so
an interrupted run keeps every shard it finished and resumes by computing only missing rows.
Tensors are safetensors files whose metadata repeats the key; a file whose key differs, or that
cannot be read, is treated as missing and recomputed, never silently used.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from pathlib import Path

import pandas as pd
import torch

from ..paths import atomic_write_bytes, atomic_write_with


def key_hash(key: dict) -> str:
    """A short stable hash of a JSON-able key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ResultStore:
    """Shards of tidy tables and safetensors files under ``root/<hash of key>``."""

    def __init__(self, root: "str | Path", key: dict):
        self.key = key
        self.dir = Path(root) / key_hash(key)
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            atomic_write_bytes(key_file, json.dumps(key, indent=2, sort_keys=True, default=str).encode())

    # -- tables --------------------------------------------------------------------------------
    def add_rows(self, table: str, rows: pd.DataFrame) -> None:
        """Write finished rows of ``table`` as a new shard (atomically)."""
        if rows.empty:
            return
        path = self.dir / table / f"{uuid.uuid4().hex}.parquet"
        atomic_write_with(path, lambda tmp: rows.to_parquet(tmp, index=False))

    def read(self, table: str) -> pd.DataFrame:
        """All rows of ``table`` written so far (empty when none); unreadable shards are dropped."""
        frames = []
        for shard in sorted((self.dir / table).glob("*.parquet")):
            try:
                frames.append(pd.read_parquet(shard))
            except Exception as e:  # noqa: BLE001 -- any unreadable shard is recomputed
                warnings.warn(f"dropping unreadable result shard {shard} ({e}); its rows will be recomputed",
                              stacklevel=2)
                shard.unlink(missing_ok=True)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    # -- tensors -------------------------------------------------------------------------------
    def tensor_path(self, name: str) -> Path:
        return self.dir / "tensors" / f"{name}.safetensors"

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        from safetensors.torch import save_file

        metadata = {"key": json.dumps({**self.key, **meta}, sort_keys=True, default=str)}
        atomic_write_with(self.tensor_path(name),
                          lambda tmp: save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                                                metadata=metadata))

    def load_tensors(self, name: str, meta: dict) -> "dict[str, torch.Tensor] | None":
        """The tensors saved under ``name`` for this key and ``meta``; None when missing, stale or damaged."""
        from safetensors import safe_open

        path = self.tensor_path(name)
        if not path.exists():
            return None
        expected = json.dumps({**self.key, **meta}, sort_keys=True, default=str)
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") != expected:
                    warnings.warn(f"cached tensors {path} were made with other settings; recomputing", stacklevel=2)
                    return None
                return {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # noqa: BLE001 -- a damaged file is recomputed
            warnings.warn(f"cached tensors {path} are unreadable ({e}); recomputing", stacklevel=2)
            return None
