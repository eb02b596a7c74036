"""The joint stage says how many codes are in use when it ends, and warns on a collapse."""

from __future__ import annotations

import logging

import pytest
import torch

from morpheus_pl.pipeline import build_stage


@pytest.mark.parametrize("usage_of_live_codes, expect_warning", [([50.0], True),
                                                                 ([25.0, 25.0], False)])
def test_end_of_training_reports_codes_in_use(tiny_compose, tiny_data, caplog,
                                              usage_of_live_codes, expect_warning):
    _, tok_dir = tiny_data
    stage = build_stage(tiny_compose(), "joint", tok_dir)
    with torch.no_grad():
        stage.codebook.usage.zero_()
        stage.codebook.usage[: len(usage_of_live_codes)] = torch.tensor(usage_of_live_codes)
    with caplog.at_level(logging.INFO, logger="morpheus_pl"):
        stage.on_train_end()
    n = stage.codebook.num_codes
    assert f"joint: {len(usage_of_live_codes)} of {n} codes in use at the end of training" in caplog.text
    assert ("the codebook collapsed" in caplog.text) == expect_warning
