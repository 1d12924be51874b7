"""``mgbench run --workers N``: a selection's N shards (``shards.py``) as Ray tasks, one device each.

Ray places the tasks (``num_gpus=1`` each on CUDA, ``num_cpus=1`` on the CPU), on a local Ray started for the
run or on an existing cluster (``RAY_ADDRESS``), and runs a task again when its worker dies (``max_retries``); a
rerun computes only its shard's missing rows. The workers write into the same store (a shared folder on a
cluster), which the driver polls for one progress bar of the whole sweep. Ray is an optional extra.
"""

from __future__ import annotations

import os
from dataclasses import replace

from ..errors import ConfigError, MgbenchError
from ..progress import Progress
from .pipeline import stored_grids
from .selection import Selection
from .session import RunConfig, Session
from .shards import Shard, ShardResult, missing_work, run_shard

#: how often Ray runs a shard again after its worker process died (killed, out of memory, node lost)
MAX_RETRIES = 3
INSTALL_RAY = 'pip install -e ".[ray]"'


class WorkerError(MgbenchError):
    """A shard failed on Ray (after its retries)."""


def import_ray():
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--workers runs the shards on Ray, which is not installed: {INSTALL_RAY} (or run each "
                          "shard yourself with --shard I/N)") from None
    return ray


def _run_shard_task(config: RunConfig, selection: Selection, shard: Shard) -> ShardResult:
    """What a Ray worker runs: one shard in a session of its own."""
    return run_shard(Session(config), selection, shard)


def run_workers(session: Session, selection: Selection, workers: int, poll_s: float = 1.0) -> None:
    """Run the ``workers`` shards of ``selection`` on Ray, with one progress bar; raise ``WorkerError`` when a shard
    fails after its retries."""
    ray = import_ray()
    store = session.store
    config = replace(session.config, cache=str(store.dir.parent.resolve()),  # the workers' store is this one
                     device="cuda" if session.config.device.startswith("cuda") else session.config.device)
    if config.compile_mode is not None:  # a compiled run's shape (and store key) holds its batch size: the driver's
        config = replace(config, batch_size=session.batch_size)
    tables = [experiment.stored_table(grid) for experiment, grid in stored_grids(session, selection)]
    total = sum(missing_work(session, selection, clips=False)[0].values())
    counted: dict[str, int] = {}

    def stored() -> int:  # rows and baseline clips in the store: progress, from file footers and names
        passes = len(list((store.dir / "tensors").glob("pass-*.safetensors")))
        return sum(store.row_count(t, counted) for t in tables) + session.config.prompts * passes

    env = {"TQDM_DISABLE": "1", **{k: os.environ[k] for k in ("MGBENCH_HOME", "HF_HUB_OFFLINE") if k in os.environ}}
    ray.init(runtime_env={"env_vars": env}, log_to_driver=False, logging_level="ERROR")
    try:
        resources = {"num_gpus": 1} if config.device == "cuda" else {"num_cpus": 1}
        task = ray.remote(_run_shard_task).options(max_retries=MAX_RETRIES, **resources)
        shards = [Shard(i, workers) for i in range(1, workers + 1)]
        refs = {task.remote(config, selection, shard): shard for shard in shards}
        start, pending = stored(), list(refs)
        with Progress(f"sweep on {workers} Ray workers", total, unit="row") as bar:
            while pending:
                _, pending = ray.wait(pending, num_returns=len(pending), timeout=poll_s)
                bar.update(min(total, stored() - start) - bar.done)
        for ref, shard in refs.items():
            try:
                ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                raise WorkerError(f"shard {shard} failed on Ray: {e.cause}") from None
            except ray.exceptions.RayError as e:
                raise WorkerError(f"shard {shard} failed on Ray after {MAX_RETRIES} retries: "
                                  f"{str(e).strip().splitlines()[0]}") from None
    finally:
        ray.shutdown()
