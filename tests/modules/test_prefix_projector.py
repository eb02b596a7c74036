"""Prefix projector (Eq. 10), the prefix cache and the prefix attention mask / positions."""

import pytest
import torch
from transformers import GPT2Config, LlamaConfig, PretrainedConfig

from morpheus_pl.modules.prefix_projector import (
    KVLayout,
    PrefixProjector,
    kv_layout,
    prefix_attention,
    prefix_cache,
)


def test_kv_layout_gpt2():
    lay = kv_layout(GPT2Config(n_layer=3, n_embd=48, n_head=4))
    assert lay == KVLayout(n_layers=3, kv_heads=4, head_dim=12)
    assert lay.kv_width == 48


def test_kv_layout_llama_gqa():
    cfg = LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                      num_hidden_layers=2, intermediate_size=64)
    lay = kv_layout(cfg)
    assert lay == KVLayout(n_layers=2, kv_heads=2, head_dim=8)
    assert lay.kv_width == 16  # GQA: narrower than the hidden size


def test_kv_layout_explicit_head_dim_wins():
    cfg = LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=1,
                      num_hidden_layers=2, head_dim=16, intermediate_size=64)
    assert kv_layout(cfg) == KVLayout(n_layers=2, kv_heads=1, head_dim=16)


def test_kv_layout_names_missing_field():
    cfg = PretrainedConfig(num_hidden_layers=2, hidden_size=32)  # no head count
    with pytest.raises(ValueError, match="heads") as err:
        kv_layout(cfg)
    assert "layers" not in str(err.value) and "hidden size" not in str(err.value)


def test_projector_shapes(tiny_decoder):
    lay = kv_layout(tiny_decoder.config)
    proj = PrefixProjector(32, lay)
    kv = proj(torch.randn(3, 5, 32))
    assert len(kv) == tiny_decoder.config.num_hidden_layers
    for key, value in kv:
        assert key.shape == (3, lay.kv_heads, 5, lay.head_dim)
        assert value.shape == (3, lay.kv_heads, 5, lay.head_dim)
        assert not torch.equal(key, value)


def test_projector_tied_key_is_value():
    lay = KVLayout(n_layers=2, kv_heads=2, head_dim=8)
    proj = PrefixProjector(32, lay, kv="tied")
    kv = proj(torch.randn(2, 4, 32))
    for key, value in kv:
        # one output used as both: the same tensor (same storage, offset and strides)
        assert key.data_ptr() == value.data_ptr() and key.stride() == value.stride()
        assert torch.equal(key, value)
        assert key.shape == (2, 2, 4, 8)
    assert proj.mlp[-1].out_features == lay.n_layers * lay.kv_width  # half the separate width
    assert PrefixProjector(32, lay).mlp[-1].out_features == 2 * lay.n_layers * lay.kv_width
    with pytest.raises(ValueError, match="tied"):
        PrefixProjector(32, lay, kv="shared")


def test_projector_each_position_from_its_own_vector():
    """Prefix position j depends on p_j only (changing p_1 leaves position 0 unchanged)."""
    lay = KVLayout(n_layers=2, kv_heads=2, head_dim=8)
    proj = PrefixProjector(32, lay)
    p = torch.randn(1, 3, 32)
    q = p.clone()
    q[0, 1] += 1.0
    for (k1, _), (k2, _) in zip(proj(p), proj(q)):
        assert torch.allclose(k1[:, :, 0], k2[:, :, 0])
        assert not torch.allclose(k1[:, :, 1], k2[:, :, 1])


def _prefixed_forward(decoder, kv, ids, mask):
    full, positions = prefix_attention(kv[0][0].shape[2], mask)
    return decoder(input_ids=ids, attention_mask=full, position_ids=positions,
                   cache=prefix_cache(kv, decoder.config)).logits


def test_prefix_attention_mask_and_positions():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    full, positions = prefix_attention(3, mask)
    assert full.tolist() == [[1, 1, 1, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1, 1]]
    assert positions[0, 2:].tolist() == [3, 4]
    assert positions[1].tolist() == [3, 4, 5, 6]


