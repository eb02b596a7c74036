"""Tests for the persona-codebook initialisation (paper §3.3, Eq. 5–7)."""

import logging
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from morpheus_pl.modules.codebook_init import GMMResult, fit_diag_gmm, init_codebook


def _mixture(n_per: int = 600, d: int = 8, k: int = 5, seed: int = 0):
    """Equal-weight, well-separated diagonal mixture; returns x (float64), labels, true means."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g, dtype=torch.float64) * 6.0
    stds = 0.5 + torch.rand(k, d, generator=g, dtype=torch.float64)
    labels = torch.arange(k).repeat_interleave(n_per)
    x = means[labels] + stds[labels] * torch.randn(k * n_per, d, generator=g, dtype=torch.float64)
    return x, labels, means


def _log_gauss_ref(x: torch.Tensor, res: GMMResult) -> torch.Tensor:
    """Independent log N(x_i | mu_k, var_k), shape (n, N), via torch.distributions."""
    dist = torch.distributions.Normal(res.means, res.variances.sqrt())
    return dist.log_prob(x[:, None, :]).sum(-1)


def _match(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Permutation p such that a[p] is matched to b (Hungarian on squared distances)."""
    rows, cols = linear_sum_assignment(torch.cdist(b, a).square().numpy())
    return torch.as_tensor(cols[np.argsort(rows)])


def test_matches_sklearn_diag_gmm():
    x, labels, _ = _mixture()
    n_comp = 5
    # One random point from each true cluster: the same start for both implementations.
    g = torch.Generator().manual_seed(1)
    pick = torch.stack([torch.nonzero(labels == k).flatten()[torch.randint(600, (1,), generator=g)]
                        for k in range(n_comp)]).flatten()
    init = x[pick]
    ours = fit_diag_gmm(x, n_comp, init_means=init, max_iter=500, tol=1e-9)
    data_var = x.var(0, unbiased=False).numpy()
    sk = GaussianMixture(
        n_components=n_comp, covariance_type="diag", means_init=init.numpy(),
        weights_init=np.full(n_comp, 1.0 / n_comp),
        precisions_init=np.tile(1.0 / data_var, (n_comp, 1)),
        reg_covar=1e-12, tol=1e-9, max_iter=500,
    ).fit(x.numpy())
    assert ours.converged and sk.converged_
    assert ours.reseeded == 0
    assert abs(ours.log_likelihood - sk.score(x.numpy())) < 1e-5
    perm = _match(ours.means, torch.as_tensor(sk.means_))
    torch.testing.assert_close(ours.means[perm], torch.as_tensor(sk.means_), atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.variances[perm], torch.as_tensor(sk.covariances_),
                               atol=1e-3, rtol=1e-3)
    ours_labels = _log_gauss_ref(x, ours).argmax(1).numpy()
    ari_ours = adjusted_rand_score(labels.numpy(), ours_labels)
    ari_sk = adjusted_rand_score(labels.numpy(), sk.predict(x.numpy()))
    assert ari_ours >= ari_sk - 0.01


def test_log_likelihood_is_uniform_prior_mean():
    x, _, _ = _mixture(n_per=100, d=3, k=3, seed=4)
    res = fit_diag_gmm(x, 3, generator=torch.Generator().manual_seed(0), max_iter=5)
    expected = (torch.logsumexp(_log_gauss_ref(x, res), 1) - math.log(3)).mean()
    assert res.log_likelihood == pytest.approx(float(expected), abs=1e-9)


def test_kmeanspp_default_init_recovers_true_means_deterministically():
    x, _, true_means = _mixture(n_per=200, seed=2)
    a = fit_diag_gmm(x.float(), 5, generator=torch.Generator().manual_seed(3))
    b = fit_diag_gmm(x.float(), 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.means, b.means) and a.n_iter == b.n_iter
    assert a.means.dtype == torch.float32
    perm = _match(a.means.double(), true_means)
    assert (a.means.double()[perm] - true_means).norm(dim=1).max() < 0.5


