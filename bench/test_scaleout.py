"""Scale-out benchmark: wall time of a tiny sweep on 1 and on 2 local Ray workers (``mgbench run --workers N``).

Each run starts its own local Ray, loads the model in every worker and computes the sweep into a fresh store:
the wall time a user waits. A ratio, never a timed assertion; on a 2-core machine it stays below 2x (two workers
share the cores with the driver and Ray's own processes).
"""

import time

import pytest

from mgbench.engine.runner import GenerationSettings
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.experiments.workers import run_workers

pytestmark = pytest.mark.computes  # benchmarks load models: --no-compute skips them

#: the sweep of test_speed.py: 3 concepts, both techniques, every site of the tiny model, 2 prompts of 1 s
SWEEP = Selection(experiments=("interventions",), concepts=("guitar", "piano", "jazz"))


@pytest.mark.extra("ray")
def test_speed_ray_two_workers_vs_one(tmp_path, bench_record):
    wall, tables = {}, {}
    for workers in (1, 2):
        session = Session(RunConfig(model="tiny", prompts=2, generation=GenerationSettings(seconds=1.0),
                                    cache=str(tmp_path / f"cache{workers}")))
        session.musicgen, session.classifier  # noqa: B018 -- loaded (and built) outside the timed work
        start = time.perf_counter()
        run_workers(session, SWEEP, workers)
        wall[workers] = time.perf_counter() - start
        tables[workers] = session.store.read("interventions")
    bench_record("speed-ray-tiny-cpu", wall_1_worker_s=wall[1], wall_2_workers_s=wall[2],
                 speedup_2_vs_1=wall[1] / wall[2], rows=len(tables[1]))
    assert len(tables[1]) == len(tables[2]) == 2 * 6 * 12 * 2  # techniques x pairs x sites x prompts
