"""experiments/regimes.py: a tiny zoo world's grid point through both runs, then the records,
the paired table and the figure (the figures are not checked, only what is collected)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "regimes.py"
TINY = ["debug=tiny", "dataset.world=null", "model.tokenizer.train_vocab_size=300", "data.batch_size=8",
        "train.role_awareness.max_steps=8", "train.joint.max_steps=4", "train.no_persona.max_steps=4",
        "train.val_every_n_steps=4", "eval.compare_decode=[]"]


def _regimes():
    spec = importlib.util.spec_from_file_location("regimes", SCRIPT)
    regimes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regimes)
    return regimes


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _val_log(path: Path, val_losses: list[float]) -> None:
    """A Lightning CSV log: training rows without val/loss between the validations."""
    rows = ["epoch,step,train/loss,val/loss"]
    for i, value in enumerate(val_losses):
        rows += [f"0,{10 * i + 4},2.0,", f"0,{10 * i + 9},,{value}"]
    _write(path, "\n".join(rows) + "\n")


def _fabricated_point(tmp_path: Path) -> Path:
    """One grid point's two finished runs of seed 0, as a collect finds them."""
    point = tmp_path / "runs" / "roles8x1_revealed1"
    _write(tmp_path / "data/roles8x1_revealed1/world.json", json.dumps({
        "world": {"train_roles": 8, "dialogues_per_role": 1, "revealed": 1},
        "count_model_fact_accuracy": {"history": 0.5},
        "persona_recall": {"history": 0.4, "most_frequent": 0.25}}))
    _write(point / "morpheus/seed0/results.json", json.dumps({
        "morpheus": {"persona_fact_accuracy": 0.4, "code_recall": 0.125},
        "no_persona": {"persona_fact_accuracy": 0.3},
        "true_persona": {"persona_fact_accuracy": 0.9},
        "checkpoints": {"morpheus": str(tmp_path / "home/joint/model.ckpt")},
        "training": {"role_awareness": {"still_falling": False}, "joint": {"still_falling": True},
                     "no_persona": {"still_falling": False}}}))
    _write(tmp_path / "home/joint/provenance.json", json.dumps({
        "stage": "joint", "built_on": str(tmp_path / "home/role_awareness/model.ckpt"),
        "last_validation": {"val/persona_gain": 0.5}}))
    _write(tmp_path / "home/role_awareness/provenance.json", json.dumps({
        "stage": "role_awareness", "built_on": None, "last_validation": {"val/persona_gain": 0.25}}))
    _val_log(point / "morpheus/seed0/logs/role_awareness/version_0/metrics.csv", [1.0, 0.9, 0.8])
    for split in ("train", "val", "test"):  # the values: red, blue (colour); pasta, rice (food)
        _write(tmp_path / f"data/roles8x1_revealed1/{split}_datas_en.json", json.dumps([
            {"fact_options": ["red", "blue"], "fact": "red"}, {"fact_options": ["pasta", "rice"], "fact": "rice"}]))
    _write(point / "morpheus/seed0/predictions.jsonl", "".join(json.dumps(row) + "\n" for row in [
        {"system": "morpheus", "persona": ["i like red .", "i eat rice ."],
         "predicted_codes": [3, 4], "gold_codes": [1, 5], "code_recall": 0.0},
        {"system": "morpheus", "persona": ["i eat rice .", "i like red ."],
         "predicted_codes": [1, 4], "gold_codes": [5, 1], "code_recall": 0.5},
        {"system": "morpheus", "persona": ["red , always .", "i eat pasta ."],
         "predicted_codes": [1, 6], "gold_codes": [1, 6], "code_recall": 1.0},
        {"system": "no_persona", "persona": ["i like red ."], "predicted_codes": None, "gold_codes": [2, 2],
         "code_recall": None}]))
    _write(point / "wo_pc/seed0/results.json", json.dumps({"morpheus": {"persona_fact_accuracy": 0.35}}))
    _val_log(point / "wo_pc/seed0/logs/joint/version_0/metrics.csv", [0.5, 0.5, 0.495])
    return point


