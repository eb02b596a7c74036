"""encoder.pooling=sif: the token weights are counted on the training personas before the first
stage that encodes personas, and every later stage gets them with its checkpoint."""

from __future__ import annotations

import torch

from morpheus_pl.modules.persona_encoder import sif_weights
from morpheus_pl.pipeline import train_stage


def _encoder_buffers(cfg, stage, dm, tok_dir):
    state = torch.load(train_stage(cfg, stage, dm, tok_dir), map_location="cpu",
                       weights_only=True)["state_dict"]
    return state["persona_encoder.token_weights"], state["persona_encoder.token_weights_fitted"]


def test_the_weights_are_counted_once_and_handed_on(tiny_compose, tiny_data):
    dm, tok_dir = tiny_data
    cfg = tiny_compose("encoder.pooling=sif", "seed=23")
    weights, fitted = _encoder_buffers(cfg, "role_awareness", dm, tok_dir)
    counted = sif_weights(dm.persona_segment_tokens(), weights.numel())
    assert bool(fitted) and torch.allclose(weights, counted)
    assert float(counted.min()) < 0.1  # frequent template tokens are down-weighted
    for stage in ("codebook_init", "joint"):
        weights, fitted = _encoder_buffers(cfg, stage, dm, tok_dir)
        assert bool(fitted) and torch.equal(weights, counted), stage


def test_without_role_awareness_the_codebook_stage_counts_them(tiny_compose, tiny_data):
    dm, tok_dir = tiny_data
    cfg = tiny_compose("encoder.pooling=sif", "ablation=no_ra", "seed=23")
    weights, fitted = _encoder_buffers(cfg, "codebook_init", dm, tok_dir)
    assert bool(fitted)
    assert torch.allclose(weights, sif_weights(dm.persona_segment_tokens(), weights.numel()))
