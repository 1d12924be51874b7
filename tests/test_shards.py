"""Issue 15: sharded and concurrent runs on one store give the single process's tables, each row once."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mgbench.experiments.resume import fill_table
from mgbench.experiments.shards import Shard
from mgbench.experiments.store import ResultStore

#: a tiny sweep with every experiment: 3 concepts (6 ordered pairs), 2 layers, 2 prompts
SWEEP = ["run", "--model", "tiny", "--concepts", "guitar,jazz,piano", "--layers", "1,3", "--components", "mlp",
         "--prompts", "2", "--seconds", "0.3", "--batch-size", "2", "--listen", "0", "--no-report"]
TABLES = ("decoderlens", "similarity", "interventions", "ceiling")
IDS = {"decoderlens": ["concept", "layer", "prompt_id"], "similarity": ["concept", "layer_i", "layer_j"],
       "interventions": ["technique", "original", "desired", "layer", "component", "prompt_id"],
       "ceiling": ["original", "desired", "prompt_id"]}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One home for the module: the tiny models are built once."""
    return tmp_path_factory.mktemp("home")


def mgbench(home, *args: str) -> subprocess.Popen:
    """``mgbench`` in a subprocess of its own (one core)."""
    env = {**os.environ, "MGBENCH_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mgbench.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(*runs: subprocess.Popen) -> list[str]:
    """Wait for ``runs`` to succeed; their outputs."""
    outs = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        outs.append(out)
    return outs


def computed_passes(outs: list[str]) -> list[str]:
    """The concept passes that shards said they computed."""
    return sorted(name for out in outs for listed in re.findall(r"computed the concept passes of ([^;]+);", out)
                  for name in listed.split(", ") if name != "none")


def tables(out) -> dict[str, pd.DataFrame]:
    """A results folder's tables, rows in id order."""
    return {name: pd.read_parquet(out / f"{name}.parquet").sort_values(IDS[name]).reset_index(drop=True)
            for name in TABLES}


def store_files(cache) -> dict:
    """Every file of a cache with its inode and modification time: a rewrite changes them."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(cache.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def one_process(home, tmp_path_factory):
    """The reference: the sweep's tables from one plain process."""
    tmp = tmp_path_factory.mktemp("one")
    finish(mgbench(home, *SWEEP, "--cache", str(tmp / "cache"), "--out", str(tmp / "out")))
    reference = tables(tmp / "out")
    assert {name: len(t) for name, t in reference.items()} == {  # 3 concepts, 2 layers, 2 prompts, 6 pairs
        "decoderlens": 3 * 2 * 2, "similarity": 3 * 4 * 4, "interventions": 2 * 6 * 2 * 2, "ceiling": 6 * 2}
    return reference


def assert_same_tables(out, reference) -> None:
    for name, table in tables(out).items():
        assert not table.duplicated(IDS[name]).any(), name
        pd.testing.assert_frame_equal(table, reference[name], check_exact=True, obj=name)


def test_three_concurrent_shards_then_a_plain_run_give_the_one_process_tables(home, one_process, tmp_path):
    cache = str(tmp_path / "cache")
    outs = finish(*[mgbench(home, *SWEEP, "--cache", cache, "--shard", f"{i}/3") for i in (1, 2, 3)])
    assert computed_passes(outs) == ["guitar", "jazz", "piano"]  # each concept pass computed once, by one shard
    assert not (tmp_path / "out").exists()  # a shard writes no tables
    stored = store_files(tmp_path / "cache")
    finish(mgbench(home, *SWEEP, "--cache", cache, "--out", str(tmp_path / "out")))
    assert store_files(tmp_path / "cache") == stored  # the plain run computed (and wrote) nothing new
    assert_same_tables(tmp_path / "out", one_process)


def test_a_missing_shard_is_seen_the_plain_run_computes_its_rows(home, one_process, tmp_path):
    """The check above on purpose broken: with shard 2/2 never run, the plain run has work left (and does it)."""
    cache = str(tmp_path / "cache")
    finish(mgbench(home, *SWEEP, "--cache", cache, "--shard", "1/2"))
    stored = store_files(tmp_path / "cache")
    finish(mgbench(home, *SWEEP, "--cache", cache, "--out", str(tmp_path / "out")))
    assert store_files(tmp_path / "cache") != stored
    assert_same_tables(tmp_path / "out", one_process)


def test_a_shard_killed_midway_and_restarted(home, one_process, tmp_path):
    cache = tmp_path / "cache"
    victim = mgbench(home, *SWEEP, "--cache", str(cache), "--shard", "2/3")
    deadline = time.monotonic() + 300
    while not list(cache.glob("*/decoderlens/*.parquet")):  # its first stored batch: mid-way through its work
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()[1]
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert not list(cache.glob("*/ceiling/*.parquet"))  # it died before its last table
    finish(*[mgbench(home, *SWEEP, "--cache", str(cache), "--shard", f"{i}/3") for i in (1, 2, 3)])  # 2 restarted
    stored = store_files(cache)
    finish(mgbench(home, *SWEEP, "--cache", str(cache), "--out", str(tmp_path / "out")))
    assert store_files(cache) == stored
    assert_same_tables(tmp_path / "out", one_process)


def test_two_plain_runs_at_once_end_with_identical_duplicate_free_tables(home, one_process, tmp_path):
    cache = str(tmp_path / "cache")
    finish(*[mgbench(home, *SWEEP, "--cache", cache, "--out", str(tmp_path / name)) for name in ("a", "b")])
    assert_same_tables(tmp_path / "a", one_process)
    assert_same_tables(tmp_path / "b", one_process)


def test_rows_stored_twice_are_read_once(tmp_path):
    """Two writers that computed the same rows (in other batches, so in other files) leave both files; the table
    holds each row once."""
    store = ResultStore(tmp_path, {"k": 1})
    wanted = pd.DataFrame({"prompt_id": range(6)})
    rows = wanted.assign(value=wanted.prompt_id * 0.5)
    store.add_rows("t", rows.iloc[0:4])
    store.add_rows("t", rows.iloc[2:6])  # rows 2 and 3 again, in a file of other bytes
    assert len(store.read("t")) == 8  # the duplicates are really there
    table = fill_table(store, "t", wanted, ["prompt_id"], compute=pytest.fail, batches=lambda m: [m], desc="t")
    pd.testing.assert_frame_equal(table.sort_values("prompt_id").reset_index(drop=True), rows)


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_split_every_grid_and_concept_list_exactly(count):
    grid = pd.DataFrame({"row": range(20)})
    concepts = [f"c{i}" for i in range(10)]
    picked = [Shard(i, count).pick(grid).row.tolist() for i in range(1, count + 1)]
    assert sorted(sum(picked, [])) == list(range(20))  # each row in exactly one shard
    assert max(map(len, picked)) - min(map(len, picked)) <= 1  # balanced
    owned = [Shard(i, count).concepts(concepts) for i in range(1, count + 1)]
    assert sorted(sum(owned, [])) == sorted(concepts)


def test_shard_parse():
    assert Shard.parse("2/3") == Shard(2, 3) and Shard.parse(" 1 / 1 ") == Shard(1, 1) and str(Shard(2, 3)) == "2/3"


@pytest.mark.extra("ray")
def test_two_ray_workers_give_the_one_process_tables(home, one_process, tmp_path):
    run = mgbench(home, *SWEEP, "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--workers", "2")
    _, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert_same_tables(tmp_path / "out", one_process)
    # one stage for the sweep: 12 decoderlens, 12 tunedlens, 48 interventions and 12 ceiling rows, 3 passes of 2
    # prompts (in a log, as here: lines; the workers' own progress is silenced)
    stages = {line.split(":")[1].strip() for line in err.splitlines() if line.startswith("mgbench: ")}
    assert "mgbench: sweep on 2 Ray workers: 90 rows to do" in err and "90 rows done in" in err
    assert "sweep on 2 Ray workers" in stages and not any(s.startswith("baseline") for s in stages), stages


def _ray_shard_tasks() -> list[int]:
    """Processes of Ray workers running a shard (Ray titles them ``ray::<task>``)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"ray::_run_shard_task"):
                pids.append(int(cmdline.parent.name))
        except OSError:  # ended meanwhile
            continue
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes through /proc")
@pytest.mark.extra("ray")
def test_a_ray_worker_killed_midway_is_retried_by_ray(home, one_process, tmp_path):
    cache = tmp_path / "cache"
    run = mgbench(home, *SWEEP, "--cache", str(cache), "--out", str(tmp_path / "out"), "--workers", "2")
    deadline = time.monotonic() + 300
    while not (list(cache.glob("*/decoderlens/*.parquet")) and (tasks := _ray_shard_tasks())):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1]
        time.sleep(0.05)
    assert not list(cache.glob("*/ceiling/*.parquet"))  # mid-way
    os.kill(tasks[0], signal.SIGKILL)
    finish(run)
    assert_same_tables(tmp_path / "out", one_process)


def test_workers_without_ray_is_one_line_saying_how_to_install_it(tmp_path, monkeypatch, capsys):
    from mgbench.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    argv = ["run", "--experiments", "decoderlens", "--concepts", "guitar", "--layers", "0", "--prompts", "1",
            "--seconds", "0.2", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--workers", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mgbench: error: --workers runs the shards on Ray")
    assert 'pip install -e ".[ray]"' in err and not (tmp_path / "out").exists()


def test_plan_for_workers_counts_each_shards_missing_clips(home, tmp_path, monkeypatch, capsys):
    from mgbench.cli import main
    from mgbench.engine.runner import GenerationSettings
    from mgbench.experiments.selection import Selection
    from mgbench.experiments.session import RunConfig, Session
    from mgbench.experiments.shards import missing_work, run_shard

    monkeypatch.setenv("MGBENCH_HOME", str(home))
    assert main(["plan", *SWEEP[1:-3], "--cache", str(tmp_path / "plan"), "--workers", "3"]) == 0
    out = capsys.readouterr().out
    total = int(re.search(r"total +([\d,]+) clips", out)[1].replace(",", ""))
    busiest = int(re.search(r"on 3 workers .*: [\d.,]+ h, the busiest worker's ([\d,]+) clips", out)[1])

    session = Session(RunConfig(model="tiny", prompts=2, batch_size=2, generation=GenerationSettings(seconds=0.3),
                                cache=str(tmp_path / "cache")))
    selection = Selection(concepts=("guitar", "jazz", "piano"), components=("mlp",), layers=(1, 3))
    clips = lambda: [sum(w.values()) for w in missing_work(session, selection, 3)]  # noqa: E731
    before = clips()
    # 3 concepts: 6 decoderlens and 6 tunedlens clips (layer 3 reuses the baselines), 48 interventions, 12 ceiling,
    # 6 baselines
    assert sum(before) == total == 6 + 6 + 48 + 12 + 6 and max(before) == busiest
    run_shard(session, selection, Shard(2, 3))
    after = clips()
    assert after[1] == 0  # shard 2 is done; the others lose at most the passes shard 2 computed for them
    assert before[0] + before[2] - 2 * 2 <= after[0] + after[2] <= before[0] + before[2]


@pytest.fixture
def session(home, tmp_path, monkeypatch):
    from mgbench.engine.runner import GenerationSettings
    from mgbench.experiments.session import RunConfig, Session

    monkeypatch.setenv("MGBENCH_HOME", str(home))
    return Session(RunConfig(model="tiny", prompts=1, generation=GenerationSettings(seconds=0.3),
                             cache=str(tmp_path / "cache")))


@pytest.mark.parametrize("heartbeat_s, waiter_computes", [(0.05, False), (60.0, True)],
                         ids=["renewed-claim-waited-for", "unrenewed-claim-taken-over"])
def test_a_live_claim_on_a_pass_is_waited_for_not_computed_again(session, monkeypatch, heartbeat_s, waiter_computes):
    """One thread holds the claim for a slow pass (1 s); another needs the pass. While the holder renews its claim the
    other waits and computes nothing; a claim left unrenewed (the holder's heartbeat broken on purpose) goes stale
    after 0.3 s and is taken over."""
    import threading

    from mgbench.experiments import shards

    monkeypatch.setattr(shards, "HEARTBEAT_S", heartbeat_s)
    monkeypatch.setattr(shards, "STALE_S", 0.3)
    compute = session.concept_pass
    monkeypatch.setattr(session, "concept_pass", lambda concept: time.sleep(1.0) or compute(concept))
    results = {}
    holder = threading.Thread(target=lambda: results.setdefault("holder", shards.ensure_pass(session, "guitar")))
    holder.start()
    claim = session.store.dir / "claims" / "pass-guitar"
    while not claim.exists():
        time.sleep(0.001)
    results["waiter"] = shards.ensure_pass(session, "guitar", poll_s=0.01)
    holder.join()
    assert results == {"holder": True, "waiter": waiter_computes}
    assert session.store.tensor_path("pass-guitar").exists() and not claim.exists()


def test_a_dead_shards_claim_is_taken_over(session, monkeypatch):
    from mgbench.experiments import shards

    monkeypatch.setattr(shards, "STALE_S", 0.3)
    claim = session.store.dir / "claims" / "pass-jazz"
    claim.parent.mkdir(parents=True)
    claim.touch()  # left by a shard that was killed while computing the pass: never renewed
    start = time.monotonic()
    assert shards.ensure_pass(session, "jazz", poll_s=0.01) is True  # computed here, after the claim went stale
    assert time.monotonic() - start > 0.3 and session.store.tensor_path("pass-jazz").exists() and not claim.exists()
    assert shards.ensure_pass(session, "jazz") is False  # stored: nothing to do
