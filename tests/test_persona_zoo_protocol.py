"""experiments/persona_zoo.py: one tiny zoo world through the pipeline and a greedy
evaluation, then its row, table and plot (the figures are not checked, only what is collected)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from morpheus_pl.data.persona_zoo import ZooWorld
from morpheus_pl.data.world_ceilings import kind_marginal_accuracy

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "persona_zoo.py"
# conf/debug/tiny.yaml with the zoo's steps and no synthetic world (the zoo world is read as files)
TINY = ["debug=tiny", "dataset.world=null", "model.tokenizer.train_vocab_size=300", "data.batch_size=8",
        "train.role_awareness.max_steps=8", "train.joint.max_steps=4", "train.no_persona.max_steps=4",
        "train.val_every_n_steps=4", "eval.compare_decode=[argmax]"]


@pytest.mark.slow
def test_protocol_runs_a_world_and_collects_its_gain_curve_accuracies_and_reference(
        tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("persona_zoo_protocol", SCRIPT)
    protocol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protocol)
    monkeypatch.setitem(protocol.WORLDS, "tiny", ZooWorld(
        kinds=4, values_per_kind=3, persona_facts=3, train_roles=32, val_roles=8, test_roles=6))
    protocol.run_one("tiny", 0, tmp_path, TINY)
    run_dir = tmp_path / "runs" / "tiny" / "seed0"
    assert (run_dir / "results.json").exists() and (run_dir / "greedy" / "results.json").exists()
    greedy = json.loads((run_dir / "greedy" / "results.json").read_text())
    assert greedy["config"]["generation"]["do_sample"] is False

    rows = protocol.collect(tmp_path)
    assert len(rows) == 1
    row = rows[0]
    assert (row["world"], row["seed"]) == ("tiny", 0)
    assert [step for step, _ in row["gain_curve"]] == [3, 7]  # 4 batches an epoch, 8 steps
    assert row["final_gain"] == row["gain_curve"][-1][1]
    world = json.loads((tmp_path / "data" / "tiny" / "world.json").read_text())
    assert row["count_model_history"] == world["count_model_fact_accuracy"]["history"]
    train, test = (json.loads((tmp_path / "data" / "tiny" / f"{split}_datas_en.json").read_text())
                   for split in ("train", "test"))
    assert row["kind_marginal"] == kind_marginal_accuracy(train, test)
    for system in ("true_persona", "morpheus", "morpheus/argmax", "no_persona"):
        assert 0.0 <= row[system] <= 1.0 and 0.0 <= row[f"{system} greedy"] <= 1.0
    table = protocol.table(rows)
    assert table.splitlines()[2].startswith("| tiny | 0 | ")
    protocol.plot(rows, tmp_path / "gain.png")
    assert (tmp_path / "gain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    protocol.run_one("tiny", 0, tmp_path, TINY)  # a finished run is not run again
    assert capsys.readouterr().out.count("done already") == 2


def _finished_run(out: Path, world: str, seed: int, fact_accuracy: float | None, p_co: float) -> None:
    """A run folder as the protocol leaves it: results.json only (no stage-1 log, no greedy)."""
    run_dir = out / "runs" / world / f"seed{seed}"
    run_dir.mkdir(parents=True)
    systems = {name: {"persona_fact_accuracy": fact_accuracy, "p_co": p_co, "bleu1": 10.0 * p_co}
               for name in ("true_persona", "morpheus", "no_persona")}
    (run_dir / "results.json").write_text(json.dumps(systems))


def test_collect_of_several_folders_takes_a_repeated_run_from_the_last_and_tables_real_members_apart(
        tmp_path):
    spec = importlib.util.spec_from_file_location("persona_zoo_protocol", SCRIPT)
    protocol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protocol)
    first, second = tmp_path / "a", tmp_path / "b"
    _finished_run(first, "few_kinds", 0, 0.25, 1.0)
    _finished_run(first, "few_kinds", 1, 0.5, 1.0)
    _finished_run(second, "few_kinds", 0, 0.75, 1.0)  # the same world and seed, run again
    _finished_run(second, "chitchat", 0, None, 2.0)
    _finished_run(second, "chitchat", 1, None, 4.0)

    rows = protocol.collect_all([first, second])
    by_key = {(r["world"], r["seed"]): r for r in rows}
    assert sorted(by_key) == [("chitchat", 0), ("chitchat", 1), ("few_kinds", 0), ("few_kinds", 1)]
    assert by_key[("few_kinds", 0)]["true_persona"] == 0.75
    assert by_key[("chitchat", 1)]["no_persona p_co"] == 4.0

    facts_table, real_table = protocol.table(rows).split("\n\n")
    assert "chitchat" not in facts_table and "few_kinds" not in real_table
    # few_kinds seeds 0 and 1: true persona 0.75 and 0.5
    assert "| few_kinds | 0,1 | – | 0.625 ± 0.177 |" in facts_table
    header = real_table.splitlines()[0].split(" | ")
    chitchat = real_table.splitlines()[2].split(" | ")
    assert chitchat[header.index("true_persona p_co")] == "3.000 ± 1.414"
    assert chitchat[header.index("no_persona bleu1")] == "30.000 ± 14.142"
