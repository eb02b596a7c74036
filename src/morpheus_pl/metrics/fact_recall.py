"""Fact recall of the picked codes: how much of a test persona the codes a system picked name,
counted in facts rather than codes. A code names the value most often stated by the test persona
segments it is the true (nearest, Eq. 8) code of, so a code of the right fact in another sentence
template counts, where code recall counts it as a miss. Only on data that records facts
(`fact_options`: the synthetic and zoo worlds). Written here: no library scores a set of codes by
the facts they stand for.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from morpheus_pl.data.persona import split_persona
from morpheus_pl.metrics.overlap import mentions


def fact_recall_scores(rows: list[dict], fact_options: Iterable[Sequence[str] | None], separator: str
                       ) -> dict[str, float]:
    """`fact_recall`: the share of a test persona's facts that the picked codes name, mean over
    the rows; `fact_recall_majority`: the same for always picking the M facts most frequent
    among the test personas, one per kind (a kind: one of the examples' `fact_options`, the
    values a value is among; ties alphabetical), what a predictor that ignores the history
    reaches. Empty where the rows have no codes or the data records no facts."""
    kind_of = {value: frozenset(options) for options in fact_options for value in options or ()}
    if not kind_of or not rows or rows[0]["predicted_codes"] is None:
        return {}
    seen: dict[str, set[str]] = {}

    def named(text: str) -> set[str]:
        if text not in seen:
            seen[text] = {value for value in kind_of if mentions(text, value)}
        return seen[text]

    m = len(rows[0]["gold_codes"])
    stated: dict[int, Counter] = defaultdict(Counter)
    personas = []
    for row in rows:
        for segment, code in zip(split_persona(row["persona"], separator, m), row["gold_codes"]):
            stated[code].update(named(segment))
        personas.append(set().union(*map(named, row["persona"])))
    code_fact = {code: min(counts, key=lambda v: (-counts[v], v)) for code, counts in stated.items() if counts}
    frequency = Counter(value for persona in personas for value in persona)
    frequent: dict[frozenset, str] = {}
    for value in sorted(frequency, key=lambda v: (-frequency[v], v)):
        if len(frequent) < m:
            frequent.setdefault(kind_of[value], value)
    picked = [{code_fact[c] for c in row["predicted_codes"] if c in code_fact} for row in rows]
    return {"fact_recall": _recall(personas, picked),
            "fact_recall_majority": _recall(personas, [set(frequent.values())] * len(rows))}


def _recall(personas: list[set[str]], chosen: list[set[str]]) -> float:
    """Mean share of each persona's facts among its chosen facts (personas naming none skipped)."""
    shares = [len(persona & facts) / len(persona) for persona, facts in zip(personas, chosen) if persona]
    return statistics.fmean(shares) if shares else float("nan")
