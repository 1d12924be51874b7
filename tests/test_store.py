"""The result store: damaged or stale files are detected, moved aside and recomputed; concurrent writers are safe."""

import hashlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mgbench.engine.runner import GenerationSettings
from mgbench.experiments.session import RunConfig, Session
from mgbench.experiments.store import ResultStore, StoreWarning


@pytest.fixture
def store(tmp_path):
    return ResultStore(tmp_path / "cache", {"model": "sha256:abc", "seed": 1})


def _rows(start: int, n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"concept": ["guitar"] * n, "prompt_id": range(start, start + n),
                         "effect": np.linspace(-1.5, 2.5, n) + start})


def _shards(store, table="t"):
    return sorted((store.dir / table).glob("*.parquet"))


def test_shards_are_named_by_content_and_carry_the_key(store):
    store.add_rows("t", _rows(0))
    (shard,) = _shards(store)
    assert shard.stem == hashlib.sha256(shard.read_bytes()).hexdigest()
    import pyarrow.parquet as pq

    assert b"mgbench_key" in pq.read_schema(shard).metadata
    pd.testing.assert_frame_equal(store.read("t"), _rows(0))


def test_every_flipped_byte_is_caught_moved_aside_and_nothing_else_lost(store):
    store.add_rows("t", _rows(0))
    store.add_rows("t", _rows(100))
    victim = next(s for s in _shards(store) if 0 in pd.read_parquet(s).prompt_id.values)
    clean = victim.read_bytes()
    for position in range(len(clean)):
        damaged = bytearray(clean)
        damaged[position] ^= 0x10
        victim.write_bytes(bytes(damaged))
        with pytest.warns(StoreWarning, match="do not match the hash in its name"):
            rows = store.read("t")
        pd.testing.assert_frame_equal(rows, _rows(100))  # the other shard's rows survive
        assert not victim.exists()
    moved = list((store.dir / "damaged" / "t").iterdir())
    assert len(moved) == len(clean)  # every damaged copy kept, none deleted


def test_a_shard_from_a_run_with_other_settings_is_moved_aside(store, tmp_path):
    other = ResultStore(tmp_path / "cache", {"model": "sha256:abc", "seed": 2})
    other.add_rows("t", _rows(0))
    (foreign,) = _shards(other)
    (store.dir / "t").mkdir()
    copied = store.dir / "t" / foreign.name
    copied.write_bytes(foreign.read_bytes())
    with pytest.warns(StoreWarning, match="made with other settings"):
        assert store.read("t").empty
    assert not copied.exists() and len(list((store.dir / "damaged" / "t").iterdir())) == 1


def test_readers_never_see_or_touch_a_writers_file_in_progress(store):
    store.add_rows("t", _rows(0))
    in_progress = store.dir / "t" / ".0123.parquet.abcd.parquet"  # what atomic_write_with writes before renaming
    in_progress.write_bytes(b"PAR1 half written")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(store.read("t"), _rows(0))
    assert in_progress.exists()


@pytest.fixture
def session(tmp_path):
    return Session(RunConfig(model="tiny", prompts=2, generation=GenerationSettings(seconds=0.5, seed=1), batch_size=5,
                             cache=str(tmp_path / "cache")))


@pytest.mark.parametrize("where", ["header", "tensors"])
def test_a_damaged_concept_pass_is_moved_aside_and_recomputed(session, where):
    guitar = session.concepts.get("guitar")
    first = session.concept_pass(guitar)
    path = session.store.tensor_path("pass-guitar")
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    start = 8 + header // 2 if where == "header" else 8 + header + (len(data) - 8 - header) // 2
    data[start:start + 16] = np.random.default_rng(0).integers(0, 256, 16, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.warns(StoreWarning, match="pass-guitar.safetensors failed a check"):
        again = Session(session.config).concept_pass(guitar)  # a new session reads the disk cache
    torch.testing.assert_close(again.logits, first.logits, rtol=0, atol=0)
    assert torch.equal(again.layer_outputs, first.layer_outputs)
    assert len(list((session.store.dir / "damaged" / "tensors").iterdir())) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recomputed file is whole again
        assert Session(session.config).concept_pass(guitar).logits.equal(first.logits)


def test_concept_pass_of_other_settings_is_moved_aside(session):
    logits = torch.zeros(2, 527)
    session.store.save_tensors("pass-guitar", {"logits": logits}, {"concept": "piano"})
    with pytest.warns(StoreWarning, match="made with other settings"):
        assert session.store.load_tensors("pass-guitar", {"concept": "guitar"}) is None
    assert session.store.load_tensors("pass-guitar", {"concept": "guitar"}) is None  # moved, so simply missing


def test_two_runs_on_one_cache_at_once_end_complete_and_duplicate_free(tmp_path):
    cache = tmp_path / "cache"
    args = ["run", "--concepts", "guitar,jazz", "--experiments", "interventions", "--components", "mlp",
            "--layers", "1,3", "--prompts", "2", "--seconds", "0.5", "--batch-size", "3", "--cache", str(cache),
            "--listen", "0", "--no-report"]
    env = {**os.environ, "MGBENCH_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}  # one core each
    runs = [subprocess.Popen([sys.executable, "-m", "mgbench.cli", *args, "--out", str(tmp_path / name)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("a", "b")]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    ids = ["technique", "original", "desired", "layer", "component", "prompt_id"]
    a, b = (pd.read_parquet(tmp_path / name / "interventions.parquet").sort_values(ids).reset_index(drop=True)
            for name in ("a", "b"))
    assert len(a) == 2 * 2 * 2 * 2 and not a.duplicated(ids).any()  # techniques x pairs x layers x prompts
    pd.testing.assert_frame_equal(a, b)


def test_the_cli_names_a_damaged_file_in_one_line(tmp_path, monkeypatch, capsys):
    from mgbench.cli import main

    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    args = ["run", "--concepts", "guitar,jazz", "--experiments", "interventions", "--components", "mlp",
            "--layers", "3", "--prompts", "1", "--seconds", "0.3", "--cache", str(tmp_path / "cache"),
            "--listen", "0", "--no-report", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    (shard,) = (tmp_path / "cache").glob("*/interventions/*.parquet")
    shard.write_bytes(shard.read_bytes()[:-20] + bytes(20))
    capsys.readouterr()
    assert main(args) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    warning = [line for line in lines if "failed a check" in line]
    assert len(warning) == 1 and warning[0].startswith(f"mgbench: warning: {shard}") and "damaged" in warning[0]
    assert len(pd.read_parquet(tmp_path / "out" / "interventions.parquet")) == 4  # recomputed, nothing lost
