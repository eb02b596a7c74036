"""Con.Score and Coh-Con.Score (paper §4.3) from the consistency scorer's predicted labels.

Labels (scorer/triples.py): 2 consistent and coherent, 1 consistent only, 0 inconsistent.
Con.Score = 100 × share labelled 1 or 2; Coh-Con.Score = 100 × share labelled 2; nan before any
sample. Label counts are "sum" states, so the scores are exact under DDP.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from morpheus_pl.metrics.state import mean_or_nan
from morpheus_pl.scorer.triples import CONSISTENT_COHERENT, CONSISTENT_ONLY

NUM_LABELS = 3


class ConsistencyScore(Metric):
    """`compute()` -> {"con_score": .., "coh_con_score": ..}, both ×100."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("label_counts", default=torch.zeros(NUM_LABELS, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, labels: Tensor) -> None:
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.device).flatten()
        if labels.numel() and not ((labels >= 0) & (labels < NUM_LABELS)).all():
            raise ValueError(f"scorer labels must be 0, 1 or 2, got {labels.unique().tolist()}")
        self.label_counts += torch.bincount(labels, minlength=NUM_LABELS)

    def compute(self) -> dict[str, Tensor]:
        counts = self.label_counts.tolist()
        total = sum(counts)
        consistent = counts[CONSISTENT_ONLY] + counts[CONSISTENT_COHERENT]
        return {"con_score": mean_or_nan(self, consistent, total, 100.0),
                "coh_con_score": mean_or_nan(self, counts[CONSISTENT_COHERENT], total, 100.0)}
