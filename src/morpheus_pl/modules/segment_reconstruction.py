"""Segment reconstruction: an auxiliary stage-1 loss (not in the paper) that makes the decoder
read a persona prefix from the start.

Each persona segment P_i is generated back, token by token, by the decoder under a prefix made
of its own vector p_i alone (one position, or `projector.positions`). The paper's stage 1
(Eq. 2) gives the prefix a learning signal only through the response, and a decoder trained
from scratch learnt the dialogue's language without ever reading the prefix on every persona
world the project had not been tuned on (val/persona_gain about 0 for 3,000 steps). This loss
asks the encoder and projector for a prefix that carries its segment, and the decoder to decode
it; with it the response path started reading the persona on some of those worlds, not all
(docs/persona_zoo.md). `loss.weights.segment: 0` is the paper's stage 1.
"""

from __future__ import annotations

from torch import Tensor, nn
from transformers import PreTrainedModel

from morpheus_pl.modules.prefix_lm import prefix_lm_loss


def segment_reconstruction_loss(
    decoder: PreTrainedModel,
    projector: nn.Module,
    p: Tensor,
    segment_ids: Tensor,
    segment_mask: Tensor,
) -> Tensor:
    """Mean token NLL of every segment under the prefix of its own vector.

    p (B, M, d) are the encoded segments; `segment_ids`/`segment_mask` (B*M, S) are their
    tokens in the decoder's vocabulary, right-padded, in the same order.
    """
    kv = projector(p.reshape(-1, 1, p.shape[-1]))
    labels = segment_ids.masked_fill(segment_mask == 0, -100)
    return prefix_lm_loss(decoder, segment_ids, segment_mask, labels, kv)
