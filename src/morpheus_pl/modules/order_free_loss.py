"""Order-free variants of L_C (Eq. 13): `predictor.loss=set` and `predictor.loss=bag`.

A persona's sentences come in no order, so the true codes k (B, M) of Eq. 13 are a multiset,
not a sequence. Eq. 13's per-slot cross-entropy then teaches every slot the same marginal over
the persona's codes (and per-slot argmax repeats one code). Shapes: logits (B, M, N), k (B, M).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor


@torch.no_grad()
def matched_targets(log_probs: Tensor, k: Tensor) -> Tensor:
    """k reordered per example so that slot i's target is the true code the minimum-cost
    one-to-one matching of slots to true codes gives it (Hungarian: scipy's
    `linear_sum_assignment`, as DETR matches its unordered targets), with cost
    -log p_i(k_j) for slot i and true code j. No gradient: the matching is a choice of targets.
    The whole batch's (M, M) cost matrices go to the CPU in one transfer."""
    m = k.shape[1]
    cost = -log_probs.gather(2, k[:, None, :].expand(-1, m, -1))  # (B, slot i, true code j)
    columns = np.stack([linear_sum_assignment(c)[1] for c in cost.float().cpu().numpy()])
    return k.gather(1, torch.from_numpy(columns).to(k.device))


def set_loss(logits: Tensor, k: Tensor) -> Tensor:
    """`predictor.loss=set`: Eq. 13's cross-entropy after matching the M slots to the M true
    codes (`matched_targets`), i.e. the batch mean of min over permutations π of
    (1/M) Σ_i -log p_i(k_π(i)). Each slot learns to predict one of the persona's codes and the
    slots share them out; decode with `distinct_argmax` (each slot its own code)."""
    log_probs = F.log_softmax(logits.float(), -1)
    target = matched_targets(log_probs, k)
    return F.nll_loss(log_probs.flatten(0, 1), target.flatten())


def bag_loss(logits: Tensor, k: Tensor) -> Tensor:
    """`predictor.loss=bag`: the true codes as draws from the slot-averaged distribution
    q = (1/M) Σ_i p_i, L = -(1/M) Σ_j log q(k_j), the batch mean.

    Equivalently the cross-entropy H(t, q) between the persona's code multiset t (each true
    code's count / M) and q, so q = t is its minimum: q ranks the persona's codes above all
    others and `top_m_distinct` (the top M of q) is its decoding. Chosen over a per-code
    binary (multi-hot) loss because q is what `top_m_distinct` ranks and because it keeps
    repeated codes as counts. Unlike Eq. 13, the slots need not each cover every code: a slot
    may specialise on some codes while others cover the rest (q is a mixture).
    """
    log_q = torch.logsumexp(F.log_softmax(logits.float(), -1), dim=1) - math.log(logits.shape[1])
    return -log_q.gather(1, k).mean()