def test_one_em_step_by_hand():
    # x = [-2, -1, 1, 2]: mean 0, variance (4+1+1+4)/4 = 2.5 -> both initial variances 2.5.
    # Means start at -1 and +1. E-step (Eq. 5, uniform prior cancels):
    #   r0(x) = exp(-(x+1)^2/5) / (exp(-(x+1)^2/5) + exp(-(x-1)^2/5)) = sigmoid(-4x/5), so
    #   r0(-2) = sigmoid(8/5) = 0.832018,  r0(-1) = sigmoid(4/5) = 0.689974,
    #   r0(1) = 1 - 0.689974 = 0.310026,   r0(2) = 1 - 0.832018 = 0.167982.
    # M-step: N0 = sum r0 = 2 exactly (symmetry).
    #   mu0 (Eq. 6) = (-2*0.832018 - 0.689974 + 0.310026 + 2*0.167982) / 2 = -0.854011
    #   squared deviations from mu0: 1.313290, 0.021313, 3.437358, 8.145380
    #   var0 (Eq. 7) = (0.832018*1.313290 + 0.689974*0.021313 + 0.310026*3.437358
    #                   + 0.167982*8.145380) / 2
    #                = (1.092681 + 0.014705 + 1.065670 + 1.368277) / 2 = 1.770665
    # Component 1 is the mirror image: mu1 = +0.854011, var1 = 1.770665.
    # Initial log-likelihood: log(0.5 N(x|-1,2.5) + 0.5 N(x|1,2.5)), sqrt(2*pi*2.5) = 3.963327:
    #   x=+-2: log(0.5 (e^-0.2 + e^-1.8) / 3.963327) = log(0.124137) = -2.086320
    #   x=+-1: log(0.5 (1 + e^-0.8) / 3.963327)      = log(0.182843) = -1.699155
    #   mean = -1.892737
    x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]], dtype=torch.float64)
    init = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    start = fit_diag_gmm(x, 2, init_means=init, max_iter=0)
    assert start.log_likelihood == pytest.approx(-1.892737, abs=1e-5)
    torch.testing.assert_close(start.variances, torch.full((2, 1), 2.5, dtype=torch.float64))
    step = fit_diag_gmm(x, 2, init_means=init, max_iter=1)
    assert step.n_iter == 1
    torch.testing.assert_close(step.means, torch.tensor([[-0.854011], [0.854011]],
                                                        dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(step.variances, torch.full((2, 1), 1.770665, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    assert step.log_likelihood > start.log_likelihood  # EM never decreases the likelihood


def test_far_component_is_reseeded():
    x, _, true_means = _mixture(n_per=200, d=4, k=3, seed=5)
    init = true_means.clone()
    init[2] = 1e3  # far from every point: its responsibilities underflow to 0
    res = fit_diag_gmm(x, 3, init_means=init, max_iter=200)
    assert res.reseeded >= 1
    assert torch.isfinite(res.means).all() and torch.isfinite(res.variances).all()
    assert math.isfinite(res.log_likelihood)
    counts = torch.softmax(_log_gauss_ref(x, res), 1).sum(0)
    assert counts.min() > 1e-3 * x.shape[0] / 3
    assert (res.means.abs().max(1).values < 100).all()  # no component left out at 1e3


def test_all_identical_inputs(caplog):
    point = torch.tensor([1.5, -2.0, 3.0])
    x = point.repeat(50, 1)
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        res = fit_diag_gmm(x, 4, generator=torch.Generator().manual_seed(0))
    assert "distinct" in caplog.text
    assert torch.isfinite(res.variances).all() and (res.variances > 0).all()
    torch.testing.assert_close(res.means, point.repeat(4, 1))
    assert math.isfinite(res.log_likelihood)


def test_more_components_than_distinct_points(caplog):
    x = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]]).repeat(10, 1)
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        res = fit_diag_gmm(x, 6, generator=torch.Generator().manual_seed(0))
    assert "only 3 distinct" in caplog.text
    assert torch.isfinite(res.means).all() and torch.isfinite(res.variances).all()
    assert math.isfinite(res.log_likelihood)
    # Every mean sits on one of the three points, and every point is covered.
    d = torch.cdist(res.means, x[:3])
    assert d.min(1).values.max() < 1e-3 and d.min(0).values.max() < 1e-3


def test_half_precision_input_is_upcast():
    x, _, _ = _mixture(n_per=100, d=4, k=2, seed=6)
    for dtype in (torch.float16, torch.bfloat16):
        res = fit_diag_gmm(x.to(dtype), 2, generator=torch.Generator().manual_seed(0))
        assert res.means.dtype == torch.float32 and torch.isfinite(res.means).all()
        assert init_codebook(x.to(dtype), 2, "em", generator=torch.Generator()).dtype == dtype


def test_float64_and_device_preserved():
    x, _, _ = _mixture(n_per=50, d=4, k=2, seed=7)
    res = fit_diag_gmm(x, 2, generator=torch.Generator().manual_seed(0))
    assert res.means.dtype == torch.float64 and res.means.device == x.device
    assert res.variances.device == x.device
    for method in ("em", "mean", "sequential", "random"):
        codes = init_codebook(x, 3, method, generator=torch.Generator().manual_seed(0))
        assert codes.dtype == torch.float64 and codes.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_input_with_cpu_generator():
    x, _, _ = _mixture(n_per=200, d=4, k=3, seed=8)
    x = x.float().cuda()
    res = fit_diag_gmm(x, 3, generator=torch.Generator().manual_seed(0))
    cpu = fit_diag_gmm(x.cpu(), 3, generator=torch.Generator().manual_seed(0))
    assert res.means.is_cuda and res.variances.is_cuda
    torch.testing.assert_close(res.means.cpu(), cpu.means, atol=1e-3, rtol=0)
    for method in ("em", "mean", "sequential", "random"):
        codes = init_codebook(x, 5, method, generator=torch.Generator().manual_seed(0))
        assert codes.is_cuda and codes.dtype == torch.float32 and torch.isfinite(codes).all()


def test_bad_init_means_shape():
    with pytest.raises(ValueError, match="init_means"):
        fit_diag_gmm(torch.randn(10, 3), 2, init_means=torch.zeros(3, 3))


@pytest.mark.parametrize("method", ["em", "mean", "sequential", "random"])
def test_init_methods_shape_dtype_determinism(method):
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    a = init_codebook(x, 10, method, generator=torch.Generator().manual_seed(1))
    b = init_codebook(x, 10, method, generator=torch.Generator().manual_seed(1))
    c = init_codebook(x, 10, method, generator=torch.Generator().manual_seed(2))
    assert a.shape == (10, 6) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_random_init_range():
    codes = init_codebook(torch.zeros(4, 64), 20, "random", generator=torch.Generator())
    assert codes.abs().max() <= 1 / 20
    assert codes.abs().max() > 0.8 / 20  # actually spread over the interval, not all ~0


def test_sequential_init_takes_real_vectors():
    x = torch.arange(30, dtype=torch.float32).reshape(10, 3)
    codes = init_codebook(x, 4, "sequential", generator=torch.Generator().manual_seed(0))
    rows = codes[:, 0] / 3
    assert torch.equal(codes, x[rows.long()]) and rows.unique().numel() == 4
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(codes, x[perm[:4]])


def test_sequential_with_too_few_vectors_cycles_with_noise(caplog):
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        codes = init_codebook(x, 5, "sequential", generator=torch.Generator().manual_seed(0))
    assert "cycling" in caplog.text
    assert codes.unique(dim=0).shape[0] == 5
    assert torch.cdist(codes, x).min(1).values.max() < 0.05


def test_mean_init_codes_are_chunk_means():
    # Powers of two: 2 * code = sum of its chunk of 2 values, and the binary digits of that sum
    # name the chunk, so every code must be the mean of 2 distinct inputs and the 3 chunks must
    # partition the 6 inputs, whatever the random order.
    x = torch.tensor([[1.0], [2.0], [4.0], [8.0], [16.0], [32.0]])
    codes = init_codebook(x, 3, "mean", generator=torch.Generator().manual_seed(0))
    sums = (codes.flatten() * 2).long().tolist()
    assert all(bin(s).count("1") == 2 for s in sums)
    assert sum(sums) == 63 and len({s for s in sums}) == 3
    # Reproduced by hand: the random order, then consecutive chunks of 2.
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    assert codes[0, 0] == (x[perm[0], 0] + x[perm[1], 0]) / 2
    assert codes[2, 0] == (x[perm[4], 0] + x[perm[5], 0]) / 2


def test_mean_init_uneven_chunks():
    x = torch.randn(103, 5, generator=torch.Generator().manual_seed(0))
    codes = init_codebook(x, 10, "mean", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(codes.mean(0), x.mean(0), atol=0.05, rtol=0)  # chunks ~equal
    assert codes.shape == (10, 5)


def test_unknown_method_names_allowed_ones():
    with pytest.raises(ValueError, match=r"kmeans.*em, mean, sequential, random"):
        init_codebook(torch.randn(5, 2), 3, "kmeans")


def test_sparse_m_step_equals_dense(monkeypatch) -> None:
    """Well-separated clusters in high dimension: responsibilities are exactly 0 but one per
    sample, the M-step takes the sparse path, and the fit equals the dense one."""
    import morpheus_pl.modules.codebook_init as ci

    g = torch.Generator().manual_seed(0)
    centres = 10 * torch.randn(20, 64, generator=g)
    truth = torch.randint(20, (600,), generator=g)
    x = centres[truth] + torch.randn(600, 64, generator=g)
    init = ci.kmeans_pp_seeds(x, 20, torch.Generator().manual_seed(1))
    calls = []
    original = torch.sparse.mm
    monkeypatch.setattr(torch.sparse, "mm", lambda a, b: calls.append(1) or original(a, b))
    sparse = ci.fit_diag_gmm(x, 20, init_means=init)
    assert calls, "the sparse M-step was not taken"
    monkeypatch.setattr(ci, "_SPARSE_PER_SAMPLE", -1.0)
    dense = ci.fit_diag_gmm(x, 20, init_means=init)
    assert torch.allclose(sparse.means, dense.means, atol=1e-5)
    assert torch.allclose(sparse.variances, dense.variances, rtol=1e-3)  # float32 sum order
    assert torch.equal(sparse.labels, dense.labels)
    assert sparse.counts.sum().item() == pytest.approx(600.0)
