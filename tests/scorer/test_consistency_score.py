"""Con.Score / Coh-Con.Score from scorer labels: hand-worked values, merging, bad labels."""

from __future__ import annotations

import math

import pytest
import torch

from morpheus_pl.scorer.metric import ConsistencyScore


def test_hand_worked_shares() -> None:
    metric = ConsistencyScore()
    metric.update(torch.tensor([2, 1, 0, 2]))
    metric.update([0, 2])
    scores = metric.compute()
    # labels 2,1,0,2,0,2: consistent (1 or 2) 4 of 6, coherent and consistent (2) 3 of 6
    assert scores["con_score"].item() == pytest.approx(100 * 4 / 6)
    assert scores["coh_con_score"].item() == pytest.approx(50.0)


def test_merged_states_equal_one_pass() -> None:
    left, right, whole = ConsistencyScore(), ConsistencyScore(), ConsistencyScore()
    left.update([2, 0])
    right.update([1, 1])
    whole.update([2, 0, 1, 1])
    left.merge_state(right)
    assert {k: v.item() for k, v in left.compute().items()} == {"con_score": 75.0,
                                                                "coh_con_score": 25.0}
    assert {k: v.item() for k, v in whole.compute().items()} == {"con_score": 75.0,
                                                                 "coh_con_score": 25.0}


def test_no_sample_is_nan_not_zero() -> None:
    with pytest.warns(UserWarning, match="before the ``update``"):
        scores = ConsistencyScore().compute()
    assert math.isnan(scores["con_score"]) and math.isnan(scores["coh_con_score"])


def test_label_outside_0_to_2_is_an_error() -> None:
    with pytest.raises(ValueError, match="must be 0, 1 or 2, got \\[1, 3\\]"):
        ConsistencyScore().update([1, 3])
