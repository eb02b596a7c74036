"""Persona segmentation (Eq. 3) and left truncation of the history."""

from __future__ import annotations

import random

import pytest

from morpheus_pl.data.persona import split_persona, split_sentences, truncate_history_left


def test_short_persona_is_padded_by_cycling_in_order() -> None:
    assert split_persona(["a", "b"], ".", 5) == ["a", "b", "a", "b", "a"]


def test_long_persona_is_truncated() -> None:
    persona = [f"fact {i}" for i in range(7)]
    assert split_persona(persona, ".", 3) == ["fact 0", "fact 1", "fact 2"]
    assert split_persona(persona, ".", 1) == ["fact 0"]


def test_sentences_are_split_further_and_stripped() -> None:
    persona = ["i like dogs. i have a cat.", "  i am 5.5 ft tall  ", "i ski.i swim"]
    assert split_persona(persona, ".", 6) == [
        "i like dogs", "i have a cat", "i am 5.5 ft tall", "i ski", "i swim", "i like dogs",
    ]


def test_chinese_separator_and_string_input() -> None:
    assert split_persona("我喜欢画画。我有一只猫。", "。", 3) == ["我喜欢画画", "我有一只猫", "我喜欢画画"]
    assert split_persona(["我身高1.8米"], "。", 2) == ["我身高1.8米", "我身高1.8米"]


def test_split_sentences_keeps_decimals_and_drops_empties() -> None:
    assert split_sentences("version 2.0 is out.. . ok.", ".") == ["version 2.0 is out", "ok"]
    assert split_sentences("i am 5. 5 is my age", ".") == ["i am 5", "5 is my age"]
    with pytest.raises(ValueError, match="separator"):
        split_sentences("a.b", "")


@pytest.mark.parametrize("persona", [[], [""], ["  ", " . "], "", "..."])
def test_empty_persona_raises(persona) -> None:
    with pytest.raises(ValueError, match="empty persona"):
        split_persona(persona, ".", 5)


@pytest.mark.parametrize("num_segments", [0, -3])
def test_bad_num_segments_raises(num_segments: int) -> None:
    with pytest.raises(ValueError, match="num_segments"):
        split_persona(["a"], ".", num_segments)


def test_truncation_keeps_most_recent_whole_turns() -> None:
    turns = [[1, 2], [3, 4, 5], [6]]
    assert truncate_history_left(turns, 6) == turns
    assert truncate_history_left(turns, 5) == [[3, 4, 5], [6]]
    assert truncate_history_left(turns, 4) == [[3, 4, 5], [6]]


def test_truncation_keeps_a_contiguous_suffix() -> None:
    assert truncate_history_left([[1, 2], [3, 4, 5], [6]], 3) == [[6]]


def test_last_turn_longer_than_budget_keeps_its_tail() -> None:
    assert truncate_history_left([[1], [2, 3, 4, 5, 6]], 3) == [[4, 5, 6]]
    assert truncate_history_left([[7, 8, 9]], 1) == [[9]]


def test_truncation_edge_cases() -> None:
    assert truncate_history_left([], 10) == []
    assert truncate_history_left([[1, 2]], 0) == []
    with pytest.raises(ValueError, match="max_tokens"):
        truncate_history_left([[1]], -1)


def test_truncation_does_not_alias_the_input() -> None:
    turns = [[1, 2], [3]]
    kept = truncate_history_left(turns, 10)
    kept[0].append(99)
    assert turns == [[1, 2], [3]]


def test_truncation_never_exceeds_budget_and_is_a_suffix() -> None:
    rng = random.Random(0)
    for _ in range(500):
        turns = [[rng.randrange(100) for _ in range(rng.randrange(0, 12))]
                 for _ in range(rng.randrange(0, 8))]
        budget = rng.randrange(0, 40)
        kept = truncate_history_left(turns, budget)
        assert sum(len(t) for t in kept) <= budget
        flat_kept = [tok for turn in kept for tok in turn]
        flat_all = [tok for turn in turns for tok in turn]
        assert flat_kept == flat_all[len(flat_all) - len(flat_kept):]
        if sum(len(t) for t in turns) <= budget:
            assert kept == turns
