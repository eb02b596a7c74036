"""Persona encoder (Eq. 4): one vector p_i in R^d per persona segment P_i."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

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


def weighted_mean_state(hidden: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    """Mean of the hidden states (.., L, d) over the real tokens, token t weighted by weights[t]."""
    weights = weights * mask.to(weights.dtype)
    total = weights.sum(-1, keepdim=True).clamp(min=torch.finfo(weights.dtype).tiny)
    return (hidden * weights.unsqueeze(-1).to(hidden.dtype)).sum(-2) / total.to(hidden.dtype)


POOLINGS = ("last", "mean", "last_mean", "sif")
# Smooth inverse frequency a / (a + p(token)) (Arora, Liang & Ma 2017, "A simple but tough-to-beat
# baseline for sentence embeddings"; their range is 1e-4 to 1e-3): a token in one in a thousand
# persona tokens gets half the weight of an unseen one.
SIF_A = 1e-3


def sif_weights(segments: Iterable[list[int]], vocab_size: int, a: float = SIF_A) -> Tensor:
    """a / (a + p(t)) per token id t, p the token's share of all tokens of `segments`."""
    counts = Counter(t for segment in segments for t in segment)
    total = sum(counts.values())
    if total == 0:
        raise ValueError("sif_weights: no persona segment tokens to count")
    freq = torch.zeros(vocab_size, dtype=torch.float64)
    ids = torch.tensor(list(counts), dtype=torch.long)
    if int(ids.max()) >= vocab_size:
        raise ValueError(f"sif_weights: token id {int(ids.max())} outside the vocabulary ({vocab_size})")
    freq[ids] = torch.tensor(list(counts.values()), dtype=torch.float64) / total
    return (a / (a + freq)).float()


class DecoderPersonaEncoder(nn.Module):
    """The decoder itself encodes a segment from its last-layer hidden states.

    pooling="last": the state of the segment's last token (official code); "mean": the mean over
    its tokens; "last_mean": the average of the two; "sif": the mean weighted by each token's
    smooth inverse frequency in the training personas (`fit_token_weights`), so the rare words
    that tell personas apart (the values) count and the template words every persona shares do
    not, wherever in the sentence they stand. The last three are not in the paper
    (docs/persona_zoo.md). The backbone is the decoder's base model, shared with it (same
    parameters).
    """

    def __init__(self, decoder: PreTrainedModel, pooling: str = "last") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"encoder.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.backbone = decoder.base_model
        self.pooling = pooling
        self.output_dim = decoder.config.get_text_config(decoder=True).hidden_size
        if pooling == "sif":
            # buffers: saved with every stage checkpoint, so later stages and evaluation weigh
            # tokens as the stage that counted them did
            vocab_size = decoder.get_input_embeddings().num_embeddings
            self.register_buffer("token_weights", torch.ones(vocab_size))
            self.register_buffer("token_weights_fitted", torch.tensor(False))

    @property
    def needs_token_weights(self) -> bool:
        """Whether `fit_token_weights` must run before training (sif pooling, not yet counted)."""
        return self.pooling == "sif" and not bool(self.token_weights_fitted)

    def fit_token_weights(self, segments: Iterable[list[int]]) -> None:
        """Count the training persona segments' tokens (each role's persona once) for "sif"."""
        weights = sif_weights(segments, self.token_weights.numel())
        self.token_weights.copy_(weights.to(self.token_weights.device))
        self.token_weights_fitted.fill_(True)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(S, L) segment tokens -> (S, d)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "sif":
            return weighted_mean_state(hidden, attention_mask, self.token_weights[input_ids])
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
