"""PPO mechanics on hand-computed examples."""

import pytest
import torch

from constitutional.ppo import gae, kl_rewards, policy_loss, value_loss, whiten


def test_kl_penalty_on_every_token_and_score_on_the_last():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-1.0, -2.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = kl_rewards(torch.tensor([2.0, -1.0]), logp, ref, mask, kl_coef=0.1)
    assert kl.tolist() == [[0.5, -1.0, 0.0], [0.0, 1.0, 0.0]]  # padding carries no KL
    assert rewards[0].tolist() == pytest.approx([-0.05, 0.1, 2.0])
    assert rewards[1].tolist() == pytest.approx([0.0, -0.1 - 1.0, 0.0])  # score on the last real token


def test_gae_matches_a_hand_computation():
    # gamma = 1, lambda = 0.5, values 0.5, 1.0; reward 1 at the end.
    # delta_1 = 1 + 0 - 1.0 = 0        A_1 = 0
    # delta_0 = 0 + 1.0 - 0.5 = 0.5    A_0 = 0.5 + 0.5 * 0 = 0.5
    rewards = torch.tensor([[0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 1.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert adv[0].tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert ret[0].tolist() == pytest.approx([1.0, 1.0, 0.0])
    # gamma = 0.9, lambda = 1: advantages are discounted returns minus values.
    adv, _ = gae(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]), torch.ones(1, 2), gamma=0.9, lam=1.0)
    assert adv[0].tolist() == pytest.approx([1.0 + 0.9 * 2.0, 2.0])


def test_policy_loss_clips_the_ratio_in_the_direction_of_the_advantage():
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    adv = torch.tensor([[1.0, -1.0]])
    # ratio e^0.5 = 1.65 on a positive advantage: clipped to 1.2; on a negative one, not clipped.
    new = torch.tensor([[0.5, 0.5]])
    loss, clipfrac = policy_loss(new, old, adv, mask, clip=0.2)
    assert loss.item() == pytest.approx((-1.2 + torch.e**0.5) / 2, abs=1e-5)
    assert clipfrac.item() == 0.5
    # Inside the trust region nothing is clipped and the gradient is -A * ratio.
    new = torch.tensor([[0.05, -0.05]], requires_grad=True)
    loss, clipfrac = policy_loss(new, old, adv, mask, clip=0.2)
    loss.backward()
    assert clipfrac.item() == 0.0
    assert new.grad[0].tolist() == pytest.approx([-(torch.e**0.05) / 2, torch.e**-0.05 / 2], abs=1e-6)


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    old = torch.tensor([[0.0]])
    ret = torch.tensor([[1.0]])
    mask = torch.ones(1, 1)
    # value jumps to 0.9: the clipped value is 0.2, whose error (0.64) is larger: 0.5 * 0.64.
    assert value_loss(torch.tensor([[0.9]]), old, ret, mask, clip=0.2).item() == pytest.approx(0.32)
    assert value_loss(torch.tensor([[0.1]]), old, ret, mask, clip=0.2).item() == pytest.approx(0.405)


def test_whitening_ignores_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w = whiten(x, mask)
    assert w[0].tolist() == pytest.approx([-1.0, 1.0, 0.0], abs=1e-4)
