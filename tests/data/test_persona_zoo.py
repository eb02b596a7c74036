"""The persona zoo: worlds independent of the embedded one, facts recorded exactly."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from morpheus_pl.data.formats import read_paper_json
from morpheus_pl.data.persona_zoo import (
    WORLDS,
    ZooGenerator,
    ZooWorld,
    main,
    with_knobs,
    write_world,
)
from morpheus_pl.data.world_lexicon import LEXICONS

SMALL = ZooWorld(kinds=6, values_per_kind=3, archetypes=2, persona_facts=4, revealed=2,
                 train_roles=60, val_roles=8, test_roles=20, dialogues_per_role=2,
                 small_talk_pairs=(0, 3))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_same_seed_same_world_other_seed_other_world() -> None:
    assert ZooGenerator(SMALL, 0).generate() == ZooGenerator(SMALL, 0).generate()
    assert ZooGenerator(SMALL, 0).generate()["train"] != ZooGenerator(SMALL, 1).generate()["train"]


def test_every_reply_states_one_persona_fact_the_history_does_not_reveal(tmp_path) -> None:
    stats = write_world(SMALL, tmp_path, seed=3)
    data = ZooGenerator(SMALL, 3).generate()
    assert stats["examples"] == {"train": 120, "val": 16, "test": 40}
    for split in ("train", "val", "test"):
        read = read_paper_json(tmp_path / f"{split}_datas_en.json")
        assert [ex.fact for ex in read] == [r["fact"] for r in data[split]]
        for ex, raw in zip(read, data[split]):
            assert len(ex.persona) == SMALL.persona_facts
            assert ex.fact in _words(ex.response) and ex.fact in ex.fact_options
            assert sum(ex.fact in _words(s) for s in ex.persona) == 1
            assert not any(ex.fact in _words(turn) for turn in ex.context)
            assert sum(v in _words(ex.response) for v in ex.fact_options) == 1
            assert len(raw["revealed"]) == SMALL.revealed and raw["asked"] not in raw["revealed"]
            assert all(v in _words(" ".join(ex.context)) for v in raw["revealed"].values())
            # small talk pairs, two turns per revealed fact, then the partner's question
            assert 2 * SMALL.revealed + 1 <= len(ex.context) <= 2 * (3 + SMALL.revealed) + 1
    roles = {s: {r["role"] for r in data[s]} for s in data}
    assert not roles["train"] & roles["test"] and not roles["train"] & roles["val"]
    assert 0.0 <= stats["count_model_fact_accuracy"]["history"] <= 1.0
    assert stats["chance_fact_accuracy"] == pytest.approx(1 / 3)


def test_vocabulary_shares_no_fact_word_with_the_embedded_world() -> None:
    zoo_values = {v for values in ZooGenerator(WORLDS["wide"], 0).values.values() for v in values}
    embedded = set()
    for lexicon in LEXICONS.values():
        for category in lexicon.categories:
            embedded |= {category.name, *category.values}
    assert len(zoo_values) == 90 and not zoo_values & embedded


def test_archetype_strength_one_gives_every_role_an_archetypes_values() -> None:
    gen = ZooGenerator(replace(SMALL, archetype_strength=1.0), 0)
    archetypes = [tuple(a[k] for k in gen.kinds) for a in gen.preferred]
    for _ in range(20):
        facts, _ = gen.role()
        assert tuple(facts[k] for k in gen.kinds) in archetypes


@pytest.mark.parametrize("bad, message", [
    (dict(kinds=31), "kinds must be 1..30"),
    (dict(persona_facts=7), "persona_facts must be 1..kinds"),
    (dict(revealed=6), "revealed must be 0..kinds-1"),
])
def test_impossible_worlds_are_refused_by_name(bad, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ZooGenerator(replace(SMALL, **bad))


def test_command_line_writes_a_world_and_prints_its_folder(tmp_path, capsys) -> None:
    assert main(["few_kinds", str(tmp_path / "w"), "--train-roles", "30", "--seed", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str((tmp_path / "w").resolve())
    world = json.loads((tmp_path / "w" / "world.json").read_text())
    assert world["examples"]["train"] == 30 and world["seed"] == 2
    assert main(["--list"]) == 0
    assert set(WORLDS) <= {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    with pytest.raises(SystemExit):
        main(["no_such_world", str(tmp_path)])


def test_more_templates_than_the_zoo_has_are_refused() -> None:
    with pytest.raises(ValueError, match=r"templates must be 1\.\.6, got 7"):
        ZooGenerator(replace(SMALL, templates=7))


def test_distinct_preferences_give_each_archetype_its_own_value_of_every_kind() -> None:
    world = replace(SMALL, archetypes=SMALL.values_per_kind, distinct_preferences=True)
    gen = ZooGenerator(world, 0)
    for kind in gen.kinds:
        assert sorted(a[kind] for a in gen.preferred) == sorted(gen.values[kind])
    with pytest.raises(ValueError, match=re.escape(
            f"distinct_preferences needs archetypes <= values_per_kind ({SMALL.values_per_kind}), "
            f"got {SMALL.values_per_kind + 1}")):
        ZooGenerator(replace(world, archetypes=SMALL.values_per_kind + 1))


def test_independent_preferences_are_the_default_and_keep_the_worlds_as_drawn_before() -> None:
    # few_kinds as the protocol measured it: archetypes share preferred values (3-5 of 6 per kind)
    gen = ZooGenerator(WORLDS["few_kinds"], 0)
    assert [len({a[k] for a in gen.preferred}) for k in gen.kinds] == [4, 3, 5, 4, 4]


def test_set_overrides_knobs_by_their_type_and_names_a_bad_one(tmp_path, capsys) -> None:
    world = with_knobs(WORLDS["few_kinds"], ["revealed=3", "distinct_preferences=true",
                                             "archetype_strength=0.5", "small_talk_pairs=1,3"])
    assert (world.revealed, world.distinct_preferences, world.archetype_strength,
            world.small_talk_pairs) == (3, True, 0.5, (1, 3))
    for bad, message in [("colour=3", "expected KNOB=VALUE with KNOB one of kinds, "),
                         ("revealed=two", "revealed takes an integer"),
                         ("distinct_preferences=yes", "distinct_preferences takes true or false"),
                         ("small_talk_pairs=1", "small_talk_pairs takes two comma-separated integers")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            with_knobs(WORLDS["few_kinds"], [bad])
    assert main(["few_kinds", str(tmp_path / "w"), "--train-roles", "20",
                 "--set", "distinct_preferences=true"]) == 0
    stored = json.loads((tmp_path / "w" / "world.json").read_text())["world"]
    assert stored["distinct_preferences"] is True
    with pytest.raises(SystemExit):
        main(["few_kinds", str(tmp_path / "x"), "--set", "revealed=two"])
    assert "revealed takes an integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a knob that makes the world impossible: named, no traceback
        main(["few_kinds", str(tmp_path / "y"), "--set", "revealed=9"])
    assert "revealed must be 0..kinds-1 (4), got 9" in capsys.readouterr().err
