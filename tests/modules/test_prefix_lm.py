"""The decoder under a prefix: response NLL (Eq. 2/11) and the history state c (Eq. 12)."""

import torch
import torch.nn.functional as F

from morpheus_pl.modules.prefix_lm import history_state, prefix_lm_loss
from morpheus_pl.modules.prefix_projector import PrefixProjector, kv_layout


def _batch(decoder):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, decoder.config.vocab_size, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding in row 1
    ids[1, 7:] = decoder.config.pad_token_id
    labels = torch.full_like(ids, -100)
    labels[0, 5:9] = ids[0, 5:9]  # response tokens only
    labels[1, 4:7] = ids[1, 4:7]
    return ids, mask, labels


def test_loss_without_prefix_is_nll_of_labelled_tokens(tiny_decoder):
    ids, mask, labels = _batch(tiny_decoder)
    with torch.no_grad():
        loss = prefix_lm_loss(tiny_decoder, ids, mask, labels)
        logits = tiny_decoder(input_ids=ids, attention_mask=mask).logits
    logp = F.log_softmax(logits[:, :-1].float(), -1)
    target = labels[:, 1:]
    picked = [-logp[b, t, target[b, t]] for b in range(2) for t in range(8) if target[b, t] != -100]
    assert len(picked) == 7
    assert torch.allclose(loss, torch.stack(picked).mean(), atol=1e-5)
    # unlabelled tokens do not count: labelling everything gives another value
    all_labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    with torch.no_grad():
        assert not torch.allclose(prefix_lm_loss(tiny_decoder, ids, mask, all_labels), loss, atol=1e-4)


def test_response_logits_only_match_the_full_lm_loss_and_its_gradients(tiny_decoder):
    """The LM head runs on the positions before labelled tokens only; loss and gradients equal
    those of the decoder's own full-logits loss (HF `labels=`)."""
    ids, mask, labels = _batch(tiny_decoder)
    head_positions = []
    hook = tiny_decoder.get_output_embeddings().register_forward_hook(
        lambda module, args, out: head_positions.append(args[0].shape[1]))
    try:
        loss = prefix_lm_loss(tiny_decoder, ids, mask, labels)
    finally:
        hook.remove()
    assert head_positions == [5]  # predictions of positions 4..8 of 9 (the union of both rows)
    ours = torch.autograd.grad(loss, list(tiny_decoder.parameters()))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    reference = tiny_decoder(input_ids=ids, attention_mask=mask, position_ids=positions, labels=labels).loss
    theirs = torch.autograd.grad(reference, list(tiny_decoder.parameters()))
    assert torch.allclose(loss, reference, atol=1e-6)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6)


def test_loss_with_prefix_differs_and_reaches_the_prefix(tiny_decoder):
    ids, mask, labels = _batch(tiny_decoder)
    torch.manual_seed(1)
    proj = PrefixProjector(32, kv_layout(tiny_decoder.config))
    p = torch.randn(2, 3, 32, requires_grad=True)
    loss = prefix_lm_loss(tiny_decoder, ids, mask, labels, proj(p))
    loss.backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    with torch.no_grad():
        assert not torch.allclose(loss, prefix_lm_loss(tiny_decoder, ids, mask, labels), atol=1e-4)


def test_history_state_is_last_real_token_and_ignores_left_padding(tiny_decoder):
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(2, tiny_decoder.config.vocab_size, (1, 6), generator=g)
    mask = torch.ones_like(ids)
    pad = tiny_decoder.config.pad_token_id
    with torch.no_grad():
        c = history_state(tiny_decoder, ids, mask)
        expected = tiny_decoder.base_model(input_ids=ids).last_hidden_state[:, -1]
        # two rows, the shorter one left-padded
        longer = torch.randint(2, tiny_decoder.config.vocab_size, (1, 9), generator=g)
        batch_ids = torch.cat([torch.cat([torch.full((1, 3), pad), ids], 1), longer])
        batch_mask = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), mask], 1),
                                torch.ones(1, 9, dtype=torch.long)])
        c_batch = history_state(tiny_decoder, batch_ids, batch_mask)
        c_longer = history_state(tiny_decoder, longer, torch.ones_like(longer))
    assert c.shape == (1, 32)
    assert torch.allclose(c, expected, atol=1e-5)
    assert torch.allclose(c_batch[0], c[0], atol=1e-5)
    assert torch.allclose(c_batch[1], c_longer[0], atol=1e-5)
    assert not torch.allclose(c_batch[0], c_batch[1], atol=1e-3)
    # not just any state: the second-to-last token's differs
    with torch.no_grad():
        second_last = tiny_decoder.base_model(input_ids=ids).last_hidden_state[:, -2]
    assert not torch.allclose(c, second_last, atol=1e-3)


def test_right_padded_rotates_left_padding_away() -> None:
    from morpheus_pl.modules.prefix_lm import right_padded

    ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 4], [0, 3, 2, 1]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])
    got_ids, got_mask = right_padded(ids, mask)
    assert got_ids.tolist() == [[5, 6, 0, 0], [7, 8, 9, 4], [3, 2, 1, 0]]
    assert got_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]]


def test_history_state_gradient_ignores_left_padding(tiny_decoder):
    """The gradient reaching the decoder from c is the same padded or not (no padding query
    contributes: those rows are moved to the end, where causal attention sees real keys)."""
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(2, tiny_decoder.config.vocab_size, (1, 5), generator=g)
    pad = tiny_decoder.config.pad_token_id
    padded = torch.cat([torch.full((1, 4), pad), ids], 1)
    padded_mask = torch.cat([torch.zeros(1, 4, dtype=torch.long), torch.ones_like(ids)], 1)
    weight = tiny_decoder.get_input_embeddings().weight
    grads = []
    for x, m in ((ids, torch.ones_like(ids)), (padded, padded_mask)):
        tiny_decoder.zero_grad()
        history_state(tiny_decoder, x, m).sum().backward()
        grads.append(weight.grad.clone())
    assert torch.isfinite(grads[1]).all()
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
