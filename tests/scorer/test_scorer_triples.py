"""Scorer triples: one per label per example, built as the paper describes, deterministic."""

from __future__ import annotations

import pytest

from morpheus_pl.data.example import DialogExample
from morpheus_pl.scorer.triples import (
    CONSISTENT_COHERENT,
    CONSISTENT_ONLY,
    INCONSISTENT,
    ConsistencyDataModule,
    consistency_triples,
)


def _ex(role: str, turn: int, response: str) -> DialogExample:
    return DialogExample((f"i am {role}.", "i like tea."), (f"{role} question {turn}?",), response,
                         role, f"mem:{role}:{turn}")


# roles a and b have two examples each, c has one
EXAMPLES = [_ex("a", 0, "a says zero"), _ex("a", 1, "a says one"), _ex("b", 0, "b says zero"),
            _ex("b", 1, "b says one"), _ex("c", 0, "c says zero")]
ROLE_OF_RESPONSE = {ex.response: ex.role for ex in EXAMPLES}
CONTEXT_ROLE = {ex.context: ex.role for ex in EXAMPLES}


def _by_label(triples, source):
    return {t.label: t for t in triples if t.source == source}


def test_three_labelled_triples_per_example() -> None:
    triples = consistency_triples(EXAMPLES, seed=0)
    assert len(triples) == 3 * len(EXAMPLES)
    for ex in EXAMPLES:
        got = _by_label(triples, ex.source)
        assert set(got) == {CONSISTENT_COHERENT, CONSISTENT_ONLY, INCONSISTENT}
        assert all(t.persona == ex.persona for t in got.values())
        gold = got[CONSISTENT_COHERENT]
        assert (gold.context, gold.response) == (ex.context, ex.response)
        wrong = got[INCONSISTENT]
        assert wrong.context == ex.context
        assert ROLE_OF_RESPONSE[wrong.response] != ex.role


def test_consistent_only_is_the_roles_other_response_where_it_has_one() -> None:
    triples = consistency_triples(EXAMPLES, seed=1)
    for ex in EXAMPLES[:4]:
        other = _by_label(triples, ex.source)[CONSISTENT_ONLY]
        assert other.context == ex.context
        assert ROLE_OF_RESPONSE[other.response] == ex.role and other.response != ex.response
    lone = _by_label(triples, EXAMPLES[4].source)[CONSISTENT_ONLY]
    assert lone.response == EXAMPLES[4].response
    assert CONTEXT_ROLE[lone.context] != "c"


def test_deterministic_by_seed() -> None:
    many = [_ex(f"r{i}", t, f"r{i} says {t}") for i in range(20) for t in range(2)]
    assert consistency_triples(many, seed=3) == consistency_triples(many, seed=3)
    assert consistency_triples(many, seed=3) != consistency_triples(many, seed=4)


def test_one_role_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least two roles.*2 example\\(s\\) of 1 role"):
        consistency_triples(EXAMPLES[:2])


def test_no_distinct_other_response_names_the_record() -> None:
    same = [_ex("a", 0, "hello"), _ex("b", 0, "hello")]
    with pytest.raises(ValueError, match="mem:a:0: found no example of another role"):
        consistency_triples(same)


def test_datamodule_batches_pairs_with_labels(tmp_path) -> None:
    from morpheus_pl.scorer.classifier import train_pair_tokenizer

    tok = train_pair_tokenizer([ex.response for ex in EXAMPLES] * 3, 300,
                               tmp_path)
    dm = ConsistencyDataModule({"train": EXAMPLES, "test": EXAMPLES}, tok, batch_size=4,
                               max_length=64, max_context_turns=1)
    batch = next(iter(dm.test_dataloader()))
    assert batch["labels"].tolist() == [2, 1, 0, 2]
    assert batch["input_ids"].shape[0] == 4
    first = tok.convert_ids_to_tokens(batch["input_ids"][0])
    assert first[0] == "[CLS]" and first.count("[SEP]") == 3  # persona | context [SEP] response
    assert set(batch["token_type_ids"][0].tolist()) == {0, 1}
    dm.max_length = 12
    assert next(iter(dm.test_dataloader()))["input_ids"].shape[1] == 12
