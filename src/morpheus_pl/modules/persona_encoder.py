"""Persona encoder (Eq. 4): one vector p_i in R^d per persona segment P_i."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import AutoModel, PreTrainedModel


def last_token_state(hidden: Tensor, mask: Tensor) -> Tensor:
    """Hidden state (.., d) of the last non-padding token of each right- or left-padded row."""
    length = mask.shape[1]
    last = length - 1 - mask.flip(-1).long().argmax(-1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class DecoderPersonaEncoder(nn.Module):
    """The decoder itself encodes a segment: last hidden state of its last token (official code).

    The backbone is the decoder's base model, shared with the decoder (same parameters).
    """

    def __init__(self, decoder: PreTrainedModel) -> None:
        super().__init__()
        self.backbone = decoder.base_model
        self.output_dim = decoder.config.get_text_config(decoder=True).hidden_size

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(S, L) segment tokens -> (S, d)."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        return last_token_state(out.last_hidden_state, attention_mask)


class PretrainedPersonaEncoder(nn.Module):
    """Any Hugging Face encoder, mean-pooled over tokens and projected to the decoder width d."""

    def __init__(self, name_or_path: str, output_dim: int) -> None:
        super().__init__()
        try:
            self.backbone = AutoModel.from_pretrained(name_or_path)
        except OSError as err:
            raise OSError(
                f"cannot load the persona encoder {name_or_path!r}: {err}. Without access to the "
                f"Hugging Face hub, set encoder.name_or_path=/path/to/local/copy."
            ) from err
        self.proj = nn.Linear(self.backbone.config.hidden_size, output_dim)
        self.output_dim = output_dim

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(S, L) segment tokens (the encoder's own tokenizer) -> (S, d)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.proj(pooled)
