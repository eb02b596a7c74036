"""experiments/persona_zoo.py: one tiny zoo world through the pipeline and a greedy
evaluation, then its row, table and plot (the figures are not checked, only what is collected)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from morpheus_pl.data.persona_zoo import ZooWorld

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
    for system in ("true_persona", "morpheus", "morpheus/argmax", "no_persona"):
        assert 0.0 <= row[system] <= 1.0 and 0.0 <= row[f"{system} greedy"] <= 1.0
    table = protocol.table(rows)
    assert table.splitlines()[2].startswith("| tiny | 0 | ")
    protocol.plot(rows, tmp_path / "gain.png")
    assert (tmp_path / "gain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    protocol.run_one("tiny", 0, tmp_path, TINY)  # a finished run is not run again
    assert capsys.readouterr().out.count("done already") == 2
