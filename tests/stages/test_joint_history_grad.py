"""`predictor.history_grad`: whether L_C (Eq. 13) reaches the decoder through the history pass."""

from __future__ import annotations

import pytest
import torch

from morpheus_pl.modules.code_predictor import code_loss
from morpheus_pl.pipeline import build_stage


@pytest.mark.parametrize("history_grad", [True, False])
def test_code_loss_reaches_the_decoder_only_with_history_grad(tiny_compose, tiny_data, history_grad):
    dm, tok_dir = tiny_data
    dm.setup("fit")
    stage = build_stage(tiny_compose(f"predictor.history_grad={history_grad}"), "joint", tok_dir).train()
    batch = next(iter(dm.train_dataloader()))
    k = torch.randint(0, stage.codebook.num_codes, (batch["history_ids"].shape[0], stage.predictor_cfg["num_slots"]))
    code_loss(stage.code_logits(batch), k).backward()
    decoder_grads = [p.grad for p in stage.decoder.parameters() if p.grad is not None]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stage.predictor.parameters())
    if history_grad:
        assert decoder_grads and sum(float(g.abs().sum()) for g in decoder_grads) > 0
    else:
        assert decoder_grads == []
    with torch.no_grad():  # the same codes either way: only the gradient differs
        reference = build_stage(tiny_compose(), "joint", tok_dir).eval()
        assert torch.allclose(stage.eval().code_logits(batch), reference.code_logits(batch), atol=1e-6)
