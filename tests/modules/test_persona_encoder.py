"""The decoder as persona encoder: last-token, mean, last_mean and sif pooling of its hidden states."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from morpheus_pl.errors import ConfigError
from morpheus_pl.modules.persona_encoder import SIF_A, DecoderPersonaEncoder, sif_weights


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
                                          r"'last_mean', 'sif'\), got 'max'"):
        DecoderPersonaEncoder(decoder, "max")


def test_sif_weights_by_hand():
    # 8 tokens: id 1 four times (p 1/2), ids 2 and 3 twice each (p 1/4); ids 0 and 4 never
    weights = sif_weights([[1, 2, 1], [1, 3, 3], [2, 1]], vocab_size=5)
    a = SIF_A
    expected = torch.tensor([1.0, a / (a + 0.5), a / (a + 0.25), a / (a + 0.25), 1.0])
    assert torch.allclose(weights, expected)
    with pytest.raises(ValueError, match="token id 7 outside the vocabulary"):
        sif_weights([[7]], vocab_size=5)


def test_sif_pooling_is_the_weighted_mean_of_the_real_tokens(decoder):
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    encoder = DecoderPersonaEncoder(decoder, "sif")
    assert encoder.needs_token_weights
    with torch.no_grad():
        unfitted = encoder(ids, mask)
        # tokens 5 and 8 are frequent, 6 and 9 rarer, 7 unseen (weight 1); 0 pads the rows
        encoder.fit_token_weights([[5, 5, 5, 6], [8, 8, 9, 5], [0, 0, 0, 0]])
        hidden = decoder.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        w = encoder.token_weights
        by_hand = torch.stack([
            (w[5] * hidden[0, 0] + w[6] * hidden[0, 1] + hidden[0, 2]) / (w[5] + w[6] + 1),
            (w[8] * hidden[1, 0] + w[9] * hidden[1, 1]) / (w[8] + w[9]),
        ])
        pooled = encoder(ids, mask)
    assert not encoder.needs_token_weights
    assert torch.allclose(pooled, by_hand, atol=1e-6)
    mean = DecoderPersonaEncoder(decoder, "mean")(ids, mask)
    assert torch.allclose(unfitted, mean, atol=1e-6)  # all weights 1 until counted
    assert not torch.allclose(pooled, mean, atol=1e-3)
    assert {"token_weights", "token_weights_fitted"} <= set(encoder.state_dict())
    assert "token_weights" not in DecoderPersonaEncoder(decoder, "last").state_dict()
