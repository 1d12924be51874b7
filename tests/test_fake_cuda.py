"""The hooks and the sampler on CUDA tensors, on any machine: fake CUDA tensors (``FakeTensorMode``).

Fake tensors carry a device, shape and dtype but no data, and raise on an operation that mixes
devices, as CUDA does ("found two different devices cuda:0, cpu"). A dispatch mode counts the
host-to-device copies an operation makes: hook data and sampler keys are built once per batch, so a
generation step must make none (each one is a blocking copy that waits for the GPU queue).

Before issue 14's fix five of these tests failed (verified by running them): the edit hook's ``index_select``
with a CPU index raised the device error, and ``gumbel_noise`` copied ``torch.tensor(seed)`` to the
device at every step. Hook data now lives on the model's device, built once per batch.
"""

import warnings
from types import SimpleNamespace

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mgbench.engine.decode import presized_positions
from mgbench.engine.hooks import ADD, REPLACE, Capture, RowEdit, edit_hooks, installed
from mgbench.engine.levers import conditional_cross, filled_attention
from mgbench.engine.sampling import CommonNoiseSampler, gumbel_noise
from mgbench.engine.sites import TRANSFORMERS_SITES, Site, all_sites
from mgbench.engine.slots import EditSlots
from mgbench.engine.stepper import frame_step
from mgbench.engine.taps import install
from mgbench.engine.workspace import Workspace

CUDA = torch.device("cuda", 0)


class HostToDevice(TorchDispatchMode):
    """Records every operation that reads a CPU tensor and writes a CUDA one (a host-to-device copy)."""

    def __init__(self):
        super().__init__()
        self.copies: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        if any(t.device.type == "cpu" for t in inputs) and any(t.device.type == "cuda" for t in outputs):
            self.copies.append(str(func))
        return out


@pytest.fixture(scope="module")
def fake_cuda():
    return FakeTensorMode(allow_non_fake_inputs=True)  # real CPU inputs (edit vectors) become fake CPU tensors


