"""Persona codebook: Eq. 8 lookup, Eq. 9 VQ loss stop-gradients, straight-through routing, Eq. 14."""

import math

import pytest
import torch
import torch.nn.functional as F

from morpheus_pl.modules.persona_codebook import (
    PersonaCodebook,
    contrastive_loss,
    straight_through,
    vq_loss,
)


def _codebook(n: int = 7, d: int = 6, seed: int = 0) -> PersonaCodebook:
    torch.manual_seed(seed)
    cb = PersonaCodebook(n, d)
    cb.load_codes(torch.randn(n, d))
    return cb


def test_nearest_equals_cdist_argmin():
    cb = _codebook(11, 5)
    p = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(1))
    k = cb.nearest(p)
    assert k.shape == (4, 3)
    expected = torch.cdist(p.reshape(-1, 5), cb.codes.detach()).argmin(-1).view(4, 3)
    assert torch.equal(k, expected)


def test_nearest_of_a_code_is_itself():
    cb = _codebook(9, 4)
    assert torch.equal(cb.nearest(cb.codes.detach()[None]), torch.arange(9)[None])


def test_lookup_returns_rows():
    cb = _codebook(5, 3)
    k = torch.tensor([[4, 0], [2, 2]])
    assert torch.equal(cb.lookup(k), cb.codes.detach()[k])


def _vq_grads(beta_terms):
    """Gradients of p and codes for a loss built from vq_loss calls (same p, codes each time)."""
    cb = _codebook(6, 4)
    p = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(2), requires_grad=True)
    k = cb.nearest(p)
    e_k = cb.lookup(k)
    loss = beta_terms(p, e_k)
    loss.backward()
    p_grad = torch.zeros_like(p) if p.grad is None else p.grad
    code_grad = torch.zeros_like(cb.codes) if cb.codes.grad is None else cb.codes.grad
    return p_grad, code_grad, k


def test_vq_first_term_moves_codes_not_encoder():
    p_grad, code_grad, k = _vq_grads(lambda p, e: vq_loss(p, e, beta=0.0))
    assert torch.count_nonzero(p_grad) == 0
    used = torch.unique(k)
    assert code_grad[used].abs().sum(-1).gt(0).all()
    unused = [i for i in range(6) if i not in used.tolist()]
    assert code_grad[unused].abs().sum() == 0


def test_vq_second_term_moves_encoder_not_codes_and_scales_with_beta():
    def second(beta):
        return lambda p, e: vq_loss(p, e, beta=beta) - vq_loss(p, e, beta=0.0)

    p_grad_05, code_grad_05, _ = _vq_grads(second(0.05))
    p_grad_10, code_grad_10, _ = _vq_grads(second(0.1))
    assert torch.count_nonzero(code_grad_05) == 0
    assert torch.count_nonzero(code_grad_10) == 0
    assert p_grad_05.abs().sum() > 0
    assert torch.allclose(p_grad_10, 2 * p_grad_05, rtol=1e-5, atol=1e-8)


def test_vq_loss_value():
    p = torch.tensor([[1.0, 2.0]])
    e = torch.tensor([[0.0, 0.0]])
    # mse = (1 + 4) / 2 = 2.5, both terms
    assert math.isclose(float(vq_loss(p, e, beta=0.5)), 2.5 * 1.5, rel_tol=1e-6)


def _st_setup():
    cb = _codebook(5, 4)
    p = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(3), requires_grad=True)
    e_k = cb.lookup(cb.nearest(p))
    weight = torch.randn(4, generator=torch.Generator().manual_seed(4))
    return cb, p, e_k, weight


def test_straight_through_paper_value_p_gradient_to_codes():
    cb, p, e_k, weight = _st_setup()
    z = straight_through(p, e_k, "paper")
    assert torch.allclose(z, p, atol=1e-6)
    assert not torch.allclose(z, e_k, atol=1e-3)
    (z * weight).sum().backward()
    assert p.grad is None or torch.count_nonzero(p.grad) == 0
    assert cb.codes.grad is not None and cb.codes.grad.abs().sum() > 0


def test_straight_through_vqvae_value_code_gradient_to_encoder():
    cb, p, e_k, weight = _st_setup()
    z = straight_through(p, e_k, "vqvae")
    assert torch.allclose(z, e_k, atol=1e-6)
    assert not torch.allclose(z, p, atol=1e-3)
    (z * weight).sum().backward()
    assert p.grad is not None and torch.allclose(p.grad, weight.expand_as(p))
    assert cb.codes.grad is None or torch.count_nonzero(cb.codes.grad) == 0