def test_prefixed_forward_runs_gets_gradients_and_changes_logits(tiny_decoder):
    torch.manual_seed(1)
    lay = kv_layout(tiny_decoder.config)
    proj = PrefixProjector(32, lay)
    p = torch.randn(2, 3, 32, requires_grad=True)
    ids = torch.randint(2, tiny_decoder.config.vocab_size, (2, 6))
    mask = torch.ones_like(ids)
    logits = _prefixed_forward(tiny_decoder, proj(p), ids, mask)
    assert logits.shape == (2, 6, tiny_decoder.config.vocab_size)
    logits.logsumexp(-1).sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in proj.parameters())
    plain = tiny_decoder(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(logits, plain, atol=1e-4)


def test_mask_must_cover_the_prefix(tiny_decoder):
    """The trap: a mask over the input only gives silently different (wrong) logits."""
    torch.manual_seed(2)
    proj = PrefixProjector(32, kv_layout(tiny_decoder.config))
    kv = proj(torch.randn(2, 3, 32))
    ids = torch.randint(2, tiny_decoder.config.vocab_size, (2, 6))
    mask = torch.ones_like(ids)
    full, positions = prefix_attention(3, mask)
    right = tiny_decoder(input_ids=ids, attention_mask=full, position_ids=positions,
                         cache=prefix_cache(kv, tiny_decoder.config)).logits
    wrong = tiny_decoder(input_ids=ids, attention_mask=mask, position_ids=positions,
                         cache=prefix_cache(kv, tiny_decoder.config)).logits
    assert not torch.allclose(right, wrong, atol=1e-4)


def test_left_padding_with_prefix_matches_unpadded(tiny_decoder):
    torch.manual_seed(3)
    proj = PrefixProjector(32, kv_layout(tiny_decoder.config))
    kv = proj(torch.randn(1, 3, 32))
    ids = torch.randint(2, tiny_decoder.config.vocab_size, (1, 6))
    mask = torch.ones_like(ids)
    pad = tiny_decoder.config.pad_token_id
    padded_ids = torch.cat([torch.full((1, 4), pad), ids], dim=1)
    padded_mask = torch.cat([torch.zeros(1, 4, dtype=torch.long), mask], dim=1)
    with torch.no_grad():
        unpadded = _prefixed_forward(tiny_decoder, kv, ids, mask)
        padded = _prefixed_forward(tiny_decoder, kv, padded_ids, padded_mask)[:, 4:]
        full, _ = prefix_attention(3, padded_mask)
        no_positions = tiny_decoder(input_ids=padded_ids, attention_mask=full,
                                    cache=prefix_cache(kv, tiny_decoder.config)).logits[:, 4:]
    assert torch.allclose(padded, unpadded, atol=1e-5)
    # without the mask's positions the padded row is shifted: silently different logits
    assert not torch.allclose(no_positions, unpadded, atol=1e-5)


def test_prefix_cache_holds_the_given_tensors(tiny_decoder):
    lay = kv_layout(tiny_decoder.config)
    kv = PrefixProjector(32, lay)(torch.randn(2, 3, 32))
    cache = prefix_cache(kv, tiny_decoder.config)
    assert cache.get_seq_length() == 3
    assert torch.equal(cache.layers[0].keys, kv[0][0])
    assert torch.equal(cache.layers[1].values, kv[1][1])


@pytest.mark.parametrize("kv_mode", ["separate", "tied"])
def test_projector_positions_per_vector_are_adjacent_and_its_own(kv_mode):
    """`positions=3`: M vectors give 3M prefix positions; positions 3j..3j+2 come from p_j alone,
    and they differ from each other (not one position repeated)."""
    lay = KVLayout(n_layers=2, kv_heads=2, head_dim=8)
    proj = PrefixProjector(32, lay, kv=kv_mode, positions=3)
    p = torch.randn(2, 4, 32)
    q = p.clone()
    q[:, 2] += 1.0
    for (key, value), (key_q, _) in zip(proj(p), proj(q)):
        assert key.shape == value.shape == (2, 2, 12, 8)
        changed = (key != key_q).any(-1).any(1).any(0)  # per prefix position
        assert changed.tolist() == [False] * 6 + [True] * 3 + [False] * 3
        assert not torch.equal(key[:, :, 0], key[:, :, 1])
    with pytest.raises(ValueError, match="positions"):
        PrefixProjector(32, lay, positions=0)
