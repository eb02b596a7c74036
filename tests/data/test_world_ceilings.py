"""The kind's-marginal reference, worked by hand."""

from __future__ import annotations

from morpheus_pl.data.world_ceilings import kind_marginal_accuracy, persona_recall


def _rec(fact: str, options: list[str]) -> dict:
    return {"fact": fact, "fact_options": options}


def test_kind_marginal_names_each_kinds_most_frequent_training_value() -> None:
    colours, pets = ["red", "blue", "green"], ["cat", "dog"]
    train = [_rec("blue", colours), _rec("blue", colours), _rec("red", colours),
             _rec("dog", pets), _rec("cat", pets[::-1]), _rec("dog", pets)]  # a kind in any order
    # predicted: blue for colours, dog for pets (2 of 3); a kind unseen in training: its first option
    test = [_rec("blue", colours), _rec("red", colours), _rec("dog", pets), _rec("cat", pets),
            _rec("x", ["x", "y"]), _rec("y", ["x", "y"])]
    assert kind_marginal_accuracy(train, test) == 3 / 6
    assert kind_marginal_accuracy(train, []) == 0.0


def _dialogue(facts: dict[str, str], asked: str, revealed: dict[str, str]) -> dict:
    return {"facts": facts, "asked": asked, "revealed": revealed}


def test_persona_recall_from_the_history_against_the_most_frequent_facts_by_hand() -> None:
    """Training: A1 B1 twice with C1 revealed, A2 B2 once with C2 revealed, A always asked.
    With C2 revealed, A2 scores log(1/3) + 2 log(1.1/1.2) = -1.27 against A1's
    log(2/3) + log(2.1/2.2) + log(0.1/2.2) = -3.54 (likewise B): the model names A2 B2; with
    C1 it names A1 B1. The most frequent facts are A1 B1 for every persona."""
    train = [_dialogue({"A": "1", "B": "1"}, "A", {"C": "1"})] * 2 + [
        _dialogue({"A": "2", "B": "2"}, "A", {"C": "2"})]
    test = [_dialogue({"A": "2", "B": "2"}, "A", {"C": "2"}),   # model 2 of 2, frequent 0 of 2
            _dialogue({"A": "1", "B": "2"}, "A", {"C": "1"})]   # model 1 of 2, frequent 1 of 2
    assert persona_recall(train, test) == {"history": (1 + 0.5) / 2, "most_frequent": (0 + 0.5) / 2}
    assert persona_recall(train, []) == {"history": 0.0, "most_frequent": 0.0}


def test_persona_recall_picks_one_value_per_kind() -> None:
    """A1 and A2 are the two most frequent facts, but a persona states one A: the pick for a
    persona of two is A1 (lower value on the tie) and B1, not A1 and A2."""
    train = [_dialogue({"A": "1", "B": "1"}, "A", {}), _dialogue({"A": "1", "B": "2"}, "A", {}),
             _dialogue({"A": "2", "B": "3"}, "A", {}), _dialogue({"A": "2", "C": "1"}, "A", {})]
    assert persona_recall(train, [_dialogue({"A": "1", "B": "1"}, "A", {})])["most_frequent"] == 1.0
