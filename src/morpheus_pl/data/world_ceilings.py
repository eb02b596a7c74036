"""Trivial estimators on the synthetic worlds: what a system can reach from the same data.

The count models are naive Bayes that predict the asked fact from the facts the history
reveals (docs/data.md, "What a history-only system can reach"): `history` counts
co-occurrences only in training dialogues (what a decoder trained without persona sees),
`persona` counts them in training personas (what the codebook route sees: every pair of a
role's persona facts). The kind's marginal ignores the history: the asked kind's most frequent
training value (where pair counts are sparse it can beat the count model). `persona_recall`
asks the same of the whole persona: how much of it the history identifies.
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


def persona_recall(train: list[dict], test: list[dict]) -> dict[str, float]:
    """How much of the persona the history identifies: the mean share of a test persona's
    stated facts (`facts`) among the M facts, one per kind, that a naive Bayes over the history
    (the facts it reveals and the asked kind) ranks highest, M the persona's length; and the
    same share for the M facts most frequent in training personas (what ignoring the history
    reaches). The fact-level counterpart of a code predictor's `code_recall` and
    `code_recall_majority` (docs/metrics.md). Ties go to the lower (kind, value)."""
    singles: Counter = Counter()
    pairs: Counter = Counter()
    for rec in train:
        for fact in rec["facts"].items():
            singles[fact] += 1
            for feature in _history_features(rec):
                pairs[(fact, feature)] += 1
    candidates = sorted(singles)

    def log_score(fact: tuple[str, str], features: list[tuple]) -> float:
        n = singles[fact]
        return math.log(n / len(train)) + sum(
            math.log((pairs[(fact, feature)] + 0.1) / (n + 0.2)) for feature in features)

    frequent = sorted(candidates, key=lambda fact: -singles[fact])
    history = most_frequent = 0.0
    for rec in test:
        stated, m = set(rec["facts"].items()), len(rec["facts"])
        features = _history_features(rec)
        ranked = sorted(candidates, key=lambda fact: -log_score(fact, features))
        history += len(stated & _one_per_kind(ranked, m)) / m
        most_frequent += len(stated & _one_per_kind(frequent, m)) / m
    n_test = max(len(test), 1)
    return {"history": history / n_test, "most_frequent": most_frequent / n_test}


def _history_features(rec: dict) -> list[tuple]:
    return [("asked", rec["asked"]), *(("revealed", kind, value) for kind, value in rec["revealed"].items())]


def _one_per_kind(ranked: list[tuple[str, str]], m: int) -> set[tuple[str, str]]:
    """The first `m` facts of `ranked` whose kind is not taken yet (a persona states one value
    per kind)."""
    picked: dict[str, tuple[str, str]] = {}
    for kind, value in ranked:
        if len(picked) == m:
            break
        picked.setdefault(kind, (kind, value))
    return set(picked.values())
