"""The kind's-marginal reference, worked by hand."""

from __future__ import annotations

from morpheus_pl.data.world_ceilings import kind_marginal_accuracy


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
