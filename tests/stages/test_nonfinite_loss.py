"""A NaN or Inf in any loss stops `Trainer.fit` at that step with a message naming the loss."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from morpheus_pl.pipeline import build_stage

BAD_STEP = 2


@pytest.mark.parametrize(("loss_name", "bad_value"), [
    ("contrastive", float("nan")),
    ("vq", float("inf")),
    ("gen", float("-inf")),
])
def test_first_non_finite_loss_stops_the_run_naming_loss_and_step(tiny_cfg, tiny_data, loss_name,
                                                                   bad_value):
    dm, tok_dir = tiny_data
    module = build_stage(tiny_cfg, "joint", tok_dir)
    real_losses = module.losses
    calls = []

    def losses(batch: dict) -> dict[str, torch.Tensor]:
        out = real_losses(batch)
        if len(calls) == BAD_STEP:
            out[loss_name] = out[loss_name] * bad_value
        calls.append(module.global_step)
        return out

    module.losses = losses
    trainer = L.Trainer(max_steps=BAD_STEP + 5, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    with pytest.raises(FloatingPointError) as info:
        trainer.fit(module, datamodule=dm)
    message = str(info.value)
    assert f"loss {loss_name!r} is {bad_value}" in message
    assert f"at step {BAD_STEP} (train)" in message
    assert "JointTrainingStage" in message
    assert calls == list(range(BAD_STEP + 1))  # no step after the bad one
    assert trainer.global_step == BAD_STEP  # the bad step made no optimiser update
    assert all(torch.isfinite(p).all() for p in module.parameters())
