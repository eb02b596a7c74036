"""Fact recall of the picked codes on a hand-worked case: codes name facts through the test
personas' true codes; the reference picks the most frequent facts, one per kind."""

from __future__ import annotations

import math

import pytest

from morpheus_pl.metrics.fact_recall import fact_recall_scores

KINDS = (("red", "blue"), ("pasta", "rice"), ("cat", "dog"))


def _row(persona, gold, picked):
    return {"system": "morpheus", "persona": persona, "gold_codes": gold, "predicted_codes": picked}


ROWS = [
    _row(["i like red.", "i eat rice."], [1, 5], [3, 4]),  # 3, 4 are nobody's code: 0 of 2
    _row(["i eat rice.", "red, always."], [5, 8], [1, 4]),  # code 1 is red in another template: 1 of 2
    _row(["i like blue.", "i eat pasta."], [2, 6], [1, 6]),  # red, pasta: 1 of 2
    _row(["i like blue.", "my cat is old."], [2, 7], [2, 5]),  # blue, rice: 1 of 2
]


def test_codes_name_facts_and_the_reference_takes_one_fact_per_kind() -> None:
    scores = fact_recall_scores(ROWS, KINDS, separator=".")
    assert scores["fact_recall"] == pytest.approx((0 + 0.5 + 0.5 + 0.5) / 4)
    # frequencies: blue 2, red 2, rice 2, cat 1, pasta 1; blue before red (tie, alphabetical),
    # red then skipped (colour taken): {blue, rice} finds 1 of 2 in every persona
    assert scores["fact_recall_majority"] == pytest.approx(0.5)


def test_a_code_names_the_fact_most_of_its_segments_state() -> None:
    """Code 1 holds red twice and blue once: it names red (and the picks of rows naming blue miss)."""
    rows = [_row(["i like red.", "i eat rice."], [1, 5], [1, 5]),
            _row(["red, always.", "i eat rice."], [1, 5], [1, 5]),
            _row(["i like blue.", "i eat pasta."], [1, 6], [1, 6])]
    assert fact_recall_scores(rows, KINDS, ".")["fact_recall"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_nothing_without_facts_or_codes_and_nan_without_a_known_fact() -> None:
    assert fact_recall_scores(ROWS, [None, None], ".") == {}  # examples without facts
    assert fact_recall_scores([{**ROWS[0], "predicted_codes": None}], KINDS, ".") == {}
    unknown = fact_recall_scores([_row(["i like green.", "i eat corn."], [1, 2], [1, 2])], KINDS, ".")
    assert math.isnan(unknown["fact_recall"]) and math.isnan(unknown["fact_recall_majority"])
