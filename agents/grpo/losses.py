"""The GRPO math as small pure functions on tensors: advantages, clipped surrogate, KL, reductions.

Every function here takes tensors and returns tensors; none holds state, touches a model or reads
the config. Shapes: ``B`` completions, ``T`` completion tokens (right-padded, with a 0/1 ``mask``
saying which positions are real), ``N`` groups of ``G`` completions each.

References:
    - GRPO: Shao et al. 2024, *DeepSeekMath* (arXiv:2402.03300), eq. 3 and §4.1.2: group-relative
      advantages, the clipped surrogate of PPO (Schulman et al. 2017, arXiv:1707.06347), the k3
      KL estimator, and per-sequence normalisation.
    - Dr. GRPO: Liu et al. 2025, *Understanding R1-Zero-Like Training* (arXiv:2503.20783): no
      division by the std, and a constant normaliser instead of each sequence's length.
    - DAPO: Yu et al. 2025 (arXiv:2503.14476): separate clip ranges (clip-higher) and token-level
      normalisation over the whole batch.
    - k3: J. Schulman, *Approximating KL Divergence* (2020), http://joschu.net/blog/kl-approx.html.

This module must never import transformers or anything that loads a model; it is the part of the
trainer that is checked against hand-computed values.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "ADVANTAGE_DIVISORS",
    "LOSS_REDUCTIONS",
    "clipped_surrogate",
    "constant_length_mean",
    "group_advantages",
    "kl_k3",
    "sequence_mean",
    "token_entropy",
    "token_log_probs",
    "token_mean",
]


# -- advantages -------------------------------------------------------------------------------


def _group_std(rewards: Tensor, eps: float) -> Tensor:
    return rewards.std(dim=1, keepdim=True) + eps  # [N, 1]; unbiased std


def _batch_std(rewards: Tensor, eps: float) -> Tensor:
    return (rewards.std() + eps).expand(rewards.shape[0], 1)  # [N, 1]


def _no_std(rewards: Tensor, eps: float) -> Tensor:
    return torch.ones(rewards.shape[0], 1, dtype=rewards.dtype, device=rewards.device)


# What (reward - group mean) is divided by, chosen by name once (GRPOConfig.advantage_scale).
ADVANTAGE_DIVISORS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "group": _group_std,
    "batch": _batch_std,
    "none": _no_std,
}


def group_advantages(rewards: Tensor, scale: str = "group", eps: float = 1e-4) -> Tensor:
    """Group-relative advantages: each reward minus its group's mean, optionally over a std.

    ``A[i, j] = (r[i, j] - mean_j r[i, :]) / (s_i + eps)`` where ``s_i`` is the group's std
    (``"group"``, GRPO), the whole batch's std (``"batch"``), or ``s_i + eps = 1`` (``"none"``,
    Dr. GRPO). A group whose rewards are all equal gets advantage 0 everywhere: it carries no
    signal.

    Args:
        rewards: ``[N, G]`` rewards, one row per group.
        scale: ``"group"``, ``"batch"`` or ``"none"``.
        eps: Added to the std so that a zero std does not divide by zero.

    Returns:
        ``[N, G]`` advantages.

    Example:
        >>> group_advantages(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), "none")
        tensor([[ 0.5000, -0.5000],
                [ 0.0000,  0.0000]])
    """
    if rewards.dim() != 2:
        shape = tuple(rewards.shape)
        raise ValueError(f"rewards: expected a [groups, group_size] tensor, got shape {shape}")
    if scale not in ADVANTAGE_DIVISORS:
        raise ValueError(f"scale: expected one of {', '.join(ADVANTAGE_DIVISORS)}, got {scale!r}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)  # [N, G]
    return centred / ADVANTAGE_DIVISORS[scale](rewards, eps)


# -- per-token terms --------------------------------------------------------------------------


def clipped_surrogate(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    epsilon_low: float,
    epsilon_high: float,
) -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate as a per-token loss, with separate low and high clip ranges.

    ``ratio = exp(logp - old_logp)``;
    ``loss = -min(ratio * A, clip(ratio, 1 - epsilon_low, 1 + epsilon_high) * A)``.
    With ``A > 0`` the ratio's gain is cut above ``1 + epsilon_high``; with ``A < 0`` below
    ``1 - epsilon_low``; in the cut region the gradient is 0.

    Args:
        log_probs: ``[B, T]`` log-probabilities of the sampled tokens under the current policy.
        old_log_probs: ``[B, T]`` the same under the policy that sampled them (no gradient).
        advantages: ``[B]`` one advantage per completion (broadcast over its tokens), or ``[B, T]``.
        epsilon_low: Lower clip range (ratio kept >= ``1 - epsilon_low``).
        epsilon_high: Upper clip range (ratio kept <= ``1 + epsilon_high``).

    Returns:
        ``(loss, clipped)``: the ``[B, T]`` per-token loss to minimise, and a ``[B, T]`` bool
        tensor saying where the clipped term was the one chosen (the token got no gradient).

    Example:
        >>> loss, clipped = clipped_surrogate(torch.log(torch.tensor([[1.5]])),
        ...                                   torch.zeros(1, 1), torch.tensor([2.0]), 0.2, 0.2)
        >>> loss, clipped
        (tensor([[-2.4000]]), tensor([[True]]))
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)  # [B, 1], broadcast over T
    ratio = torch.exp(log_probs - old_log_probs)  # [B, T]
    unclipped = ratio * advantages  # [B, T]
    clipped_ratio = torch.clamp(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
    clipped = clipped_ratio * advantages  # [B, T]
    objective = torch.minimum(unclipped, clipped)
    return -objective, clipped < unclipped


def kl_k3(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """Schulman's k3 estimator of KL(policy || reference), per token.

    ``k3 = exp(ref - logp) - (ref - logp) - 1``: unbiased for the KL when tokens are sampled from
    the policy, and never negative.

    Args:
        log_probs: ``[B, T]`` log-probabilities of the sampled tokens under the policy.
        ref_log_probs: ``[B, T]`` the same under the reference model.

    Returns:
        ``[B, T]`` per-token estimates.

    Example:
        >>> kl_k3(torch.tensor([0.0]), torch.log(torch.tensor([0.5])))
        tensor([0.1931])
    """
    delta = ref_log_probs - log_probs  # [B, T]
    return torch.exp(delta) - delta - 1.0


def token_log_probs(logits: Tensor, tokens: Tensor) -> Tensor:
    """Log-probabilities of ``tokens`` under ``logits``.

    Args:
        logits: ``[B, T, V]`` logits at the positions that predict each token.
        tokens: ``[B, T]`` token ids.

    Returns:
        ``[B, T]`` log-probabilities.

    Example:
        >>> token_log_probs(torch.zeros(1, 1, 4), torch.tensor([[2]]))
        tensor([[-1.3863]])
    """
    # logsumexp + gather instead of a full log_softmax: one [B, T, V] tensor less in memory.
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # [B, T]
    return picked - torch.logsumexp(logits, dim=-1)


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy of the next-token distribution at each position.

    Args:
        logits: ``[B, T, V]``.

    Returns:
        ``[B, T]`` entropies in nats.

    Example:
        >>> token_entropy(torch.zeros(1, 1, 4))
        tensor([[1.3863]])
    """
    log_p = torch.log_softmax(logits, dim=-1)  # [B, T, V]
    return -(log_p.exp() * log_p).sum(dim=-1)