def test_under_trained_systems_are_marked_from_results_or_from_the_logs(tmp_path):
    """results.json's `training` decides where it records still_falling (MORPHEUS: joint,
    although the stage-1 log falls); a run without it reads its stages' val/loss logs, stage 1
    from the other run of the point and seed (w/o PC: its own joint log is flat)."""
    regimes = _regimes()
    point = _fabricated_point(tmp_path)
    assert regimes.logged_val_losses(point / "wo_pc/seed0/logs/joint/version_0/metrics.csv") == [0.5, 0.5, 0.495]

    records = regimes.collect(tmp_path)
    assert {r["system"]: r["still_falling"] for r in records} == {
        "MORPHEUS": ["joint"], "no persona": [], "true persona": [], "w/o PC": ["role_awareness"]}
    assert {r["system"]: r["stage1_gain"] for r in records} == {  # the provenance chain's stage 1
        "MORPHEUS": 0.25, "no persona": 0.25, "true persona": 0.25, "w/o PC": None}
    # the gold codes name red (1: two templates), rice (5), pasta (6); 3 and 4 name nothing:
    # the picks find 0 of 2, 1 of 2 and 2 of 2 persona facts
    assert {r["system"]: r["fact_recall"] for r in records} == {
        "MORPHEUS": 0.5, "no persona": None, "true persona": None, "w/o PC": None}
    lines = regimes.table(records).splitlines()
    # the recall reference from the MORPHEUS rows of predictions.jsonl: {1, 5} finds 2, 2, 1 of 2
    assert lines[2] == ("| 8 × 1 | 1 | 0 | 0.250 | 0.400 / 0.500 (0.250) | 0.125 (0.833) | 0.400 † | 0.350 † | 0.300 | 0.900 | 0.500 | "
                        "+0.100 (+0.100) | +0.050 (+0.050) |")
    assert lines[-1] == ("† a stage behind it ended its budget with its validation loss still falling "
                         "(under-trained): roles8x1_revealed1 seed 0 MORPHEUS (joint); "
                         "roles8x1_revealed1 seed 0 w/o PC (role_awareness)")


def test_records_files_join_the_runs_of_a_folder_and_disagreements_are_errors(tmp_path):
    """A records file (what a collect wrote) is a source like a folder of runs: another seed's
    records join the table; the same record twice is kept once when its numbers agree, a number
    one of them lacks filled in from the other; different numbers, a missing field or a
    non-list file stop the collect naming the file."""
    regimes = _regimes()
    _fabricated_point(tmp_path / "runs_dir")
    seed0 = regimes.collect(tmp_path / "runs_dir")
    seed1 = [{**r, "seed": 1, "fact_accuracy": r["fact_accuracy"] + 0.1, "source": "docs table"} for r in seed0]
    stored = tmp_path / "regimes_records.json"
    stored.write_text(json.dumps(seed1))

    records = regimes.load_records([stored, tmp_path / "runs_dir", stored])
    assert sorted((r["system"], r["seed"]) for r in records) == sorted(
        (system, seed) for system in regimes.SYSTEMS.values() for seed in (0, 1))
    line = regimes.table(records).splitlines()[2]
    assert line.startswith("| 8 × 1 | 1 | 0,1 | 0.250 ± 0.000 | 0.400 / 0.500 ± 0.000 (0.250) | ")
    assert "| 0.450 ± 0.071 † | 0.400 ± 0.071 † |" in line  # MORPHEUS 0.4, 0.5; w/o PC 0.35, 0.45
    assert line.endswith("| +0.100 (+0.100, +0.100) | +0.050 (+0.050, +0.050) |")

    older = tmp_path / "older.json"  # written before fact_recall and persona_recall
    older.write_text(json.dumps([{**{k: v for k, v in r.items() if k != "fact_recall"},
                                  "persona_recall": None} for r in seed0]))
    morpheus = next(r for r in regimes.load_records([older, tmp_path / "runs_dir"]) if r["system"] == "MORPHEUS")
    assert morpheus["fact_recall"] == 0.5  # filled in from the runs
    assert morpheus["persona_recall"] == {"history": 0.4, "most_frequent": 0.25}

    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps([{**seed0[0], "fact_accuracy": 0.9}]))
    with pytest.raises(SystemExit, match=rf"point roles8x1_revealed1, system MORPHEUS, seed 0: different numbers in "
                                         rf"{tmp_path / 'runs_dir'} and {changed}"):
        regimes.load_records([tmp_path / "runs_dir", changed])
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps([seed0[0], {k: v for k, v in seed0[1].items() if k != "seed"}]))
    with pytest.raises(SystemExit, match=rf"{partial}: record 1 lacks seed$"):
        regimes.load_records([partial])
    partial.write_text(json.dumps({"records": seed0}))
    with pytest.raises(SystemExit, match="expected a list of records"):
        regimes.load_records([partial])
    # a world.json before persona_recall, a run before fact_recall
    assert regimes.persona_cell([{"system": "MORPHEUS", "persona_recall": None}]) == "– / – (–)"
    with pytest.raises(SystemExit, match="missing: no such folder of runs or records file"):
        regimes.load_records([tmp_path / "missing"])


