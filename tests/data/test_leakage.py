"""Role leakage between the training split and held-out splits."""

from __future__ import annotations

import logging

import pytest

from morpheus_pl.data.example import DataFormatError, DialogExample
from morpheus_pl.data.leakage import RoleLeakageError, check_role_leakage
from morpheus_pl.errors import ConfigError


def _example(role: str, sentence: str = "") -> DialogExample:
    persona = (sentence or f"i am person {role}", "i like tea")
    return DialogExample(persona, ("hi",), "hello", role, f"mem:{role}")


TRAIN = [_example(r) for r in ("r1", "r2", "r3", "r4", "r5", "r6")] + [_example("r1")]


def test_disjoint_splits_report_zero() -> None:
    held_out = {"val": [_example("v1"), _example("v2")], "test": [_example("t1")]}
    assert check_role_leakage(TRAIN, held_out) == {"val": 0, "test": 0}


def test_counts_roles_not_examples() -> None:
    held_out = {"test": [_example("r2"), _example("r2"), _example("t1")], "val": [_example("v")]}
    counts = check_role_leakage(TRAIN, held_out, on_leak="warn")
    assert counts == {"test": 1, "val": 0}


def test_leak_raises_with_split_count_examples_and_hint() -> None:
    held_out = {
        "val": [_example("v1")],
        "test": [_example("r2", "i love sailing"), _example("t9"), _example("r4")],
    }
    with pytest.raises(RoleLeakageError) as info:
        check_role_leakage(TRAIN, held_out)
    assert isinstance(info.value, DataFormatError)
    message = str(info.value)
    assert "split 'test'" in message and "'val'" not in message
    assert "2 of its 3 roles" in message
    assert "r2 ('i love sailing'" in message and "r4 ('i am person r4'" in message
    assert "dataset.on_role_leak=warn" in message


def test_error_names_at_most_three_roles() -> None:
    held_out = {"test": [_example(r) for r in ("r1", "r2", "r3", "r4", "r5")]}
    with pytest.raises(RoleLeakageError) as info:
        check_role_leakage(TRAIN, held_out)
    message = str(info.value)
    assert "5 of its 5 roles" in message
    assert sum(f"{r} (" in message for r in ("r1", "r2", "r3", "r4", "r5")) == 3


def test_warn_logs_and_returns(caplog: pytest.LogCaptureFixture) -> None:
    held_out = {"val": [_example("r3"), _example("r5")], "test": [_example("t1")]}
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        counts = check_role_leakage(TRAIN, held_out, on_leak="warn")
    assert counts == {"val": 2, "test": 0}
    records = [r for r in caplog.records if r.name == "morpheus_pl"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "split 'val'" in records[0].getMessage()
    assert "2 of its 2 roles" in records[0].getMessage()


def test_no_warning_without_leak(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        check_role_leakage(TRAIN, {"val": [_example("v1")]}, on_leak="warn")
    assert not [r for r in caplog.records if r.name == "morpheus_pl"]


@pytest.mark.parametrize("on_leak", ["ignore", "Error", ""])
def test_unknown_policy_raises_value_error(on_leak: str) -> None:
    with pytest.raises(ValueError, match="on_leak") as info:
        check_role_leakage(TRAIN, {"val": [_example("v1")]}, on_leak=on_leak)
    assert type(info.value) is ConfigError  # a setting's error, not a data (leakage) error
