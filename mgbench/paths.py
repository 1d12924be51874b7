"""Where mgbench keeps things on disk, and atomic writes."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def mgbench_home() -> Path:
    """Root of mgbench's own cache (tiny models, mean activations): ``$MGBENCH_HOME`` or ``~/.cache/mgbench``."""
    return Path(os.environ.get("MGBENCH_HOME") or Path.home() / ".cache" / "mgbench")


#: Bump when a tiny model's architecture or build changes: cached folders of older versions are ignored.
TINY_VERSION = 4


def tiny_folder(kind: str, seed: int) -> Path:
    """Where the tiny model ``kind`` (``musicgen``, ``passt``, ``clap``) built from ``seed`` is cached."""
    return mgbench_home() / "tiny" / f"{kind}-s{seed}-v{TINY_VERSION}"


#: Bump when the real-size random models' build changes: cached folders of older versions are ignored.
RANDOM_VERSION = 1


def random_folder(name: str, seed: int) -> Path:
    """Where the real-size random MusicGen ``name`` (``small-random``, ...) built from ``seed`` is cached."""
    return mgbench_home() / "random" / f"{name}-s{seed}-v{RANDOM_VERSION}"


def toy_folder() -> Path:
    """The shipped toy world (``musicgen/``, ``classifier/``, ``planted.json``, ``build.json``), inside the package."""
    return Path(__file__).parent / "data" / "toy"


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_with(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically: readers see the old file or the
    whole new one, never a part, and an interrupted write leaves no file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_write_with``)."""
    atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def write_wav(path: Path, audio, sample_rate: int) -> None:
    """Write mono audio in [-1, 1] (a tensor or array) as 16-bit PCM WAV, atomically."""
    import numpy as np
    import torch
    from scipy.io import wavfile

    pcm = (np.clip(torch.as_tensor(audio).float().numpy(), -1.0, 1.0) * 32767).astype(np.int16)
    atomic_write_with(Path(path), lambda tmp: wavfile.write(tmp, sample_rate, pcm))


def file_digest(path: "str | Path") -> str:
    """The sha256 of a file's bytes, computed once and remembered (under ``mgbench_home()/digests``, by the
    file's resolved path, size, modification time and inode, so an edited file is hashed again)."""
    path = Path(path).resolve()
    stat = path.stat()
    stamp = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
    memo = mgbench_home() / "digests" / hashlib.sha256(stamp.encode()).hexdigest()[:32]
    try:
        remembered = memo.read_text()
        if len(remembered) == 64:
            return remembered
    except OSError:
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    atomic_write_bytes(memo, digest.hexdigest().encode())
    return digest.hexdigest()


def folder_digest(folder: "str | Path") -> str:
    """A sha256 over the names and contents of a folder's files (recursively, links followed, hidden files
    skipped): the content identity of a saved model."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))
    listing = "".join(f"{p.relative_to(folder).as_posix()}:{file_digest(p)};" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def content_identity(folder: "str | Path") -> str:
    """A saved model's identity for cache keys: ``sha256:`` and the start of its ``folder_digest``."""
    return "sha256:" + folder_digest(folder)[:32]


def build_folder_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """Return ``folder``, first building it with ``build(tmp_folder)`` and renaming it into place.

    The rename is atomic, so an interrupted build leaves no half-written folder behind.
    """
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        build(tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another process built it first
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
