"""The decoder under a persona prefix: response NLL (Eq. 2 and 11) and the history state (Eq. 12)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel

from morpheus_pl.modules.persona_encoder import last_token_state
from morpheus_pl.modules.prefix_projector import prefix_attention, prefix_cache


def prefix_lm_loss(
    decoder: PreTrainedModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    labels: Tensor,
    kv_pairs: list[tuple[Tensor, Tensor]] | None = None,
) -> Tensor:
    """Mean token NLL of the labelled (response) tokens, history + response as input.

    With `kv_pairs` the decoder attends to the prefix first; the mask covers prefix + input.
    The LM head runs only on the positions that predict a labelled token in some row
    (`logits_to_keep`): the history's logits are never needed, and over a 50k vocabulary they
    were most of the memory and a fifth of the time of a step (benchmarks/bench_joint_step.py).
    """
    logits, targets = _response_logits(decoder, input_ids, attention_mask, labels, kv_pairs)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def response_nll(decoder: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, labels: Tensor,
                 kv_pairs: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
    """Per example (B,): the summed NLL of its labelled tokens, -log P(R | C, prefix)."""
    logits, targets = _response_logits(decoder, input_ids, attention_mask, labels, kv_pairs)
    nll = F.cross_entropy(logits.transpose(1, 2).float(), targets, ignore_index=-100, reduction="none")
    return nll.sum(-1)


def _response_logits(decoder: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor,
                     labels: Tensor, kv_pairs: list[tuple[Tensor, Tensor]] | None
                     ) -> tuple[Tensor, Tensor]:
    """Logits (B, K, V) at the K positions that predict a labelled token in some row, and their
    targets (B, K) (-100 where the row has none)."""
    targets = labels[:, 1:]
    keep = (targets != -100).any(0).nonzero().squeeze(1)
    if kv_pairs is None:
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                      logits_to_keep=keep)
    else:
        prefix_len = kv_pairs[0][0].shape[2]
        full_mask, positions = prefix_attention(prefix_len, attention_mask)
        out = decoder(
            input_ids=input_ids,
            attention_mask=full_mask,
            position_ids=positions,
            cache=prefix_cache(kv_pairs, decoder.config),
            logits_to_keep=keep,
        )
    return out.logits, targets[:, keep]


def history_state(decoder: PreTrainedModel, history_ids: Tensor, history_mask: Tensor) -> Tensor:
    """Eq. 12: c = Decoder(C), the last hidden state of the history, WITHOUT any persona prefix.

    The same call serves training and inference, so the code predictor sees identical inputs.
    """
    return last_token_state(*history_states(decoder, history_ids, history_mask))


def history_states(decoder: PreTrainedModel, history_ids: Tensor, history_mask: Tensor
                   ) -> tuple[Tensor, Tensor]:
    """All the history's last-layer hidden states (B, L, d), WITHOUT any persona prefix, and their
    mask (B, L), both right-padded: what `predictor.reads` reads c from (modules/history_reader.py).

    No LM head: only the base model runs. Left-padded rows are moved to right padding first:
    a left padding query attends to no key at all, and the joint stage went NaN at its first
    step under bf16-mixed on an H100 with them; right padding gives the real tokens the same
    states and no query without keys.
    """
    ids, mask = right_padded(history_ids, history_mask)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    out = decoder.base_model(input_ids=ids, attention_mask=mask, position_ids=positions)
    return out.last_hidden_state, mask


def right_padded(ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Rows of left- (or right-) padded `ids`/`mask` (B, L) rotated so the real tokens come first."""
    length = mask.shape[1]
    first_real = (mask.long().cumsum(-1) == 0).sum(-1)  # leading padding per row
    index = (torch.arange(length, device=ids.device)[None] + first_real[:, None]) % length
    return ids.gather(1, index), mask.gather(1, index)