def test_sparsity_levels_parse_from_roles_x_dialogues():
    regimes = _regimes()
    assert regimes.sparsity_level("300x1") == (300, 1)
    with pytest.raises(argparse.ArgumentTypeError, match="'300': expected ROLESxDIALOGUES"):
        regimes.sparsity_level("300")


@pytest.mark.slow
def test_regimes_vary_only_their_knobs_and_pair_morpheus_with_no_persona(tmp_path, monkeypatch):
    regimes = _regimes()
    monkeypatch.setattr(regimes, "BASE", dataclasses.replace(
        regimes.BASE, kinds=4, values_per_kind=3, persona_facts=3, val_roles=8, test_roles=6))
    regimes.run_point(32, 1, 1, 0, tmp_path, TINY, ["predictor.loss=bag"])
    regimes.write_world(regimes.point_world(16, 2, 1), tmp_path / "other", seed=0)  # data only
    first = json.loads((tmp_path / "data" / "roles32x1_revealed1" / "world.json").read_text())
    second = json.loads((tmp_path / "other" / "world.json").read_text())
    changed = {k for k in first["world"] if first["world"][k] != second["world"][k]}
    assert changed == {"train_roles", "dialogues_per_role"}
    bag = json.loads((tmp_path / "runs/roles32x1_revealed1/morpheus/seed0/results.json").read_text())
    wo_pc = json.loads((tmp_path / "runs/roles32x1_revealed1/wo_pc/seed0/results.json").read_text())
    assert bag["config"]["predictor"]["loss"] == "bag"  # --morpheus reaches the MORPHEUS run only
    assert wo_pc["config"]["predictor"]["loss"] == "ce" and wo_pc["ablation"]["name"] == "no_pc"

    records = regimes.collect(tmp_path)
    assert len(records) == 4  # one point, four systems, one seed
    by_system = {r["system"]: r["fact_accuracy"] for r in records}
    assert by_system["MORPHEUS"] == bag["morpheus"]["persona_fact_accuracy"]
    assert by_system["w/o PC"] == wo_pc["morpheus"]["persona_fact_accuracy"]
    assert 0 <= next(r["fact_recall"] for r in records if r["system"] == "MORPHEUS") <= 1
    # a run made before results.json recorded fact_recall gets it recomputed from its predictions:
    # the same number the evaluation wrote
    run_dir, data_dir = tmp_path / "runs/roles32x1_revealed1/morpheus/seed0", tmp_path / "data/roles32x1_revealed1"
    older_report = {"morpheus": {"code_recall": bag["morpheus"]["code_recall"]}}
    assert regimes.fact_recall(older_report, run_dir, data_dir, "morpheus") == pytest.approx(bag["morpheus"]["fact_recall"])
    assert {r["history_reference"] for r in records} == {first["count_model_fact_accuracy"]["history"]}
    line = regimes.table(records).splitlines()[2]
    diff = by_system["MORPHEUS"] - by_system["no persona"]
    codebook = by_system["MORPHEUS"] - by_system["w/o PC"]
    assert line.startswith("| 32 × 1 | 1 | 0 | ")
    assert line.endswith(f"| {diff:+.3f} ({diff:+.3f}) | {codebook:+.3f} ({codebook:+.3f}) |")
    regimes.plot(records, tmp_path / "regimes.png")
    assert (tmp_path / "regimes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_probe_changes_the_base_world_and_a_folder_keeps_one_world(tmp_path, monkeypatch, capsys):
    regimes = _regimes()
    base = regimes.with_knobs(regimes.BASE, ["kinds=4", "values_per_kind=3", "persona_facts=3",
                                             "val_roles=8", "test_roles=6"])
    for run in regimes.RUNS:  # finished: run_point writes the point's world and skips the runs
        _write(tmp_path / f"runs/roles16x1_revealed1/{run}/seed0/results.json", "{}")
    regimes.run_point(16, 1, 1, 0, tmp_path, [], [], base)
    world = json.loads((tmp_path / "data/roles16x1_revealed1/world.json").read_text())["world"]
    assert (world["kinds"], world["values_per_kind"], world["train_roles"], world["revealed"]) == (4, 3, 16, 1)
    regimes.run_point(16, 1, 1, 0, tmp_path, [], [], base)  # the same world again: fine
    with pytest.raises(SystemExit, match=r"roles16x1_revealed1: holds another world than ZooWorld\(kinds=10, "
                                         r".*\(another --set\?\); use another --out"):
        regimes.run_point(16, 1, 1, 0, tmp_path, [], [])  # the map's own base world

    monkeypatch.setattr("sys.argv", ["regimes.py", "--set", "kinds=five", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        regimes.main()
    assert exit_info.value.code == 2
    assert "--set 'kinds=five': kinds takes an integer" in capsys.readouterr().err
