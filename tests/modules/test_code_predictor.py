"""Code-index prediction (Eq. 12-13) and the decoding of codes per persona slot."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from morpheus_pl.modules.code_predictor import (
    CodePredictor,
    code_loss,
    covering_codes,
    decode_codes,
    expected_code_vectors,
    set_recall,
)


def test_predictor_shapes_and_slots_differ():
    torch.manual_seed(0)
    pred = CodePredictor(dim=16, num_codes=9, num_slots=5)
    logits = pred(torch.randn(3, 16))
    assert logits.shape == (3, 5, 9)
    # the learned slot embedding makes the slots' distributions differ
    assert not torch.allclose(logits[:, 0], logits[:, 1])


def _logits_and_targets():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 4, 7, generator=g), torch.randint(7, (3, 4), generator=g)


def test_code_loss_ce_equals_cross_entropy():
    logits, k = _logits_and_targets()
    expected = F.cross_entropy(logits.reshape(-1, 7), k.reshape(-1))
    assert torch.allclose(code_loss(logits, k, "ce"), expected, atol=1e-6)


def test_focal_gamma_zero_is_ce_and_gamma_two_is_smaller():
    logits, k = _logits_and_targets()
    ce = code_loss(logits, k, "ce")
    assert torch.allclose(code_loss(logits, k, "focal", gamma=0.0), ce, atol=1e-6)
    focal = code_loss(logits, k, "focal", gamma=2.0)
    assert 0 < float(focal) < float(ce)


def test_focal_hand_value():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # p(target=1) = 3/4
    k = torch.tensor([[1]])
    expected = -((1 - 0.75) ** 2) * math.log(0.75)
    assert math.isclose(float(code_loss(logits, k, "focal", gamma=2.0)), expected, rel_tol=1e-5)


def test_code_loss_unknown_kind():
    logits, k = _logits_and_targets()
    with pytest.raises(ValueError, match="focal"):
        code_loss(logits, k, "hinge")


def test_decode_argmax_per_slot():
    logits, _ = _logits_and_targets()
    assert torch.equal(decode_codes(logits, "argmax"), logits.argmax(-1))


def _repeating_logits():
    """Code 0 is the argmax of every slot; code 3 is second everywhere, code 1 third on average."""
    return torch.tensor([[
        [10.0, 6.0, 0.0, 8.0, 0.0],
        [10.0, 0.0, 0.0, 8.0, 6.0],
        [10.0, 6.0, 0.0, 8.0, 0.0],
    ]])


def test_top_m_distinct_avoids_the_repeated_argmax():
    logits = _repeating_logits()
    assert decode_codes(logits, "argmax").tolist() == [[0, 0, 0]]
    codes = decode_codes(logits, "top_m_distinct")
    assert codes.shape == (1, 3)
    assert codes[0].tolist() == [0, 3, 1]  # most probable first, all distinct


def test_top_m_distinct_is_top_m_of_slot_average_per_example():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 3, 6, generator=g) * 3
    codes = decode_codes(logits, "top_m_distinct")
    for b in range(4):
        avg = logits[b].softmax(-1).mean(0)
        chosen = set(codes[b].tolist())
        assert len(chosen) == 3
        worst_chosen = min(float(avg[c]) for c in chosen)
        best_other = max(float(avg[c]) for c in range(6) if c not in chosen)
        assert worst_chosen >= best_other


def test_sample_reproducible_with_seeded_generator():
    logits = torch.zeros(8, 5, 50)  # uniform: draws depend on the generator only
    a = decode_codes(logits, "sample", torch.Generator().manual_seed(7))
    b = decode_codes(logits, "sample", torch.Generator().manual_seed(7))
    c = decode_codes(logits, "sample", torch.Generator().manual_seed(8))
    assert a.shape == (8, 5)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sample_follows_a_peaked_distribution():
    logits = torch.full((2, 3, 4), -50.0)
    logits[..., 2] = 50.0
    assert decode_codes(logits, "sample", torch.Generator().manual_seed(0)).eq(2).all()


def test_decode_errors():
    with pytest.raises(ValueError, match="decode"):
        decode_codes(torch.zeros(1, 2, 3), "beam")
    with pytest.raises(ValueError, match="N >= M"):
        decode_codes(torch.zeros(1, 5, 3), "top_m_distinct")


def test_set_recall_counts_distinct_true_codes_found_in_any_slot() -> None:
    true = torch.tensor([[1, 2, 3, 1, 2], [4, 4, 4, 4, 4]])
    picked = torch.tensor([[3, 2, 9, 8, 7], [0, 1, 2, 3, 5]])
    # row 0: distinct true {1, 2, 3}, picked has 2 and 3 -> 2/3; row 1: {4} not picked -> 0
    assert torch.allclose(set_recall(picked, true), torch.tensor([2 / 3, 0.0]))


def test_distinct_argmax_is_the_best_assignment_of_distinct_codes_to_slots():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 3, 5, generator=g) * 3
    codes = decode_codes(logits, "distinct_argmax")
    log_probs = logits.log_softmax(-1)
    for b in range(4):
        assert len(set(codes[b].tolist())) == 3
        best = max(itertools.permutations(range(5), 3),
                   key=lambda picks: sum(float(log_probs[b, i, c]) for i, c in enumerate(picks)))
        assert codes[b].tolist() == list(best)


def test_distinct_argmax_is_argmax_when_that_repeats_no_code_and_avoids_the_repeat():
    logits = torch.tensor([[[10.0, 9.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]]])
    assert decode_codes(logits, "argmax").tolist() == [[0, 0, 2]]
    # slot 1 has no second choice, so slot 0 gives code 0 up for its runner-up
    assert decode_codes(logits, "distinct_argmax").tolist() == [[1, 0, 2]]
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 6, generator=g)
    logits[:, [0, 1, 2], [0, 1, 2]] += 20.0
    assert torch.equal(decode_codes(logits, "distinct_argmax"), logits.argmax(-1))


def test_expected_reports_the_per_slot_argmax():
    logits, _ = _logits_and_targets()
    assert torch.equal(decode_codes(logits, "expected"), logits.argmax(-1))


def test_expected_code_vectors_hand_value_one_hot_and_top_k():
    g = torch.Generator().manual_seed(5)
    logits, codes = torch.randn(2, 3, 6, generator=g), torch.randn(6, 4, generator=g)
    expected = torch.einsum("bmn,nd->bmd", logits.softmax(-1), codes)
    assert torch.allclose(expected_code_vectors(logits, codes), expected, atol=1e-6)
    hard = F.embedding(logits.argmax(-1), codes)
    assert torch.equal(expected_code_vectors(logits, codes, top_k=1), hard)
    one_hot = torch.full_like(logits, -1e9).scatter(-1, logits.argmax(-1, keepdim=True), 0.0)
    assert torch.equal(expected_code_vectors(one_hot, codes), hard)
    # top 2: the two most probable codes of each slot, renormalised
    top2 = logits.topk(2, -1)
    weights = top2.values.softmax(-1)
    by_hand = (weights[..., None] * codes[top2.indices]).sum(-2)
    assert torch.allclose(expected_code_vectors(logits, codes, top_k=2), by_hand, atol=1e-6)
    assert torch.allclose(expected_code_vectors(logits, codes, top_k=6), expected, atol=1e-6)


@pytest.mark.parametrize("top_k", [0, 7, 2.5])
def test_expected_top_k_out_of_range(top_k):
    with pytest.raises(ValueError, match=r"predictor\.expected_top_k"):
        expected_code_vectors(torch.zeros(1, 2, 6), torch.zeros(6, 4), top_k=top_k)


def test_unknown_decode_names_the_key_and_every_choice():
    with pytest.raises(ValueError, match=r"predictor\.decode must be one of .*'distinct_argmax', "
                                         r"'expected'"):
        decode_codes(torch.zeros(1, 2, 3), "beam")
    with pytest.raises(ValueError, match="distinct_argmax needs N >= M"):
        decode_codes(torch.zeros(1, 5, 3), "distinct_argmax")


def test_covering_hand_worked_skips_a_duplicate_code_and_discounts_a_near_one():
    """e0 = e1 (one sentence twice), e2 orthogonal, e3 between (cos 0.6 to e0, 0.8 to e2);
    p = 0.4, 0.35, 0.15, 0.1. top_m_distinct picks 0 and its duplicate 1; covering picks 0,
    which covers all of 1's mass and 0.6 of 3's (left: 0, 0, 0.15, 0.04), then 2, then 3."""
    codebook = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    probs = torch.tensor([[0.4, 0.35, 0.15, 0.1]])
    logits = probs.log()[:, None, :].expand(1, 2, 4)
    assert decode_codes(logits, "top_m_distinct").tolist() == [[0, 1]]
    assert decode_codes(logits, "covering", codebook=codebook).tolist() == [[0, 2]]
    assert covering_codes(probs, codebook, 3).tolist() == [[0, 2, 3]]
    assert covering_codes(probs, codebook, 4).tolist() == [[0, 2, 3, 1]]  # distinct to the end


def test_covering_with_orthogonal_codes_is_top_m_distinct():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, 8)
    assert torch.equal(decode_codes(logits, "covering", codebook=torch.eye(8) * 3.0),
                       decode_codes(logits, "top_m_distinct"))


def test_covering_needs_the_codebook():
    with pytest.raises(ValueError, match="covering needs the codebook"):
        decode_codes(torch.zeros(1, 2, 3), "covering")
