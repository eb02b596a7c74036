"""Trivial estimators on the synthetic worlds: what a system can reach from the same data.

The count models are naive Bayes that predict the asked fact from the facts the history
reveals (docs/data.md, "What a history-only system can reach"): `history` counts
co-occurrences only in training dialogues (what a decoder trained without persona sees),
`persona` counts them in training personas (what the codebook route sees: every pair of a
role's persona facts). The kind's marginal ignores the history: the asked kind's most frequent
training value (where pair counts are sparse it can beat the count model).
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import permutations


def _predict(pairs: Counter, singles: Counter, record: dict, options: list[str]) -> str:
    asked = record["asked"]

    def log_score(value: str) -> float:
        n = singles[(asked, value)]
        score = math.log(n + 1.0)
        for cat, seen in record["revealed"].items():
            score += math.log((pairs[(asked, value, cat, seen)] + 0.1) / (n + 0.1 * len(options)))
        return score

    return max(options, key=log_score)


def count_model_accuracy(train: list[dict], test: list[dict], source: str) -> float:
    """Accuracy on `test` of a count model fitted on `train` dialogues or personas."""
    pairs: Counter = Counter()
    singles: Counter = Counter()
    if source == "history":
        for rec in train:
            singles[(rec["asked"], rec["fact"])] += 1
            for cat, seen in rec["revealed"].items():
                pairs[(rec["asked"], rec["fact"], cat, seen)] += 1
    elif source == "persona":
        roles = {rec["role"]: rec["facts"] for rec in train}
        for facts in roles.values():
            for cat, value in facts.items():
                singles[(cat, value)] += 1
            for (c1, v1), (c2, v2) in permutations(facts.items(), 2):
                pairs[(c1, v1, c2, v2)] += 1
    else:
        raise ValueError(f"count model source must be 'history' or 'persona', got {source!r}")
    hits = sum(_predict(pairs, singles, r, r["fact_options"]) == r["fact"] for r in test)
    return hits / max(len(test), 1)


def kind_marginal_accuracy(train: list[dict], test: list[dict]) -> float:
    """Accuracy on `test` of naming the asked kind's most frequent value in `train` replies.
    Needs only `fact` and `fact_options` (a kind is its set of options); ties go to the option
    listed first."""
    counts: Counter = Counter((frozenset(rec["fact_options"]), rec["fact"]) for rec in train)

    def predict(rec: dict) -> str:
        kind = frozenset(rec["fact_options"])
        return max(rec["fact_options"], key=lambda value: counts[(kind, value)])

    return sum(predict(rec) == rec["fact"] for rec in test) / max(len(test), 1)
