"""Segment reconstruction (stage 1's auxiliary loss): each segment decoded under its own prefix."""

import torch
import torch.nn.functional as F

from morpheus_pl.modules.prefix_projector import PrefixProjector, kv_layout, prefix_cache
from morpheus_pl.modules.segment_reconstruction import segment_reconstruction_loss


def _segments(decoder, batch: int = 2, m: int = 3, width: int = 6):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, decoder.config.vocab_size, (batch * m, width), generator=g)
    lengths = torch.tensor([6, 4, 5, 2, 6, 3])[: batch * m]
    mask = (torch.arange(width)[None] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, decoder.config.pad_token_id)
    return ids, mask, lengths


def test_loss_is_the_mean_token_nll_of_each_segment_under_its_own_prefix(tiny_decoder):
    """Oracle: every segment run alone, unpadded, after a cache holding only its own vector's
    prefix; the loss is the mean NLL over all their tokens but the first."""
    ids, mask, lengths = _segments(tiny_decoder)
    d = 16
    projector = PrefixProjector(d, kv_layout(tiny_decoder.config), positions=2)
    p = torch.randn(2, 3, d, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        loss = segment_reconstruction_loss(tiny_decoder, projector, p, ids, mask)
        nll = []
        for row, vector in enumerate(p.reshape(-1, d)):
            kv = projector(vector.view(1, 1, d))
            tokens = ids[row : row + 1, : lengths[row]]
            n = tokens.shape[1]
            out = tiny_decoder(input_ids=tokens, attention_mask=torch.ones(1, 2 + n, dtype=torch.long),
                               position_ids=torch.arange(2, 2 + n)[None],
                               cache=prefix_cache(kv, tiny_decoder.config))
            nll.append(F.cross_entropy(out.logits[0, :-1].float(), tokens[0, 1:], reduction="none"))
    assert torch.allclose(loss, torch.cat(nll).mean(), atol=1e-5)


def test_loss_depends_on_the_segments_own_vector_and_trains_encoder_and_projector(tiny_decoder):
    ids, mask, _ = _segments(tiny_decoder)
    projector = PrefixProjector(16, kv_layout(tiny_decoder.config))
    p = torch.randn(2, 3, 16, requires_grad=True)
    loss = segment_reconstruction_loss(tiny_decoder, projector, p, ids, mask)
    loss.backward()
    assert p.grad.abs().sum(-1).gt(0).all()  # every segment's vector gets a gradient
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in projector.parameters())
    with torch.no_grad():  # the prefix is the segment's own: swapping vectors changes the loss
        swapped = segment_reconstruction_loss(tiny_decoder, projector, p.flip(1), ids, mask)
    assert not torch.allclose(swapped, loss.detach(), atol=1e-5)