def test_straight_through_bad_mode():
    with pytest.raises(ValueError, match="straight_through"):
        straight_through(torch.zeros(1, 2), torch.zeros(1, 2), "official")


def test_contrastive_loss_matches_hand_computation():
    g = torch.Generator().manual_seed(5)
    p = torch.randn(2, 3, 4, generator=g)
    codes = torch.randn(6, 4, generator=g)
    k = torch.tensor([[0, 5, 2], [2, 1, 1]])
    tau = 0.5
    total = 0.0
    for vec, target in zip(p.reshape(-1, 4), k.reshape(-1)):
        cos = torch.stack([F.cosine_similarity(vec, c, dim=0) for c in codes]) / tau
        total += float(-(cos[target] - torch.logsumexp(cos, 0)))
    expected = total / 6
    assert math.isclose(float(contrastive_loss(p, codes, k, tau)), expected, rel_tol=1e-5)


def test_contrastive_sampled_negatives_exclude_batch_codes():
    """Unused codes all have cosine 0 with every p; a chosen code used as a negative would not."""
    codes = torch.tensor([
        [1.0, 0.0, 0.0],
        [0.6, 0.8, 0.0],   # chosen: cos 0.6 with p0
        [0.0, 0.0, 1.0],   # unused codes: cos 0 with both p
        [0.0, 0.0, 2.0],
        [0.0, 0.0, 0.5],
        [0.0, 0.0, 3.0],
    ])
    p = torch.tensor([[[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]]])
    k = torch.tensor([[0, 1]])
    tau, n_neg = 0.5, 20
    # every row: positive cos 1, n_neg negatives at cos 0
    expected = -(1 / tau) + math.log(math.exp(1 / tau) + n_neg)
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        loss = contrastive_loss(p, codes, k, tau, num_negatives=n_neg, generator=gen)
        assert math.isclose(float(loss), expected, rel_tol=1e-5), seed
    # the full-N form does see the other chosen code (cos 0.6): a different value
    assert not math.isclose(float(contrastive_loss(p, codes, k, tau)), expected, rel_tol=1e-3)


def test_load_codes_shape_error():
    cb = PersonaCodebook(4, 3)
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        cb.load_codes(torch.zeros(5, 3))
    assert not bool(cb.initialised)


def test_initialised_survives_state_dict_round_trip():
    cb = PersonaCodebook(4, 3)
    assert not bool(cb.initialised)
    codes = torch.arange(12.0).view(4, 3)
    cb.load_codes(codes)
    assert bool(cb.initialised)
    fresh = PersonaCodebook(4, 3)
    assert not bool(fresh.initialised)
    fresh.load_state_dict(cb.state_dict())
    assert bool(fresh.initialised)
    assert torch.equal(fresh.codes.detach(), codes)


def test_bad_num_codes():
    with pytest.raises(ValueError, match="N"):
        PersonaCodebook(0, 3)


def test_dead_codes_are_reseeded_onto_persona_vectors_and_live_ones_kept() -> None:
    book = PersonaCodebook(4, 3)
    before = book.codes.detach().clone()
    p = torch.randn(2, 5, 3)
    k = torch.zeros(2, 5, dtype=torch.long)  # every vector chose code 0
    total = 0
    for _ in range(30):
        total += book.reseed_dead_codes(p, k, decay=0.5, threshold=0.01)
    assert total >= 3
    assert torch.equal(book.codes[0], before[0])
    flat = p.reshape(-1, 3)
    for code in book.codes[1:].detach():
        assert (flat == code).all(-1).any(), "a re-seeded code must equal one of the batch's vectors"
    assert book.reseed_dead_codes(p, k, decay=0.5, threshold=0.0) == 0


def test_assignment_perplexity_hand_worked() -> None:
    import math

    from morpheus_pl.stages.joint import assignment_perplexity

    assert assignment_perplexity(torch.tensor([[3, 3], [3, 3]]), 8) == pytest.approx(1.0)
    assert assignment_perplexity(torch.tensor([0, 1, 2, 3]), 8) == pytest.approx(4.0)
    # shares 1/2, 1/4, 1/4: entropy 1.5 ln 2, perplexity 2^1.5
    assert assignment_perplexity(torch.tensor([5, 5, 1, 2]), 8) == pytest.approx(2 ** 1.5)
    assert math.isfinite(assignment_perplexity(torch.tensor([7]), 8))
