"""Persona encoder (Eq. 4): one vector p_i in R^d per persona segment P_i."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import AutoModel, PreTrainedModel

from morpheus_pl.errors import ConfigError, MissingModelError
from morpheus_pl.modules.offline_models import resolve_model_path


def last_token_state(hidden: Tensor, mask: Tensor) -> Tensor:
    """Hidden state (.., d) of the last non-padding token of each right- or left-padded row."""
    length = mask.shape[1]
    last = length - 1 - mask.flip(-1).long().argmax(-1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_state(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of the hidden states (.., L, d) over the real (mask 1) tokens."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(-2) / weights.sum(-2).clamp(min=1.0)


POOLINGS = ("last", "mean", "last_mean")


class DecoderPersonaEncoder(nn.Module):
    """The decoder itself encodes a segment from its last-layer hidden states.

    pooling="last": the state of the segment's last token (official code); "mean": the mean over
    its tokens; "last_mean": the average of the two (not in the paper: the last token carries a
    sentence-final value, the mean a value anywhere; docs/persona_zoo.md). The backbone is the
    decoder's base model, shared with it (same parameters).
    """

    def __init__(self, decoder: PreTrainedModel, pooling: str = "last") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"encoder.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.backbone = decoder.base_model
        self.pooling = pooling
        self.output_dim = decoder.config.get_text_config(decoder=True).hidden_size

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(S, L) segment tokens -> (S, d)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "last":
            return last_token_state(hidden, attention_mask)
        if self.pooling == "mean":
            return mean_state(hidden, attention_mask)
        return (last_token_state(hidden, attention_mask) + mean_state(hidden, attention_mask)) / 2


class PretrainedPersonaEncoder(nn.Module):
    """Any Hugging Face encoder, mean-pooled over tokens and projected to the decoder width d."""

    def __init__(self, name_or_path: str, output_dim: int, trust_remote_code: bool = False) -> None:
        super().__init__()
        try:
            self.backbone = AutoModel.from_pretrained(resolve_model_path(name_or_path),
                                                      trust_remote_code=trust_remote_code)
        except OSError as err:
            raise MissingModelError(
                f"cannot load the persona encoder {name_or_path!r}: {err}. Without access to the "
                f"Hugging Face hub, set encoder.name_or_path=/path/to/local/copy."
            ) from err
        self.proj = nn.Linear(self.backbone.config.hidden_size, output_dim)
        self.output_dim = output_dim

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(S, L) segment tokens (the encoder's own tokenizer) -> (S, d)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.proj(mean_state(hidden, attention_mask))
