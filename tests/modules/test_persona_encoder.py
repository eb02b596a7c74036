"""The decoder as persona encoder: last-token, mean and last_mean pooling of its hidden states."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from morpheus_pl.errors import ConfigError
from morpheus_pl.modules.persona_encoder import DecoderPersonaEncoder


@pytest.fixture(scope="module")
def decoder():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).eval()


def test_each_pooling_against_the_hidden_states_by_hand(decoder):
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    with torch.no_grad():
        hidden = decoder.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        last = torch.stack([hidden[0, 2], hidden[1, 1]])
        mean = torch.stack([hidden[0, :3].mean(0), hidden[1, :2].mean(0)])
        pooled = {p: DecoderPersonaEncoder(decoder, p)(ids, mask) for p in ("last", "mean", "last_mean")}
    assert torch.allclose(pooled["last"], last, atol=1e-6)
    assert torch.allclose(pooled["mean"], mean, atol=1e-6)
    assert torch.allclose(pooled["last_mean"], (last + mean) / 2, atol=1e-6)


def test_an_unknown_pooling_names_the_setting_and_the_choices(decoder):
    with pytest.raises(ConfigError, match=r"encoder.pooling must be one of \('last', 'mean', "
                                          r"'last_mean'\), got 'max'"):
        DecoderPersonaEncoder(decoder, "max")
