"""self-BLEU (sBLEU, lower is more diverse): BLEU of each prediction against the others.

Against all others it is nltk's multi-reference `sentence_bleu(others, prediction)`, without
the quadratic cost: the clipping count of a k-gram is its maximum count over the *other*
predictions, which is its maximum over all predictions unless this prediction alone holds that
maximum, then the second-highest count; the closest reference length comes from the sorted
lengths less this prediction's own.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from torch import Tensor
from torchmetrics import Metric

from morpheus_pl.errors import ConfigError
from morpheus_pl.metrics.bleu import bleu_from_counts, ngrams, sentence_bleu
from morpheus_pl.metrics.state import mean_or_nan, pack_rows, unpack_rows
from morpheus_pl.metrics.tokenize import metric_token_ids


def _closest_other_length(sorted_lengths: list[int], length: int) -> int:
    """nltk's closest reference length (ties to the shorter) among `sorted_lengths` less one
    occurrence of `length`, which must be in it."""
    lo, hi = bisect.bisect_left(sorted_lengths, length), bisect.bisect_right(sorted_lengths, length)
    if hi - lo > 1:
        return length
    neighbours = sorted_lengths[max(lo - 1, 0) : lo] + sorted_lengths[hi : hi + 1]
    return min(neighbours, key=lambda other: (abs(other - length), other))


def self_bleu_scores(rows: Sequence[Sequence[int]], n: int) -> list[float]:
    """Per row, BLEU-n (`bleu_from_counts`) against all other rows as references, in [0, 1].

    Equal to nltk `sentence_bleu(others, row, weights=(1/n,) * n)`, except that nltk's
    below-1e-150 values for a zero higher-order precision are 0 here. A lone row scores 0.
    """
    if len(rows) < 2:
        return [0.0] * len(rows)
    counts = [[Counter(ngrams(row, k)) for k in range(1, n + 1)] for row in rows]
    tops: list[dict[tuple[int, ...], list[int]]] = [{} for _ in range(n)]  # [max, holders, 2nd]
    for row_counts in counts:
        for top, counter in zip(tops, row_counts):
            for gram, count in counter.items():
                entry = top.setdefault(gram, [0, 0, 0])
                if count > entry[0]:
                    entry[:] = [count, 1, entry[0]]
                elif count == entry[0]:
                    entry[1] += 1
                elif count > entry[2]:
                    entry[2] = count
    sorted_lengths = sorted(len(row) for row in rows)
    scores = []
    for row, row_counts in zip(rows, counts):
        matched = []
        for top, counter in zip(tops, row_counts):
            matched.append(sum(
                top[gram][2] if count == top[gram][0] and top[gram][1] == 1 else count
                for gram, count in counter.items()
            ))
            if matched[-1] == 0:
                break
        closest = _closest_other_length(sorted_lengths, len(row))
        scores.append(bleu_from_counts(matched, len(row), closest) if all(matched) else 0.0)
    return scores


def random_partners(count: int, seed: int) -> list[int]:
    """For each of `count` rows the index of one other row, uniform and seeded (count >= 2)."""
    rng = random.Random(seed)
    partners = []
    for i in range(count):
        j = rng.randrange(count - 1)
        partners.append(j + (j >= i))
    return partners


def paired_self_bleu_scores(rows: Sequence[Sequence[int]], n: int, seed: int) -> list[float]:
    """Per row, `sentence_bleu` against one random other row (`random_partners`), as the
    official MORPHEUS script does. A lone row scores 0."""
    if len(rows) < 2:
        return [0.0] * len(rows)
    partners = random_partners(len(rows), seed)
    return [sentence_bleu(row, rows[j], n) for row, j in zip(rows, partners)]


class SelfBLEU(Metric):
    """self-BLEU-n of the predictions on cl100k ids: mean of the per-prediction BLEU, ×100.

    references="all": each prediction against all others (`self_bleu_scores`, order-free);
    references="random": against one seeded random other (`paired_self_bleu_scores`; depends on
    the order of the predictions, so under DDP on the gather order). Empty predictions and
    predictions shorter than n score 0 and count; a lone prediction gives 0; identical
    predictions of at least n tokens give 100; nan before any prediction. `targets` is ignored.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, n: int, references: Literal["all", "random"] = "all", seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if references not in ("all", "random"):
            raise ConfigError(f"references must be 'all' or 'random', got {references!r}")
        self.n, self.references, self.seed = n, references, seed
        self.add_state("preds", default=[], dist_reduce_fx="cat")

    def update(self, preds: list[str], targets: list[str] | None = None) -> None:
        self.preds.append(pack_rows(self, [metric_token_ids(p) for p in preds]))

    def compute(self) -> Tensor:
        rows = unpack_rows(self.preds)
        if self.references == "all":
            scores = self_bleu_scores(rows, self.n)
        else:
            scores = paired_self_bleu_scores(rows, self.n, self.seed)
        return mean_or_nan(self, math.fsum(scores), len(scores), 100.0)
