"""The decoder under a persona prefix: response NLL (Eq. 2 and 11) and the history state (Eq. 12)."""

from __future__ import annotations

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
    """
    if kv_pairs is None:
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                      labels=labels)
        return out.loss
    prefix_len = kv_pairs[0][0].shape[2]
    full_mask, positions = prefix_attention(prefix_len, attention_mask)
    out = decoder(
        input_ids=input_ids,
        attention_mask=full_mask,
        position_ids=positions,
        cache=prefix_cache(kv_pairs, decoder.config),
        labels=labels,
    )
    return out.loss


def history_state(decoder: PreTrainedModel, history_ids: Tensor, history_mask: Tensor) -> Tensor:
    """Eq. 12: c = Decoder(C), the last hidden state of the history, WITHOUT any persona prefix.

    The same call serves training and inference, so the code predictor sees identical inputs.
    No LM head: only the base model runs.
    """
    positions = (history_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = decoder.base_model(input_ids=history_ids, attention_mask=history_mask, position_ids=positions)
    return last_token_state(out.last_hidden_state, history_mask)
