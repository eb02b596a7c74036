"""The embedded persona world: deterministic, role-disjoint, facts recorded exactly."""

from __future__ import annotations

import json
import re

import pytest

from morpheus_pl.data.formats import read_paper_json
from morpheus_pl.data.synthetic_world import PersonaWorld, WorldConfig
from morpheus_pl.data.world_ceilings import count_model_accuracy

SMALL = dict(train_roles=80, val_roles=10, test_roles=30)


def test_same_seed_same_world_other_seed_other_world() -> None:
    a = PersonaWorld(WorldConfig(**SMALL)).generate()
    b = PersonaWorld(WorldConfig(**SMALL)).generate()
    c = PersonaWorld(WorldConfig(**SMALL, seed=1)).generate()
    assert a == b
    assert a["train"] != c["train"]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_written_world_reads_back_with_disjoint_roles_and_exact_facts(tmp_path, language) -> None:
    stats = PersonaWorld(WorldConfig(language=language, **SMALL)).write(tmp_path)
    splits = {s: read_paper_json(tmp_path / f"{s}_datas_{language}.json") for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in splits.items()} == stats["examples"] == {"train": 80, "val": 10, "test": 30}
    roles = {s: {ex.role for ex in v} for s, v in splits.items()}
    assert not roles["train"] & roles["val"] and not roles["train"] & roles["test"]
    for ex in splits["test"]:
        assert len(ex.persona) == 5
        assert ex.fact in ex.response and ex.fact in ex.fact_options
        assert sum(ex.fact in sentence for sentence in ex.persona) == 1
        # the asked fact is never revealed by the history
        assert not any(ex.fact in turn for turn in ex.context)


def test_history_reveals_the_configured_number_of_facts() -> None:
    world = PersonaWorld(WorldConfig(**SMALL, revealed_per_dialogue=3))
    for rec in world.generate()["test"]:
        revealed = [v for v in rec["facts"].values() if any(re.search(rf"\b{v}\b", t) for t in rec["context"])]
        assert len(revealed) == 3
        assert rec["fact"] not in revealed


def test_archetype_strength_sets_the_bayes_ceiling() -> None:
    world = PersonaWorld(WorldConfig(**SMALL, archetype_strength=1.0))
    # with strength 1 every fact is the archetype's, and two revealed facts identify it exactly
    assert world.bayes_accuracy(world.generate()["test"]) == 1.0
    weak = PersonaWorld(WorldConfig(**SMALL, archetype_strength=1 / 6))
    assert weak.bayes_accuracy(weak.generate()["test"]) < 0.5


def test_count_models_learn_from_their_source() -> None:
    world = PersonaWorld(WorldConfig(train_roles=400, val_roles=5, test_roles=200, archetype_strength=0.95))
    data = world.generate()
    for source in ("history", "persona"):
        assert count_model_accuracy(data["train"], data["test"], source) > 0.6
    with pytest.raises(ValueError, match="history' or 'persona"):
        count_model_accuracy(data["train"], data["test"], "oracle")


def test_bad_knobs_are_named() -> None:
    with pytest.raises(ValueError, match="revealed_per_dialogue"):
        PersonaWorld(WorldConfig(revealed_per_dialogue=5, persona_facts=5))
    with pytest.raises(ValueError, match="num_categories"):
        PersonaWorld(WorldConfig(num_categories=99))


def test_world_json_records_knobs_and_ceilings(tmp_path) -> None:
    PersonaWorld(WorldConfig(**SMALL)).write(tmp_path)
    stats = json.loads((tmp_path / "world.json").read_text())
    assert stats["config"]["train_roles"] == 80
    assert 0.0 <= stats["bayes_fact_accuracy_from_history"]["test"] <= 1.0
    assert set(stats["count_model_fact_accuracy"]) == {"history", "persona"}
    # the history reveals persona facts and names the asked one: it identifies more of the
    # persona than the most frequent facts do
    recall = stats["persona_recall"]
    assert recall["history"] > recall["most_frequent"] + 0.2


def test_chinese_world_runs_through_its_own_dataset_config(tiny_compose) -> None:
    """`dataset.world.language=zh` alone would read English file names and split Chinese
    personas on '.'; it fails naming `dataset=synthetic_zh`, which reads the Chinese world."""
    from omegaconf import OmegaConf

    from morpheus_pl.data.persona import split_sentences
    from morpheus_pl.data.sources import load_split

    wrong = OmegaConf.to_container(tiny_compose("dataset.world.language=zh").dataset, resolve=True)
    with pytest.raises(ValueError, match=r"dataset.separator='\.': use dataset=synthetic_zh"):
        load_split(wrong, "test")
    zh = OmegaConf.to_container(tiny_compose("dataset=synthetic_zh").dataset, resolve=True)
    assert zh["sacrebleu_tokenize"] == "zh"
    examples = load_split(zh, "test")
    assert examples and all(len(split_sentences(" ".join(ex.persona), zh["separator"])) == 5
                            for ex in examples)
