"""ROUGE-L (Lin and Och, 2004) on cl100k token ids, as a `torchmetrics.Metric`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from morpheus_pl.metrics.state import check_lengths, mean_or_nan
from morpheus_pl.metrics.tokenize import metric_token_ids


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of `a` and `b`.

    Bit-parallel (Crochemore et al., 2001): bit i of `v` stands for b[i]; per element of `a`
    a constant number of integer operations on len(b)-bit python ints, O(len(a) * len(b) / 64).
    """
    positions: dict = {}
    for i, token in enumerate(b):
        positions[token] = positions.get(token, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        if match := positions.get(token):
            u = v & match
            v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge_l_pair(prediction: Sequence, reference: Sequence) -> tuple[float, float]:
    """(F-measure with β = 1, recall) of one pair, in [0, 1], as `rouge_score` computes them.

    precision = LCS / |prediction|, recall = LCS / |reference|, F = 2PR / (P + R) (0 if P + R = 0);
    an empty prediction or reference scores (0, 0).
    """
    if not prediction or not reference:
        return 0.0, 0.0
    lcs = lcs_length(prediction, reference)
    precision, recall = lcs / len(prediction), lcs / len(reference)
    if precision + recall == 0:
        return 0.0, 0.0
    return 2 * precision * recall / (precision + recall), recall


class RougeL(Metric):
    """ROUGE-L per pair on cl100k ids, averaged over pairs, ×100.

    `compute` returns {"rouge_l": mean F-measure (β = 1), "rouge_l_recall": mean LCS / |reference|
    (what the official MORPHEUS script reports)}; nan for both before any pair.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        zero = torch.tensor(0.0, dtype=torch.float64)
        self.add_state("fmeasure_sum", default=zero.clone(), dist_reduce_fx="sum")
        self.add_state("recall_sum", default=zero.clone(), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: list[str], targets: list[str]) -> None:
        check_lengths(preds, targets)
        scores = [
            rouge_l_pair(metric_token_ids(p), metric_token_ids(t)) for p, t in zip(preds, targets)
        ]
        self.fmeasure_sum += math.fsum(f for f, _ in scores)
        self.recall_sum += math.fsum(r for _, r in scores)
        self.count += len(scores)

    def compute(self) -> dict[str, Tensor]:
        count = self.count.item()
        return {
            "rouge_l": mean_or_nan(self, self.fmeasure_sum.item(), count, 100.0),
            "rouge_l_recall": mean_or_nan(self, self.recall_sum.item(), count, 100.0),
        }