# -- reductions: per-token values -> one scalar -----------------------------------------------
#
# Each takes the [B, T] values and mask of one micro-batch plus counts over the whole optimizer
# batch it belongs to (`sequences`, `tokens`), so that summing the micro-batch results of an
# optimizer step gives exactly the loss of that step, whatever the gradient accumulation.


def sequence_mean(
    values: Tensor, mask: Tensor, *, sequences: int, tokens: int, max_tokens: int
) -> Tensor:
    """GRPO: mean over each sequence's tokens, then mean over the sequences.

    Example:
        >>> sequence_mean(torch.tensor([[1.0, 3.0], [4.0, 0.0]]), torch.tensor([[1, 1], [1, 0]]),
        ...               sequences=2, tokens=3, max_tokens=2)
        tensor(3.)
    """
    lengths = mask.sum(dim=1).clamp(min=1)  # [B]
    return ((values * mask).sum(dim=1) / lengths).sum() / sequences


def token_mean(
    values: Tensor, mask: Tensor, *, sequences: int, tokens: int, max_tokens: int
) -> Tensor:
    """DAPO: mean over every token of the batch (long completions weigh more).

    Example:
        >>> token_mean(torch.tensor([[1.0, 3.0], [4.0, 0.0]]), torch.tensor([[1, 1], [1, 0]]),
        ...            sequences=2, tokens=3, max_tokens=2)
        tensor(2.6667)
    """
    return (values * mask).sum() / max(tokens, 1)


def constant_length_mean(
    values: Tensor, mask: Tensor, *, sequences: int, tokens: int, max_tokens: int
) -> Tensor:
    """Dr. GRPO: sum over tokens divided by a constant, ``sequences * max_tokens``.

    Example:
        >>> values, mask = torch.tensor([[1.0, 3.0], [4.0, 0.0]]), torch.tensor([[1, 1], [1, 0]])
        >>> constant_length_mean(values, mask, sequences=2, tokens=3, max_tokens=4)
        tensor(1.)
    """
    return (values * mask).sum() / (sequences * max_tokens)


Reduction = Callable[..., Tensor]

# GRPOConfig.loss_type -> reduction, chosen once when the trainer is built.
LOSS_REDUCTIONS: dict[str, Reduction] = {
    "grpo": sequence_mean,
    "dapo": token_mean,
    "dr_grpo": constant_length_mean,
}