def _build_fake_decoder(mode: FakeTensorMode, config, dtype: torch.dtype):
    from transformers import MusicgenForConditionalGeneration

    with mode, torch.device("cuda"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # init touches data pointers of fake tensors
        return MusicgenForConditionalGeneration._from_config(config, dtype=dtype).eval().decoder


@pytest.fixture(scope="module")
def fake_decoder(fake_cuda, tiny):
    """The tiny MusicGen's decoder built on fake CUDA (same config, weights without values)."""
    return _build_fake_decoder(fake_cuda, tiny.model.config, torch.float32)


def _step_inputs(decoder, prompts: int, guided: bool = True):
    rows = 2 * prompts if guided else prompts
    k, hidden = decoder.num_codebooks, decoder.config.hidden_size
    return dict(input_ids=torch.zeros(rows * k, 1, dtype=torch.long, device=CUDA),
                encoder_hidden_states=torch.zeros(rows, 5, hidden, device=CUDA),
                encoder_attention_mask=torch.ones(rows, 5, dtype=torch.long, device=CUDA), use_cache=False)


def test_fake_cuda_catches_device_mismatches_and_copies(fake_cuda):
    """The checks below rely on these two: a device mix raises, and a copy to the device is counted."""
    with fake_cuda:
        x = torch.empty(4, 3, device="cuda")
        with pytest.raises(RuntimeError, match="two different devices"):
            x.index_select(0, torch.tensor([1]))  # a CPU index, as the edit hook used to build it
        cpu_values = torch.zeros(3)
        with HostToDevice() as h2d:
            x + 1
            x[0].copy_(x[1])
        assert h2d.copies == []
        with HostToDevice() as h2d:
            x + cpu_values.to(x.device)  # a per-step .to(device): what the hooks must not do
            torch.tensor(7, device="cuda")
        assert len(h2d.copies) == 2


@pytest.mark.parametrize("guided", [True, False])
def test_one_decoder_step_with_edits_and_captures_on_cuda(fake_cuda, fake_decoder, guided):
    """Every site edited (replace and add, both halves) and captured in one decoder step of the tiny model on
    fake CUDA: no device error, no host-to-device copy in the step, outputs and captured sums on the device."""
    layers, hidden = fake_decoder.model.decoder.layers, fake_decoder.config.hidden_size
    sites = all_sites(len(layers), tuple(TRANSFORMERS_SITES))
    edits = [RowEdit(site, (REPLACE, ADD)[i % 2], torch.randn(hidden), torch.randn(hidden) if guided else None)
             for i, site in enumerate(sites)]
    capture = Capture(sites)
    with fake_cuda, torch.no_grad():
        hooks = edit_hooks(layers, edits, guided=guided) + capture.hooks(layers)  # built once per batch
        inputs = _step_inputs(fake_decoder, len(edits), guided)
        with installed(hooks), HostToDevice() as h2d:
            logits = fake_decoder(**inputs).logits
            fake_decoder(**inputs)  # a second step: still nothing copied
    assert h2d.copies == []
    assert logits.device == CUDA
    assert all(capture.sums[s].device == CUDA for s in sites) and capture.steps[sites[0]] == 2


def test_edit_hooks_follow_the_decoders_dtype(fake_cuda, tiny):
    """A half-precision decoder on CUDA: float32 edit vectors are cast once, and the step keeps float16."""
    half = _build_fake_decoder(fake_cuda, tiny.model.config, torch.float16)
    layers, seen = half.model.decoder.layers, []
    with fake_cuda, torch.no_grad():
        hooks = edit_hooks(layers, [RowEdit(Site(1, "mlp"), ADD, torch.randn(half.config.hidden_size))])
        inputs = _step_inputs(half, 1)
        inputs["encoder_hidden_states"] = inputs["encoder_hidden_states"].half()
        with installed(hooks + [(layers[2], lambda m, a, out: seen.append(out[0].dtype))]), HostToDevice() as h2d:
            half(**inputs)
    assert h2d.copies == [] and seen == [torch.float16]


def test_sampler_steps_on_cuda_copy_nothing(fake_cuda):
    """The sampler's keys go to the device once (its first call); later steps copy nothing to the device."""
    sampler = CommonNoiseSampler([11, 12], num_codebooks=4, seed=5, top_k=250)
    with fake_cuda:
        scores = torch.zeros(8, 2048, device="cuda")
        sampler(torch.zeros(8, 1, dtype=torch.long, device="cuda"), scores)  # set-up step
        with HostToDevice() as h2d:
            for step in (2, 3):
                out = sampler(torch.zeros(8, step, dtype=torch.long, device="cuda"), scores)
    assert h2d.copies == []
    assert out.device == CUDA and out.shape == scores.shape


def test_gumbel_noise_on_cuda_copies_nothing(fake_cuda):
    with fake_cuda:
        keys = torch.zeros(6, dtype=torch.int64, device="cuda")
        tokens = torch.zeros(6, 250, dtype=torch.int64, device="cuda")
        with HostToDevice() as h2d:
            noise = gumbel_noise(123, keys, 4, tokens)
    assert h2d.copies == [] and noise.device == CUDA and noise.dtype == torch.float32


def test_edit_slots_on_cuda_copy_nothing_per_step(fake_cuda, tiny):
    """The compiled path's edits (``EditSlots``): slot tensors live on the device and are written once per batch,
    so steps make no host-to-device copy and the slots are cleared on the device afterwards."""
    decoder = _build_fake_decoder(fake_cuda, tiny.model.config, torch.float32)  # slots stay on it: its own copy
    layers, hidden = decoder.model.decoder.layers, decoder.config.hidden_size
    edits = [RowEdit(Site(0, "self_attn"), REPLACE, torch.randn(hidden), torch.randn(hidden)),
             RowEdit(Site(1, "mlp"), ADD, torch.randn(hidden)), None]
    with fake_cuda, torch.no_grad():
        slots = EditSlots.on(layers)
        with slots.applied(edits):
            inputs = _step_inputs(decoder, len(edits))
            with HostToDevice() as h2d:
                logits = decoder(**inputs).logits
                decoder(**inputs)
    assert h2d.copies == []
    assert logits.device == CUDA and {slots.mask.device, slots.values.device, slots.add.device} == {CUDA}


def test_the_fixed_shape_step_on_cuda_copies_nothing(fake_cuda, tiny):
    """The compiled path's step on fake CUDA, with every lever on the decoder: capture taps, cut gates and edit slots
    on the device, a static KV cache and the in-graph sampler's buffers (``workspace.py``), guidance and sampling in
    ``stepper.frame_step`` driven by a frame counter on the device. After the set-up step, steps make no
    host-to-device copy and mix no devices; the codes, taps and counter stay on the device."""
    decoder = _build_fake_decoder(fake_cuda, tiny.model.config, torch.float32)  # hooks stay on it: its own copy
    model = SimpleNamespace(decoder=decoder)
    layers, hidden, k = decoder.model.decoder.layers, decoder.config.hidden_size, decoder.num_codebooks
    with fake_cuda, torch.no_grad():
        slots, taps, gates = install(layers)
        taps.start(4)
        sampler = CommonNoiseSampler([11, 12], num_codebooks=k, seed=5, top_k=250)
        pattern = torch.full((2 * k, 6), -1, dtype=torch.long, device="cuda")
        codes, pattern, t, keys = Workspace(model).codes(pattern, 2048, sampler.device_keys(CUDA))
        kv = Workspace(model).cache(4, 6, 5, 2)
        states = torch.zeros(4, 5, hidden, device=CUDA)
        step = lambda filled: frame_step(decoder, codes, pattern, t, states, None, kv, 3.0, keys,  # noqa: E731
                                         (5, 250, 1.0), filled)
        edits = [RowEdit(Site(0, "mlp"), ADD, torch.randn(hidden)), None]
        with slots.applied(edits), gates.cut(1), presized_positions(model, 6), filled_attention(model), \
                conditional_cross(model):
            step(2)  # set-up: the caches' lazy allocation
            with HostToDevice() as h2d:
                step(4)
                step(4)
            with pytest.raises(RuntimeError, match="two different devices"):  # noise keys left on the host
                frame_step(decoder, codes, pattern, t, states, None, kv, 3.0, keys.cpu(), (5, 250, 1.0), 4)
    assert h2d.copies == []
    assert {codes.device, t.device, taps.sums.device, gates.live.device} == {CUDA}
