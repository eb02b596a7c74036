"""Code-index prediction (Eq. 12-13): history state c -> a code distribution per persona slot,
its loss, and the decodings that pick M codes from it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from morpheus_pl.errors import ConfigError
from morpheus_pl.modules.history_reader import HistoryReader
from morpheus_pl.modules.order_free_loss import bag_loss, set_loss

LOSSES = ("ce", "focal", "set", "bag")
DECODE_MODES = ("argmax", "top_m_distinct", "sample", "distinct_argmax", "expected", "rescored",
                "covering")
DISTINCT_MODES = ("top_m_distinct", "distinct_argmax", "covering")  # need codebook.N >= M


class CodePredictor(nn.Module):
    """MLP over c + a learned embedding per segment slot: c (B, d) or (B, M, d) -> logits (B, M, N).

    `reader` (`predictor.reads`, modules/history_reader.py) makes c from the history's states;
    a c per slot (slot_attention) gives each slot its own input.
    """

    def __init__(self, dim: int, num_codes: int, num_slots: int, hidden_multiplier: int = 1,
                 reads: str = "last") -> None:
        super().__init__()
        self.slots = nn.Embedding(num_slots, dim)
        hidden = dim * hidden_multiplier
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, num_codes)
        )
        self.reader = HistoryReader(reads, dim, num_slots)

    def forward(self, c: Tensor) -> Tensor:
        return self.mlp((c[:, None, :] if c.dim() == 2 else c) + self.slots.weight[None])


def code_loss(logits: Tensor, k: Tensor, kind: str = "ce", gamma: float = 2.0) -> Tensor:
    """Eq. 13: cross-entropy of the true codes k (B, M); kind="focal" is the official variant,
    "set" and "bag" the order-free ones (modules/order_free_loss.py)."""
    flat_logits, flat_k = logits.reshape(-1, logits.shape[-1]).float(), k.reshape(-1)
    if kind == "ce":
        return F.cross_entropy(flat_logits, flat_k)
    if kind == "focal":
        log_pt = F.log_softmax(flat_logits, -1).gather(1, flat_k[:, None]).squeeze(1)
        return -((1 - log_pt.exp()) ** gamma * log_pt).mean()
    if kind == "set":
        return set_loss(logits, k)
    if kind == "bag":
        return bag_loss(logits, k)
    raise ConfigError(f"predictor.loss must be one of {LOSSES}, got {kind!r}")


def decode_codes(logits: Tensor, mode: str, generator: torch.Generator | None = None,
                 codebook: Tensor | None = None) -> Tensor:
    """Pick M codes per example from logits (B, M, N) (`codebook` (N, d): decode=covering).

    argmax: per slot (the official code; can repeat one code in every slot).
    expected: the per-slot argmax too; these are the codes reported, while its prefix is the
      expected code vector of each slot (`expected_code_vectors`).
    top_m_distinct: the M most probable distinct codes of the slot-averaged distribution.
    distinct_argmax: per slot, without repeats: the M distinct codes, one per slot, of highest
      total log-probability (Hungarian assignment of slots to codes).
    sample: one draw per slot.
    covering: M distinct codes of the slot-averaged distribution, each covering the mass of the
      codes whose vectors point its way (`covering_codes`).
    rescored: one draw per slot too, where one set is needed without a response (code recall,
      val/loss_gen_predicted, train as you infer); at generation it draws several sets and keeps
      the response of highest marginal likelihood (generation.py, rescored_generation).
    """
    batch, m, n = logits.shape
    if mode in ("argmax", "expected"):
        return logits.argmax(-1)
    if mode in DISTINCT_MODES and m > n:
        raise ConfigError(f"predictor.decode={mode} needs N >= M, got N={n}, M={m}")
    probs = logits.float().softmax(-1)
    if mode == "top_m_distinct":
        return probs.mean(1).topk(m, dim=-1).indices
    if mode == "covering":
        if codebook is None:
            raise ConfigError("predictor.decode=covering needs the codebook's vectors")
        return covering_codes(probs.mean(1), codebook, m)
    if mode == "distinct_argmax":
        cost = -F.log_softmax(logits.float(), -1).cpu().numpy()
        codes = np.stack([linear_sum_assignment(c)[1] for c in cost])
        return torch.from_numpy(codes).to(logits.device)
    if mode in ("sample", "rescored"):
        flat = torch.multinomial(probs.reshape(-1, n), 1, generator=generator)
        return flat.view(batch, m)
    raise ConfigError(f"predictor.decode must be one of {DECODE_MODES}, got {mode!r}")


def covering_codes(probs: Tensor, codebook: Tensor, m: int) -> Tensor:
    """M distinct codes (B, M) from a distribution over codes (B, N), greedily, each the code
    that covers the most probability mass not yet covered, where code k covers a share
    max(0, cos(e_k, e_j)) of code j's mass (all of its own).

    Codes whose vectors (nearly) coincide stand for (nearly) the same persona sentence (on the
    zoo worlds: one fact in several sentence templates, which the history cannot tell apart), so
    their mass is one persona element's in Eq. 1's sum: `top_m_distinct` spends several slots on
    such a group, this picks the group once and moves on. Without such groups (orthogonal code
    vectors) it is `top_m_distinct`. No parameter. Written here: no library covers soft sets.
    """
    unit = F.normalize(codebook.float(), dim=-1)
    cover = (unit @ unit.T).clamp(min=0).fill_diagonal_(1.0)  # (N, N)
    left = probs.float().clone()
    picked = []
    for _ in range(m):
        gain = left.clone()
        if picked:
            gain.scatter_(1, torch.stack(picked, 1), float("-inf"))
        k = gain.argmax(-1)
        picked.append(k)
        left = left * (1 - cover[k])
    return torch.stack(picked, 1)


def expected_code_vectors(logits: Tensor, codes: Tensor, top_k: int | None = None) -> Tensor:
    """Eq. 1's sum over personas at inference, per slot: Σ_k P(k|c) e_k (B, M, d) from logits
    (B, M, N) and the codebook e (N, d), instead of one argmax code standing in for the sum.

    `top_k` (`predictor.expected_top_k`): the sum over each slot's K most probable codes, their
    probabilities renormalised (K=1: the argmax code's e_k); None: over all N codes.
    """
    n = logits.shape[-1]
    if top_k is not None and not (isinstance(top_k, int) and 1 <= top_k <= n):
        raise ConfigError(f"predictor.expected_top_k must be null or an int in [1, N={n}], got {top_k!r}")
    logits = logits.float()
    if top_k is not None:
        kept = logits.topk(top_k, dim=-1).indices
        logits = torch.full_like(logits, float("-inf")).scatter(-1, kept, logits.gather(-1, kept))
    return logits.softmax(-1).to(codes.dtype) @ codes


def set_recall(picked: Tensor, true: Tensor) -> Tensor:
    """Per example (B,): share of the distinct true codes (B, M) found among the picked (B, M').

    Slots carry no order, so this set view, not per-slot accuracy, says whether the history ->
    persona inference works.
    """
    hit = (true[:, :, None] == picked[:, None, :]).any(-1)  # (B, M)
    first = torch.ones_like(hit)
    for j in range(1, true.shape[1]):
        first[:, j] = ~(true[:, :j] == true[:, j : j + 1]).any(-1)
    return (hit & first).sum(-1).float() / first.sum(-1).float()
