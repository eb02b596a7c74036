"""What the code predictor reads of the history (Eq. 12's c): `predictor.reads`.

The history's hidden states H (B, L, d) come from the decoder without any persona prefix
(`prefix_lm.history_states`); the reader turns them into c:
  last            the last real token's state, (B, d): the paper's c = Decoder(C)
  mean            the mean over the real tokens' states, (B, d)
  slot_attention  one learned query per persona slot attending over all real tokens' states,
                  (B, M, d): each slot may read another part of the history (not in the paper)
Padding tokens (mask 0) change none of them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from morpheus_pl.errors import ConfigError
from morpheus_pl.modules.persona_encoder import last_token_state, mean_state

READS = ("last", "mean", "slot_attention")


class HistoryReader(nn.Module):
    """History states (B, L, d) and their mask (B, L) -> c: (B, d), or (B, M, d) per slot.

    slot_attention is single-head attention: the scores of slot m are q_m · W h_t / sqrt(d) with
    learned queries q (M, d) and key projection W; the values are the states themselves, so each
    slot's c lies where `last`'s and `mean`'s do. The queries start near 0, i.e. near `mean`.
    `last` and `mean` have no parameters: a joint stage that reads them holds the weights it held
    before this option existed.
    """

    def __init__(self, reads: str, dim: int, num_slots: int) -> None:
        super().__init__()
        if reads not in READS:
            raise ConfigError(f"predictor.reads must be one of {READS}, got {reads!r}")
        self.reads = reads
        if reads == "slot_attention":
            self.queries = nn.Parameter(torch.randn(num_slots, dim) * 0.02)
            self.keys = nn.Linear(dim, dim)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        if self.reads == "last":
            return last_token_state(hidden, mask)
        if self.reads == "mean":
            return mean_state(hidden, mask)
        scores = torch.einsum("md,bld->bml", self.queries.to(hidden.dtype), self.keys(hidden))
        scores = scores / math.sqrt(hidden.shape[-1])
        scores = scores.masked_fill(~mask.bool()[:, None, :], torch.finfo(scores.dtype).min)
        return scores.softmax(-1).to(hidden.dtype) @ hidden
