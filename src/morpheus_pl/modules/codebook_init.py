"""Persona-codebook initialisation (paper §3.3, Eq. 5–7; Table 4).

The paper's best initialisation fits a mixture of N diagonal Gaussians to all encoded persona
segments ``p_i`` by EM and uses the means as the codes ``e_k``. Its prior over components is
*uniform* (Eq. 5: ``P(z_i = k) = 1/N``), so no mixing weights are learned; only means (Eq. 6) and
variances (Eq. 7) are updated.

EM is written by hand here: no maintained torch library fits diagonal GMMs by EM on the GPU with
these semantics (fixed uniform prior, variance floor, re-seeding of empty components), and
``sklearn.mixture.GaussianMixture`` is CPU/numpy only and always learns the weights (the tests use
it as an oracle). Under DDP, gather the vectors on every rank and call :func:`fit_diag_gmm` with
identically seeded generators: the fit is deterministic, so every rank gets the same codebook.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from morpheus_pl.errors import ConfigError

logger = logging.getLogger("morpheus_pl")

INIT_METHODS = ("em", "mean", "sequential", "random")
_MIN_SHARE = 1e-3  # a component is empty when its effective count < _MIN_SHARE * n / N
_SPARSE_PER_SAMPLE = 8.0  # M-step by sparse products when at most this many responsibilities
_SPARSE_MIN_COMPONENTS = 16  # per sample on average are != 0 and there are this many components


@dataclass
class GMMResult:
    """Result of :func:`fit_diag_gmm`; tensors in the computation dtype, on the input's device."""

    means: Tensor
    variances: Tensor
    log_likelihood: float
    n_iter: int
    converged: bool
    reseeded: int
    labels: Tensor  # (n,) most responsible component of each sample after the last E-step
    counts: Tensor  # (N,) effective number of samples per component after the last E-step


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _rng_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _log_gauss(xx2: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    """``log N(x_i | mu_k, diag(var_k))`` for all pairs, shape (n, N), from ``xx2 = [x | x^2]``
    (n, 2d): the Mahalanobis terms ``-2 x.(mu/var) + x^2.(1/var) + mu^2.(1/var)`` are one matmul
    that adds onto the constant, and the rest is done in place."""
    prec = variances.reciprocal()
    weights = torch.cat([-2.0 * means * prec, prec], 1)  # (N, 2d)
    mahal = torch.addmm((means.square() * prec).sum(1), xx2, weights.T)
    log_det = torch.log(2.0 * math.pi * variances).sum(1)
    return mahal.clamp_min_(0.0).add_(log_det).mul_(-0.5)


def _kmeans_pp(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """k-means++ seeding: each next seed drawn with probability ∝ squared distance to seeds."""
    rng = _rng_device(generator)
    first = torch.randint(x.shape[0], (1,), generator=generator, device=rng).to(x.device)
    seeds = [x[first[0]]]
    d2 = (x - seeds[0]).square().sum(1)
    for _ in range(1, k):
        total = d2.sum()
        weights = torch.where(total > 0, d2, torch.ones_like(d2))  # only duplicates left: uniform
        idx = torch.multinomial(weights.to(rng), 1, generator=generator).to(x.device)
        seeds.append(x[idx[0]])
        d2 = torch.minimum(d2, (x - seeds[-1]).square().sum(1))
    return torch.stack(seeds)


def kmeans_pp_seeds(x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """k-means++ seeds (k, d) of the rows of `x`: the initial means `fit_diag_gmm` draws."""
    center = x.mean(0)
    return _kmeans_pp(x - center, k, generator) + center


def _count_distinct(x: Tensor, at_least: int) -> int:
    """Number of distinct rows (exact when below ``at_least``; a lower bound otherwise)."""
    proj = x @ torch.linspace(1.0, 2.0, x.shape[1], dtype=x.dtype, device=x.device)
    n_proj = int(torch.unique(proj).numel())  # distinct projections imply distinct rows
    return n_proj if n_proj >= at_least else int(torch.unique(x, dim=0).shape[0])


def fit_diag_gmm(
    x: Tensor,
    num_components: int,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    var_floor: float = 1e-6,
    init_means: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> GMMResult:
    """Fit N diagonal Gaussians with a uniform prior by EM (Eq. 5–7).

    E-step (Eq. 5): log-space responsibilities ``log N(x|mu_k,var_k) - logsumexp_j(...)``; the
    uniform prior cancels. M-step: Eq. 6 (means) and Eq. 7 (variances), clamped from below at
    ``var_floor * mean_j Var(x_j)`` (the data's per-dimension variance averaged over dimensions;
    1 when the data is constant). Initial variances are the data's per-dimension variance; initial
    means are ``init_means`` or k-means++ seeds drawn with ``generator``. A component whose
    effective count falls below ``1e-3 * n / N`` is re-seeded at the sample with the lowest
    likelihood, with the data's variance. Stops when the mean per-sample log-likelihood
    ``mean_i log(1/N sum_k N(x_i|mu_k,var_k))`` improves by less than ``tol``.
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (n, d) tensor, got shape {tuple(x.shape)}")
    if num_components < 1 or max_iter < 0:
        raise ValueError("num_components must be >= 1 and max_iter >= 0")
    n, d = x.shape
    dtype = _compute_dtype(x)
    xf = x.to(dtype)
    if not (torch.isfinite(xf.sum()) or torch.isfinite(xf).all()):  # exact only on overflow
        raise ValueError("x contains NaN or infinite values")
    n_distinct = _count_distinct(xf, num_components)
    if n_distinct < num_components:
        logger.warning(
            "fit_diag_gmm: %d components but only %d distinct points; components will coincide",
            num_components, n_distinct,
        )
    center = xf.mean(0)
    # [x - center | (x - center)^2] in one (n, 2d) buffer: the M-step needs both sums from one
    # product. Centring reduces cancellation in the expanded quadratic forms.
    xx2 = torch.empty(n, 2 * d, dtype=dtype, device=x.device)
    xc, x2 = torch.sub(xf, center, out=xx2[:, :d]), torch.square(xx2[:, :d], out=xx2[:, d:])
    data_var = x2.mean(0)
    scale = float(data_var.mean())
    floor = var_floor * (scale if scale > 0 else 1.0)
    data_var = data_var.clamp_min(floor)

    if init_means is None:
        means = _kmeans_pp(xc, num_components, generator)
    else:
        if init_means.shape != (num_components, d):
            raise ValueError(f"init_means must have shape {(num_components, d)}, "
                             f"got {tuple(init_means.shape)}")
        means = init_means.to(device=x.device, dtype=dtype) - center
    variances = data_var.expand(num_components, d).clone()
    log_n = math.log(num_components)
    exp_floor = math.log(torch.finfo(dtype).tiny)
    min_count = _MIN_SHARE * n / num_components

    def e_step(mu: Tensor, var: Tensor) -> tuple[Tensor, Tensor, float]:
        """Responsibilities, log-normalisers and the mean log-likelihood; one exp over (n, N)
        serves both the log-sum-exp and the responsibilities. Relative weights below the
        dtype's smallest normal number are set to exactly 0 (as flushing denormals would): their
        share is under 1e-38 (float32), and exp is many times slower on such inputs."""
        log_prob = _log_gauss(xx2, mu, var)
        top = log_prob.amax(1, keepdim=True)
        diff = log_prob.sub_(top)
        negligible = diff < exp_floor
        weights = diff.masked_fill_(negligible, 0.0).exp_().masked_fill_(negligible, 0.0)
        total = weights.sum(1, keepdim=True)
        log_norm = (top + total.log()).squeeze(1)
        return weights.div_(total), log_norm, float(log_norm.mean()) - log_n

    resp, log_norm, ll = e_step(means, variances)
    reseeded, converged, n_iter = 0, False, 0
    bar = tqdm(range(1, max_iter + 1), desc="EM (diag GMM)", disable=not progress, leave=False)
    for n_iter in bar:  # noqa: B007 (n_iter is returned below)
        counts = resp.sum(0)
        safe = counts.clamp_min(torch.finfo(dtype).tiny)[:, None]
        weighted_x, weighted_x2 = _weighted_sums(resp, xx2).split(d, dim=1)
        means = weighted_x / safe  # Eq. 6
        variances = (weighted_x2 / safe - means.square()).clamp_min(floor)  # Eq. 7
        empty = torch.nonzero(counts < min_count).flatten()
        if empty.numel() > 0:
            worst = torch.argsort(log_norm)[torch.arange(empty.numel(), device=x.device) % n]
            means[empty] = xc[worst]
            variances[empty] = data_var
            reseeded += empty.numel()
        resp, log_norm, new_ll = e_step(means, variances)
        bar.set_postfix(ll=f"{new_ll:.4f}")
        improvement, ll = new_ll - ll, new_ll
        if empty.numel() == 0 and improvement < tol:
            converged = True
            break
    bar.close()
    return GMMResult(means + center, variances, ll, n_iter, converged, reseeded,
                     resp.argmax(1), resp.sum(0))


def _weighted_sums(resp: Tensor, xx2: Tensor) -> Tensor:
    """``resp.T @ xx2`` (N, 2d). In high dimension almost every responsibility is exactly 0 in
    floating point (one component takes each sample); then a sparse product built from the
    nonzero entries gives the identical sums at a fraction of the dense cost."""
    n, num_components = resp.shape
    if resp.device.type == "cpu" and num_components >= _SPARSE_MIN_COMPONENTS:
        rows, cols = resp.nonzero(as_tuple=True)
        if rows.numel() <= _SPARSE_PER_SAMPLE * n:
            sparse_t = torch.sparse_coo_tensor(torch.stack([cols, rows]), resp[rows, cols],
                                               (num_components, n), check_invariants=False)
            return torch.sparse.mm(sparse_t, xx2)
    return resp.T @ xx2


def nearest_code_counts(x: Tensor, codes: Tensor, chunk: int = 8192) -> Tensor:
    """How many rows of ``x`` have each code as their nearest (Eq. 8), shape (N,); in chunks of
    ``chunk`` rows, so memory stays O(chunk * N)."""
    xf, cf = x.float(), codes.float()
    c2 = cf.square().sum(1)
    counts = torch.zeros(cf.shape[0], dtype=torch.long, device=x.device)
    for rows in xf.split(chunk):
        nearest = (c2 - 2.0 * rows @ cf.T).argmin(1)  # ||x||^2 is the same for every code
        counts += torch.bincount(nearest, minlength=cf.shape[0])
    return counts


def init_codebook(
    x: Tensor,
    num_codes: int,
    method: str,
    *,
    generator: torch.Generator | None = None,
    em_kwargs: dict | None = None,
) -> Tensor:
    """Initial persona codebook (num_codes, d) from encoded segments ``x`` (§3.3, Table 4).

    - ``em``: means of :func:`fit_diag_gmm` (Eq. 5–7).
    - ``mean`` (average persona init): the vectors in a random order split into ``num_codes``
      consecutive chunks of near-equal size; each code is its chunk's mean.
    - ``sequential``: the first ``num_codes`` vectors in a random order (the paper fills the
      empty codes with the batch's ``p_i`` in sequence); with fewer vectors, they are cycled
      and the repeats get a small Gaussian noise (1e-3 of the data's std).
    - ``random``: uniform in ``[-1/N, 1/N]``, the VQ-VAE default.

    Degenerate inputs never give NaN codes; each is logged as a warning on the ``morpheus_pl``
    logger. Non-finite vectors raise ValueError. Fewer distinct vectors than codes (N larger
    than the number of vectors, or identical vectors): ``mean`` and ``sequential`` cycle the
    vectors (repeats get the noise above), ``em`` lets components coincide on the same points,
    ``random`` ignores the data. Dead codes — codes that are the nearest code (Eq. 8) of no
    vector after initialisation, e.g. coinciding codes or random codes far from the data — are
    *kept* as they are and counted in the warning. (During EM, components whose effective count
    falls below ``1e-3 * n / N`` are already re-seeded onto the data, see :func:`fit_diag_gmm`;
    joint training re-seeds codes whose usage stays low when ``codebook.reseed_below`` > 0.)
    """
    if method not in INIT_METHODS:
        raise ConfigError(f"unknown codebook init method {method!r}; allowed: {', '.join(INIT_METHODS)}")
    if x.ndim != 2 or x.shape[0] == 0 or num_codes < 1:
        raise ValueError("x must be a non-empty (n, d) tensor and num_codes >= 1")
    bad_rows = (~torch.isfinite(x).all(1)).nonzero().flatten()
    if bad_rows.numel():
        raise ValueError(f"init_codebook: {bad_rows.numel()} persona vector(s) contain NaN or "
                         f"Inf (first: row {int(bad_rows[0])}); expected finite vectors")
    if method != "em":  # fit_diag_gmm warns about coinciding components itself
        n_distinct = _count_distinct(x.to(_compute_dtype(x)), num_codes)
        if n_distinct < num_codes:
            logger.warning("init_codebook(%s): %d codes but only %d distinct persona vectors "
                           "(of %d)", method, num_codes, n_distinct, x.shape[0])
    codes = _initial_codes(x, num_codes, method, generator, em_kwargs)
    dead = int((nearest_code_counts(x, codes) == 0).sum())
    if dead:
        logger.warning("init_codebook(%s): %d of %d codes are the nearest code of no persona "
                       "vector (dead codes); kept as they are", method, dead, num_codes)
    return codes


def _initial_codes(x: Tensor, num_codes: int, method: str, generator: torch.Generator | None,
                   em_kwargs: dict | None) -> Tensor:
    n, d = x.shape
    dtype = _compute_dtype(x)
    rng = _rng_device(generator)
    if method == "random":
        codes = (torch.rand(num_codes, d, generator=generator, device=rng, dtype=dtype) * 2 - 1)
        return (codes / num_codes).to(device=x.device, dtype=x.dtype)
    if method == "em":
        fit = fit_diag_gmm(x, num_codes, generator=generator, **(em_kwargs or {}))
        return fit.means.to(x.dtype)
    xf = x.to(dtype)
    perm = torch.randperm(n, generator=generator, device=rng).to(x.device)
    if n < num_codes:
        logger.warning("init_codebook(%s): %d vectors for %d codes; cycling them", method, n,
                       num_codes)
        perm = perm[torch.arange(num_codes, device=x.device) % n]
    if method == "mean":
        m = perm.numel()
        chunk = torch.arange(m, device=x.device) * num_codes // m
        sums = torch.zeros(num_codes, d, dtype=dtype, device=x.device)
        sums.index_add_(0, chunk, xf[perm])
        counts = torch.bincount(chunk, minlength=num_codes).to(dtype)
        codes = sums / counts[:, None]
    else:
        codes = xf[perm[:num_codes]]
    if n < num_codes:
        std = float(xf.std(unbiased=False))
        noise = torch.randn(num_codes - n, d, generator=generator, device=rng, dtype=dtype)
        codes[n:] += 1e-3 * (std if std > 0 else 1.0) * noise.to(x.device)
    return codes.to(x.dtype)
