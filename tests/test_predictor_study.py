"""experiments/predictor_study.py: the default row and one option on a tiny zoo world, then the
records, the paired differences and the table (the figures are not checked, only what is
collected and how it is paired)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from morpheus_pl.data.persona_zoo import ZooWorld

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "predictor_study.py"
# conf/debug/tiny.yaml with small steps and no synthetic world (the zoo world is read as files)
TINY = ["debug=tiny", "dataset.world=null", "model.tokenizer.train_vocab_size=300", "data.batch_size=8",
        "train.role_awareness.max_steps=8", "train.joint.max_steps=4", "train.no_persona.max_steps=4",
        "train.val_every_n_steps=4", "predictor.rescore_samples=2"]


def _study():
    spec = importlib.util.spec_from_file_location("predictor_study", SCRIPT)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    return study


def test_a_world_without_facts_is_paired_on_p_co():
    """chitchat records no facts: its rows pair on P-Co per seed; a fact world keeps fact accuracy."""
    study = _study()

    def record(world, row, seed, fact, p_co):
        return {"world": world, "row": row, "system": "morpheus", "seed": seed,
                **dict.fromkeys(study.COLUMNS), "persona_fact_accuracy": fact, "p_co": p_co}
    records = [record("chitchat", "default", 0, None, 13.0), record("chitchat", "default", 1, None, 14.0),
               record("chitchat", "bag", 0, None, 13.5), record("chitchat", "bag", 1, None, 13.0),
               record("sparse", "default", 0, 0.7, 14.0), record("sparse", "bag", 0, 0.6, 15.0)]
    assert study.paired_differences(records, "chitchat", "bag", "morpheus") == [0.5, -1.0]
    assert study.paired_differences(records, "sparse", "bag", "morpheus") == [pytest.approx(-0.1)]
    lines = study.table(records).splitlines()
    assert lines[2].endswith("| Δ P-Co (paired) |") and lines[5].endswith("| -0.250 (+0.500, -1.000) |")
    assert lines[9].endswith("| Δ fact acc (paired) |")


@pytest.mark.slow
def test_study_runs_rows_that_share_their_stages_and_pairs_them_by_seed(tmp_path, capsys, monkeypatch):
    study = _study()
    monkeypatch.setitem(study.WORLDS, "tiny", ZooWorld(kinds=4, values_per_kind=3, persona_facts=3,
                                                       train_roles=32, val_roles=8, test_roles=6))
    home = tmp_path / "home"
    for row in ("default", "set"):
        study.run_one("tiny", row, 0, tmp_path, home, TINY)
    stages = home / "artifacts" / "stages"
    assert len(list((stages / "role_awareness").iterdir())) == 1  # trained once, reused by `set`
    assert len(list((stages / "joint").iterdir())) == 2  # the option retrains joint only

    records = study.collect(tmp_path)
    systems = {(r["row"], r["system"]) for r in records}
    assert systems == {("default", s) for s in ("morpheus", "no_persona", "true_persona", "oracle_codes",
                                                *(f"morpheus/{d}" for d in study.DECODINGS))} | {("set", "morpheus")}
    set_run = json.loads((tmp_path / "runs/tiny/set/seed0/results.json").read_text())
    assert set_run["config"]["predictor"]["loss"] == "set"
    default_acc = next(r["persona_fact_accuracy"] for r in records if (r["row"], r["system"]) == study.BASELINE)
    set_acc = set_run["morpheus"]["persona_fact_accuracy"]
    assert study.paired_differences(records, "tiny", "set", "morpheus") == [pytest.approx(set_acc - default_acc)]
    assert all(r["generate_s_per_example"] > 0 for r in records)
    by_row = {(r["row"], r["system"]): r for r in records}
    assert by_row["set", "morpheus"]["code_recall_majority"] == set_run["morpheus"]["code_recall_majority"]
    assert by_row["default", "no_persona"]["code_recall_majority"] is None  # no codes
    table = study.table(records)
    set_line = next(line for line in table.splitlines() if line.startswith("| set | morpheus | 0 |"))
    assert set_line.endswith(f"| {set_acc - default_acc:+.3f} ({set_acc - default_acc:+.3f}) |")

    study.run_one("tiny", "set", 0, tmp_path, home, TINY)  # a finished run is not run again
    assert "done already" in capsys.readouterr().out
