"""The GRPO math against values computed by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from agents.grpo.losses import (  # noqa: E402 - after the importorskip
    LOSS_REDUCTIONS,
    clipped_surrogate,
    constant_length_mean,
    group_advantages,
    kl_k3,
    sequence_mean,
    token_entropy,
    token_log_probs,
    token_mean,
)

pytestmark = pytest.mark.torch

EPS = 1e-4


def close(actual, expected) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype))


# -- group_advantages -------------------------------------------------------------------------


def test_group_scale_divides_by_the_unbiased_group_std() -> None:
    # mean 0.5; unbiased std = sqrt(4 * 0.25 / 3) = sqrt(1/3)
    advantages = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), "group", EPS)
    half = 0.5 / (math.sqrt(1 / 3) + EPS)
    close(advantages, [[half, -half, -half, half]])


def test_each_group_is_centred_and_scaled_on_its_own() -> None:
    advantages = group_advantages(torch.tensor([[1.0, 0.0], [3.0, 1.0]]), "group", EPS)
    # both groups: deviation +-d, unbiased std of two values = |a - b| / sqrt(2)
    first = 0.5 / (1 / math.sqrt(2) + EPS)
    second = 1.0 / (2 / math.sqrt(2) + EPS)
    close(advantages, [[first, -first], [second, -second]])


def test_batch_scale_divides_by_the_std_of_all_rewards() -> None:
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    std = float(torch.tensor([1.0, 0.0, 1.0, 1.0]).std())  # 0.5
    advantages = group_advantages(rewards, "batch", EPS)
    close(advantages, [[0.5 / (std + EPS), -0.5 / (std + EPS)], [0.0, 0.0]])


def test_no_scale_leaves_rewards_minus_the_group_mean() -> None:
    advantages = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), "none")
    close(advantages, [[0.75, -0.25, -0.25, -0.25]])


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_a_group_with_equal_rewards_gets_zero_advantage(scale: str) -> None:
    advantages = group_advantages(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]), scale)
    close(advantages, torch.zeros(2, 3))


def test_advantages_reject_a_flat_reward_vector() -> None:
    with pytest.raises(
        ValueError, match=r"rewards: expected a \[groups, group_size\] tensor, got shape \(4,\)"
    ):
        group_advantages(torch.zeros(4))


def test_advantages_reject_an_unknown_scale() -> None:
    with pytest.raises(ValueError, match="scale: expected one of group, batch, none, got 'std'"):
        group_advantages(torch.zeros(1, 2), "std")


# -- clipped_surrogate ------------------------------------------------------------------------


def surrogate(ratio: float, advantage: float, low: float = 0.2, high: float = 0.2):
    log_probs = torch.log(torch.tensor([[ratio]])).requires_grad_(True)
    loss, clipped = clipped_surrogate(
        log_probs, torch.zeros(1, 1), torch.tensor([advantage]), low, high
    )
    loss.sum().backward()
    return float(loss.detach()), bool(clipped), float(log_probs.grad)


def test_inside_the_clip_range_the_loss_is_minus_ratio_times_advantage() -> None:
    loss, clipped, grad = surrogate(1.1, 2.0)
    assert loss == pytest.approx(-2.2) and not clipped
    assert grad == pytest.approx(-2.2)  # d(-r A)/d(log r) = -r A


def test_a_positive_advantage_is_clipped_above_one_plus_epsilon_high() -> None:
    loss, clipped, grad = surrogate(1.5, 2.0, high=0.3)
    assert loss == pytest.approx(-1.3 * 2.0) and clipped
    assert grad == 0.0


def test_a_negative_advantage_is_clipped_below_one_minus_epsilon_low() -> None:
    loss, clipped, grad = surrogate(0.5, -1.0, low=0.2)
    assert loss == pytest.approx(0.8) and clipped
    assert grad == 0.0


def test_a_positive_advantage_is_not_clipped_below_the_range() -> None:
    # ratio 0.5 < 0.8 with A > 0: min picks the unclipped (smaller) term, the gradient flows
    loss, clipped, grad = surrogate(0.5, 1.0)
    assert loss == pytest.approx(-0.5) and not clipped
    assert grad == pytest.approx(-0.5)


def test_a_negative_advantage_is_not_clipped_above_the_range() -> None:
    loss, clipped, grad = surrogate(2.0, -1.0)
    assert loss == pytest.approx(2.0) and not clipped
    assert grad == pytest.approx(2.0)


def test_the_two_clip_ranges_are_independent() -> None:
    # DAPO's clip-higher: 1.25 is inside (1 - 0.2, 1 + 0.28) for A > 0 ...
    assert surrogate(1.25, 1.0, low=0.2, high=0.28)[1] is False
    # ... and 0.75 is below 1 - 0.2 for A < 0, whatever epsilon_high is
    loss, clipped, _ = surrogate(0.75, -1.0, low=0.2, high=0.28)
    assert loss == pytest.approx(0.8) and clipped


def test_a_zero_advantage_gives_zero_loss_and_gradient() -> None:
    loss, clipped, grad = surrogate(1.7, 0.0)
    assert (loss, clipped, grad) == (0.0, False, 0.0)


def test_one_advantage_per_completion_applies_to_all_its_tokens() -> None:
    log_probs = torch.log(torch.tensor([[1.0, 2.0], [1.0, 1.0]]))
    loss, clipped = clipped_surrogate(
        log_probs, torch.zeros(2, 2), torch.tensor([1.0, -2.0]), 0.2, 0.2
    )
    close(loss, [[-1.0, -1.2], [2.0, 2.0]])
    assert clipped.tolist() == [[False, True], [False, False]]


# -- KL, log-probs, entropy -------------------------------------------------------------------


def test_k3_matches_its_formula() -> None:
    # ref - logp = log(0.5): exp(.) - (.) - 1 = 0.5 + log 2 - 1
    value = kl_k3(torch.tensor([0.0]), torch.log(torch.tensor([0.5])))
    close(value, [0.5 + math.log(2) - 1])


def test_k3_is_zero_when_policy_and_reference_agree() -> None:
    log_probs = torch.tensor([[-0.1, -2.3]])
    close(kl_k3(log_probs, log_probs), torch.zeros(1, 2))


def test_k3_is_never_negative() -> None:
    delta = torch.linspace(-5, 5, 101)
    assert bool((kl_k3(torch.zeros(101), delta) >= 0).all())


def test_token_log_probs_pick_the_sampled_tokens() -> None:
    logits = torch.tensor(
        [[[0.0, math.log(3.0)], [math.log(3.0), 0.0]]]
    )  # p = (1/4, 3/4), (3/4, 1/4)
    close(token_log_probs(logits, torch.tensor([[1, 1]])), [[math.log(0.75), math.log(0.25)]])


def test_entropy_of_a_uniform_distribution_is_log_of_its_size() -> None:
    close(token_entropy(torch.zeros(2, 3, 8)), torch.full((2, 3), math.log(8)))


# -- reductions -------------------------------------------------------------------------------

VALUES = torch.tensor([[1.0, 3.0, 0.0], [4.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 0], [1, 0, 0]])
COUNTS = {"sequences": 2, "tokens": 3, "max_tokens": 3}


def test_grpo_averages_each_sequence_then_the_sequences() -> None:
    close(sequence_mean(VALUES, MASK, **COUNTS), (2.0 + 4.0) / 2)


def test_dapo_averages_over_every_token_of_the_batch() -> None:
    close(token_mean(VALUES, MASK, **COUNTS), (1.0 + 3.0 + 4.0) / 3)


def test_dr_grpo_divides_the_token_sum_by_sequences_times_max_tokens() -> None:
    close(constant_length_mean(VALUES, MASK, **COUNTS), 8.0 / (2 * 3))


def test_padding_never_counts() -> None:
    noisy = VALUES + (1 - MASK) * 100.0
    for reduce in LOSS_REDUCTIONS.values():
        close(reduce(noisy, MASK, **COUNTS), reduce(VALUES, MASK, **COUNTS))


@pytest.mark.parametrize("loss_type", sorted(LOSS_REDUCTIONS))
def test_micro_batch_parts_add_up_to_the_whole_batch(loss_type: str) -> None:
    reduce = LOSS_REDUCTIONS[loss_type]
    parts = reduce(VALUES[:1], MASK[:1], **COUNTS) + reduce(VALUES[1:], MASK[1:], **COUNTS)
    close(parts, reduce(VALUES, MASK, **COUNTS))
