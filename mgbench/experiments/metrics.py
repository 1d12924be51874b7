"""The paper's metrics as pure functions on tensors (last dimension = the recognizer's logits: 527 AudioSet classes,
or one per concept text with CLAP)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

ODDS, PROB = "odds", "prob"


def ndcg(logits: torch.Tensor, relevant: Sequence[int]) -> torch.Tensor:
    """NDCG of the ranking by ``logits`` against binary relevance (1 for ``relevant`` labels), full list.

    Returns one value per row, in [0, 1]; 1 when the relevant labels are ranked first.
    """
    logits = torch.as_tensor(logits).float()
    gains = torch.zeros(logits.shape[-1], dtype=torch.float64, device=logits.device)
    gains[list(relevant)] = 1.0
    discount = 1.0 / torch.log2(torch.arange(2, logits.shape[-1] + 2, dtype=torch.float64, device=logits.device))
    order = torch.argsort(logits, dim=-1, descending=True, stable=True)
    dcg = (gains[order] * discount).sum(-1)
    ideal = discount[: len(set(relevant))].sum()
    return (dcg / ideal).float()


def random_ranking_ndcg(relevant: int, labels: int) -> float:
    """The expected NDCG of a uniformly random ranking of ``labels`` labels of which ``relevant`` are relevant: each
    position holds a relevant label with probability relevant / labels, so E[DCG] = that times the sum of discounts."""
    discount = 1.0 / torch.log2(torch.arange(2, labels + 2, dtype=torch.float64))
    return float(relevant / labels * discount.sum() / discount[:relevant].sum())


def log_odds(logits: torch.Tensor, label: "int | torch.Tensor", kind: str = ODDS) -> torch.Tensor:
    """log odds p/(1-p) (``odds``, the paper's eq. 1) or log p (``prob``, the reference code) of ``label``.

    ``p`` is the softmax over all classes, computed in log space: ``log(1 - p)`` is the log-sum-exp of
    the other classes' log-probabilities, so the odds stay finite however much one class dominates.
    ``label`` is one class index or a tensor with one index per row.
    """
    if kind not in (ODDS, PROB):
        raise ValueError(f"log-odds kind must be {ODDS!r} or {PROB!r}, not {kind!r}")
    logp_all = torch.log_softmax(torch.as_tensor(logits).double(), dim=-1)
    label = torch.as_tensor(label, device=logp_all.device).expand(logp_all.shape[:-1]).unsqueeze(-1)
    logp = logp_all.gather(-1, label).squeeze(-1)
    if kind == PROB:
        return logp
    others = logp_all.scatter(-1, label, float("-inf"))
    return logp - torch.logsumexp(others, dim=-1)


def intervention_effect(before: torch.Tensor, after: torch.Tensor, original: "int | torch.Tensor",
                        desired: "int | torch.Tensor",
                        kind: str = ODDS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Equation (1) and its two parts: ``(effect, effect_original, effect_desired)``.

    ``effect_original = log odds(original)_before - log odds(original)_after`` (the original concept
    fading), ``effect_desired = log odds(desired)_after - log odds(desired)_before`` (the desired
    concept appearing), and ``effect = effect_original + effect_desired``.
    """
    eff_orig = log_odds(before, original, kind) - log_odds(after, original, kind)
    eff_des = log_odds(after, desired, kind) - log_odds(before, desired, kind)
    return eff_orig + eff_des, eff_orig, eff_des


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p) || softmax(q)) in nats, per row."""
    logp = torch.log_softmax(torch.as_tensor(p_logits).double(), dim=-1)
    logq = torch.log_softmax(torch.as_tensor(q_logits).double(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1).clamp_min(0.0)


def precision(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Intervention precision: minus KL(after || before) of the classifier's softmax (higher is better, 0 best)."""
    return -kl_divergence(after, before)


def self_similarity(layer_means: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix between layers, averaged over prompts.

    ``layer_means`` is ``(prompts, layers, hidden)``: each layer's time-averaged output per prompt.
    Returns ``(layers, layers)``.
    """
    x = torch.as_tensor(layer_means).double()
    return torch.cdist(x, x).mean(0)
