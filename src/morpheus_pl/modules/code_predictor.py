"""Code-index prediction (Eq. 12-13): history state c -> a code distribution per persona slot."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from morpheus_pl.errors import ConfigError

DECODE_MODES = ("argmax", "top_m_distinct", "sample")


class CodePredictor(nn.Module):
    """MLP over c + a learned embedding per segment slot: (B, d) -> logits (B, M, N)."""

    def __init__(self, dim: int, num_codes: int, num_slots: int, hidden_multiplier: int = 1) -> None:
        super().__init__()
        self.slots = nn.Embedding(num_slots, dim)
        hidden = dim * hidden_multiplier
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, num_codes)
        )

    def forward(self, c: Tensor) -> Tensor:
        return self.mlp(c[:, None, :] + self.slots.weight[None])


def code_loss(logits: Tensor, k: Tensor, kind: str = "ce", gamma: float = 2.0) -> Tensor:
    """Eq. 13: cross-entropy of the true codes k (B, M); kind="focal" is the official variant."""
    flat_logits, flat_k = logits.reshape(-1, logits.shape[-1]).float(), k.reshape(-1)
    if kind == "ce":
        return F.cross_entropy(flat_logits, flat_k)
    if kind == "focal":
        log_pt = F.log_softmax(flat_logits, -1).gather(1, flat_k[:, None]).squeeze(1)
        return -((1 - log_pt.exp()) ** gamma * log_pt).mean()
    raise ConfigError(f"predictor.loss must be 'ce' or 'focal', got {kind!r}")


def decode_codes(logits: Tensor, mode: str, generator: torch.Generator | None = None) -> Tensor:
    """Pick M codes per example from logits (B, M, N).

    argmax: per slot (the official code; can repeat one code in every slot).
    top_m_distinct: the M most probable distinct codes of the slot-averaged distribution.
    sample: one draw per slot.
    """
    batch, m, n = logits.shape
    if mode == "argmax":
        return logits.argmax(-1)
    probs = logits.float().softmax(-1)
    if mode == "top_m_distinct":
        if m > n:
            raise ConfigError(f"top_m_distinct needs N >= M, got N={n}, M={m}")
        return probs.mean(1).topk(m, dim=-1).indices
    if mode == "sample":
        flat = torch.multinomial(probs.reshape(-1, n), 1, generator=generator)
        return flat.view(batch, m)
    raise ConfigError(f"predictor.decode must be one of {DECODE_MODES}, got {mode!r}")


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
