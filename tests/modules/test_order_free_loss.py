"""The order-free code losses: `predictor.loss=set` (Hungarian) and `predictor.loss=bag`."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from morpheus_pl.modules.code_predictor import code_loss
from morpheus_pl.modules.order_free_loss import bag_loss, matched_targets, set_loss


def _brute_force_set_loss(logits, k):
    """Batch mean of min over permutations π of (1/M) Σ_i -log p_i(k_π(i))."""
    log_probs = F.log_softmax(logits, -1)
    m = k.shape[1]
    best = []
    for b in range(k.shape[0]):
        costs = [-sum(float(log_probs[b, i, k[b, perm[i]]]) for i in range(m)) / m
                 for perm in itertools.permutations(range(m))]
        best.append(min(costs))
    return sum(best) / len(best)


@pytest.mark.parametrize("m", [3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_set_loss_is_the_minimum_over_all_permutations(m, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, m, 7, generator=g) * 3
    k = torch.randint(7, (6, m), generator=g)
    k[0, 1] = k[0, 0]  # a repeated code: a multiset, still matched one to one
    assert float(set_loss(logits, k)) == pytest.approx(_brute_force_set_loss(logits, k), abs=1e-5)
    assert float(code_loss(logits, k, "set")) == float(set_loss(logits, k))


def test_set_loss_ignores_the_order_of_the_true_codes_and_never_exceeds_ce():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 4, 9, generator=g)
    k = torch.randint(9, (5, 4), generator=g)
    shuffled = k[:, torch.randperm(4, generator=g)]
    assert float(set_loss(logits, shuffled)) == pytest.approx(float(set_loss(logits, k)), abs=1e-6)
    assert float(set_loss(logits, k)) <= float(code_loss(logits, k, "ce")) + 1e-6


def test_matched_targets_are_a_permutation_and_pass_no_gradient():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 4, 6, generator=g, requires_grad=True)
    k = torch.randint(6, (3, 4), generator=g)
    target = matched_targets(F.log_softmax(logits, -1), k)
    assert not target.requires_grad
    assert torch.equal(target.sort(-1).values, k.sort(-1).values)
    set_loss(logits, k).backward()  # the cross-entropy after matching reaches the logits
    assert logits.grad.abs().sum() > 0


def test_a_slot_order_that_already_fits_is_kept():
    logits = torch.full((1, 3, 5), -10.0)
    logits[0, 0, 4], logits[0, 1, 2], logits[0, 2, 0] = 10.0, 10.0, 10.0
    k = torch.tensor([[0, 4, 2]])
    assert matched_targets(F.log_softmax(logits, -1), k).tolist() == [[4, 2, 0]]
    assert float(set_loss(logits, k)) < 1e-6 < float(code_loss(logits, k, "ce"))


def test_bag_loss_hand_value():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 4, generator=g)
    k = torch.tensor([[0, 0, 3], [1, 2, 3]])
    q = logits.softmax(-1).mean(1)
    expected = -sum(math.log(float(q[b, k[b, j]])) for b in range(2) for j in range(3)) / 6
    assert float(bag_loss(logits, k)) == pytest.approx(expected, abs=1e-6)
    assert float(code_loss(logits, k, "bag")) == float(bag_loss(logits, k))


def test_bag_loss_ignores_both_orders_and_is_least_when_the_bag_matches_the_codes():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(4, 3, 5, generator=g)
    k = torch.randint(5, (4, 3), generator=g)
    base = float(bag_loss(logits, k))
    assert float(bag_loss(logits[:, [2, 0, 1]], k)) == pytest.approx(base, abs=1e-6)
    assert float(bag_loss(logits, k[:, [1, 2, 0]])) == pytest.approx(base, abs=1e-6)
    # slots that specialise, one true code each, reach the multiset's entropy (the minimum)
    k = torch.tensor([[0, 0, 3]])
    exact = torch.full((1, 3, 5), -1e4)
    exact[0, 0, 0], exact[0, 1, 0], exact[0, 2, 3] = 0.0, 0.0, 0.0
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert float(bag_loss(exact, k)) == pytest.approx(entropy, abs=1e-5)
    assert float(bag_loss(torch.randn(1, 3, 5, generator=g), k)) > entropy


def test_unknown_loss_names_the_key_and_choices():
    with pytest.raises(ValueError, match=r"predictor\.loss must be one of .*'set', 'bag'"):
        code_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), "hinge")
