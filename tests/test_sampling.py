import numpy as np
import torch
from scipy.stats import chisquare

from mgbench.engine.sampling import CommonNoiseSampler, SamplerLastList, gumbel_noise, mix32, prompt_key


def test_noise_is_a_pure_function_of_seed_key_step_and_token():
    keys, tokens = torch.tensor([5, 9, 5]), torch.arange(100).expand(3, 100)
    a = gumbel_noise(1, keys, 7, tokens)
    assert torch.equal(a[0], a[2]) and not torch.equal(a[0], a[1])
    assert torch.equal(gumbel_noise(1, keys[1:2], 7, tokens[:1])[0], a[1])
    assert torch.equal(gumbel_noise(1, keys, 7, tokens[:, [40, 3]]), a[:, [40, 3]])  # a subset: same values
    assert not torch.equal(gumbel_noise(2, keys, 7, tokens), a) and not torch.equal(gumbel_noise(1, keys, 8, tokens), a)
    assert prompt_key("a") == prompt_key("a") != prompt_key("b")


def test_hash_stays_in_32_bits_and_mixes():
    x = mix32(torch.arange(100000, dtype=torch.int64))
    assert x.min() >= 0 and x.max() < 2**32 and len(torch.unique(x)) == 100000


def test_gumbel_max_draws_from_the_top_k_softmax():
    vocab, k, draws = 12, 5, 20000
    logits = torch.randn(vocab)
    sampler = CommonNoiseSampler(list(range(draws)), num_codebooks=1, seed=0, top_k=k, temperature=0.7)
    out = sampler(torch.zeros(draws, 3, dtype=torch.long), logits.expand(draws, vocab).clone())
    assert torch.all((out == 0).sum(-1) == 1)
    choice = out.argmax(-1)
    topk = torch.topk(logits, k).indices
    assert set(choice.tolist()) <= set(topk.tolist())
    probs = torch.softmax(logits[topk].double() / 0.7, -1).numpy()
    counts = np.array([(choice == t).sum().item() for t in topk])
    assert counts.sum() == draws and chisquare(counts, probs / probs.sum() * draws).pvalue > 1e-3


def test_sampler_stays_last_in_the_processor_list():
    sampler = CommonNoiseSampler([1], 1, 0)
    procs = SamplerLastList([sampler])
    marker = object()
    procs.append(marker)
    assert procs[-1] is sampler and procs[0] is marker


def test_hash_of_a_python_int_equals_the_hash_of_a_tensor():
    """``gumbel_noise`` hashes the seed on the host (nothing copied to the device): it must give the tensor's bits."""
    values = [0, 1, 5, 2**31 - 1, 2**31, 2**32 - 1, 2**32 + 7, -1, 123456789]
    assert [mix32(v) for v in values] == mix32(torch.tensor(values, dtype=torch.int64)).tolist()
