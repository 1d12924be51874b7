"""On-disk cache of results and tensors, keyed by everything they depend on, verified on every read.

A store is a folder named by the hash of its key (model and classifier content, settings, concept
set, mgbench version...). Tables are parquet shards, one per finished unit of work, so an
interrupted run keeps every shard it finished and resumes by computing only missing rows. Tensors
are safetensors files.

Nothing is used unverified. A shard's file name is the sha256 of its bytes, its pages carry
parquet's own CRC checksums and its metadata the store's key; a tensor file's metadata holds the key
and the sha256 of its tensors. A file that fails a check is moved aside to ``damaged/`` (never
deleted), named in one warning, and its part is recomputed; nothing else is lost. Files are written
under hidden temporary names and renamed into place, and readers look only at final names, so
several processes can share one store.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..paths import atomic_write_bytes, atomic_write_with

SHARD_NAME = re.compile(r"^[0-9a-f]{64}\.parquet$")
KEY_FIELD = b"mgbench_key"


class StoreWarning(UserWarning):
    """A cached file failed a check and was moved aside; its part is recomputed."""


def key_hash(key: dict) -> str:
    """A short stable hash of a JSON-able key."""
    return hashlib.sha256(_key_json(key).encode()).hexdigest()[:16]


def _key_json(key: dict) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class ResultStore:
    """Shards of tidy tables and safetensors files under ``root/<hash of key>``."""

    def __init__(self, root: "str | Path", key: dict):
        self.key = key
        self.dir = Path(root) / key_hash(key)
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            atomic_write_bytes(key_file, json.dumps(key, indent=2, sort_keys=True, default=str).encode())

    def quarantine(self, path: Path, reason: str) -> None:
        """Move a file that failed a check to ``damaged/`` and say so in one line."""
        dest = self.dir / "damaged" / path.parent.name / f"{path.name}.{uuid.uuid4().hex[:8]}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.replace(dest)
        except FileNotFoundError:  # another process moved it first
            return
        warnings.warn(f"{path} failed a check ({reason}); moved to {dest}; its part will be recomputed",
                      StoreWarning, stacklevel=3)

    # -- tables --------------------------------------------------------------------------------
    def add_rows(self, table: str, rows: pd.DataFrame) -> None:
        """Write finished rows of ``table`` as a new shard named by its content (atomically)."""
        if rows.empty:
            return
        arrow = pa.Table.from_pandas(rows, preserve_index=False)
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), KEY_FIELD: _key_json(self.key)})
        buffer = io.BytesIO()
        pq.write_table(arrow, buffer, write_page_checksum=True)
        data = buffer.getvalue()
        atomic_write_bytes(self.dir / table / f"{hashlib.sha256(data).hexdigest()}.parquet", data)

    def read(self, table: str) -> pd.DataFrame:
        """All verified rows of ``table`` written so far (empty when none)."""
        folder = self.dir / table
        frames = []
        for shard in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not SHARD_NAME.match(shard.name):  # another writer's file in progress, or not ours
                continue
            frame = self._read_shard(shard)
            if frame is not None:
                frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def row_count(self, table: str, counted: "dict[str, int] | None" = None) -> int:
        """Rows in ``table``'s finished shards as their parquet footers say: cheap and unverified (for progress).
        ``counted`` remembers shards already counted by name (a name is its content, so its count never changes)."""
        counted = {} if counted is None else counted
        folder = self.dir / table
        for shard in folder.iterdir() if folder.is_dir() else []:
            if SHARD_NAME.match(shard.name) and shard.name not in counted:
                try:
                    counted[shard.name] = pq.read_metadata(shard).num_rows
                except (OSError, pa.ArrowException):  # moved aside meanwhile, or damaged: the reader will say so
                    continue
        return sum(counted.values())

    def _read_shard(self, shard: Path) -> "pd.DataFrame | None":
        try:
            data = shard.read_bytes()
        except FileNotFoundError:  # moved aside by another process
            return None
        if hashlib.sha256(data).hexdigest() != shard.stem:
            self.quarantine(shard, "its bytes do not match the hash in its name")
            return None
        try:
            arrow = pq.read_table(io.BytesIO(data), page_checksum_verification=True)
        except Exception as e:  # noqa: BLE001 -- any unreadable shard is recomputed
            self.quarantine(shard, f"unreadable: {e}")
            return None
        if (arrow.schema.metadata or {}).get(KEY_FIELD) != _key_json(self.key).encode():
            self.quarantine(shard, "it was made with other settings")
            return None
        return arrow.to_pandas()

    # -- tensors -------------------------------------------------------------------------------
    def tensor_path(self, name: str) -> Path:
        return self.dir / "tensors" / f"{name}.safetensors"

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        from safetensors.torch import save_file

        tensors = {k: v.contiguous().cpu() for k, v in tensors.items()}
        metadata = {"key": _key_json({**self.key, **meta}), "sha256": tensors_digest(tensors)}
        atomic_write_with(self.tensor_path(name), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

    def load_tensors(self, name: str, meta: dict) -> "dict[str, torch.Tensor] | None":
        """The tensors saved under ``name`` for this key and ``meta``; None when missing, stale or damaged
        (a stale or damaged file is moved aside)."""
        from safetensors import safe_open

        path = self.tensor_path(name)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except FileNotFoundError:
            return None
        except Exception as e:  # noqa: BLE001 -- a damaged file is recomputed
            self.quarantine(path, f"unreadable: {e}")
            return None
        if metadata.get("key") != _key_json({**self.key, **meta}):
            self.quarantine(path, "it was made with other settings")
            return None
        if metadata.get("sha256") != tensors_digest(tensors):
            self.quarantine(path, "its tensors do not match their recorded sha256")
            return None
        return tensors
