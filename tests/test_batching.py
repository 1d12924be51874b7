import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mgbench.engine.batching import auto_batch_size, loaded_batch_size, row_bytes
from mgbench.errors import ConfigError
from mgbench.experiments.resume import OomBackoff
from mgbench.experiments.session import RunConfig, Session
from mgbench.perf.cost import bytes_per_clip, flops_per_clip, gpu_kind, hardware_limit, steps
from mgbench.zoo.architectures import SHAPES


def test_oom_backoff_halves_and_keeps_every_finished_piece():
    stored, seen = [], []

    def compute(batch):
        seen.append(len(batch))
        if len(batch) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate")
        return batch

    run = OomBackoff(compute, stored.append)
    run(pd.DataFrame({"x": range(10)}))
    assert sorted(pd.concat(stored).x) == list(range(10)) and max(len(s) for s in stored) <= 3
    assert seen[:3] == [10, 5, 2] and run.limit == 2
    seen.clear()
    run(pd.DataFrame({"x": range(4)}))
    assert seen == [2, 2]  # later batches start at the size that fitted
    with pytest.raises(ValueError):
        OomBackoff(lambda b: (_ for _ in ()).throw(ValueError("bad")), stored.append)(pd.DataFrame({"x": [1]}))


def test_auto_batch_size_follows_the_budget(tiny):
    facts = tiny.facts
    per_row = row_bytes(facts, 4.0)
    assert row_bytes(facts, 8.0) > per_row > row_bytes(facts, 1.0) and row_bytes(facts, 4.0, 2) < per_row
    assert auto_batch_size(facts, 4.0, False, budget_bytes=10 * per_row) == 10
    assert auto_batch_size(facts, 4.0, False, budget_bytes=1) == 1
    assert auto_batch_size(facts, 4.0, False, budget_bytes=10**15) == 256  # the CPU cap
    assert auto_batch_size(facts, 4.0, True, budget_bytes=10**15) == 2048  # the GPU cap
    assert 1 <= loaded_batch_size(tiny, 1.0) <= 256


def test_flop_estimate_matches_a_counted_decoder_step(tiny):
    """The estimate's matmul FLOPs equal what torch counts for one uncached decoder step on 3 text tokens."""
    shape = SHAPES["tiny"]
    decoder = tiny.model.decoder
    ids = torch.randint(0, 2048, (4, 1))  # one row x 4 codebooks, one step
    states = torch.randn(1, 3, 64)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        decoder(input_ids=ids, encoder_hidden_states=states, use_cache=False)
    assert counter.get_flop_counts()["Global"][torch.ops.aten.mm] == 2 * (shape.weights + 3 * shape.cross_kv_weights)


def test_hardware_limit_model():
    small = SHAPES["small"]
    assert steps(4.0) == 203 and flops_per_clip(small, 4.0) > 300e9
    assert bytes_per_clip(small, 8.0) > 3 * bytes_per_clip(small, 4.0)  # quadratic in length
    assert hardware_limit(small, 4.0, "H200") > hardware_limit(small, 4.0, "H100") > hardware_limit(
        SHAPES["large"], 4.0, "H100")
    assert gpu_kind("NVIDIA H100 80GB HBM3") == "H100" and gpu_kind("Tesla T4") is None


def test_unknown_dtype_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown dtype 'fp8'"):
        Session(RunConfig(dtype="fp8", cache=str(tmp_path))).musicgen  # noqa: B018
