"""experiments/regimes.py: a two-point grid of tiny zoo worlds through both runs, then the
records, the paired table and the figure (the figures are not checked, only what is collected)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "regimes.py"
TINY = ["debug=tiny", "dataset.world=null", "model.tokenizer.train_vocab_size=300", "data.batch_size=8",
        "train.role_awareness.max_steps=8", "train.joint.max_steps=4", "train.no_persona.max_steps=4",
        "train.val_every_n_steps=4", "eval.compare_decode=[]"]


@pytest.mark.slow
def test_regimes_vary_only_their_knobs_and_pair_morpheus_with_no_persona(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("regimes", SCRIPT)
    regimes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regimes)
    monkeypatch.setattr(regimes, "BASE", dataclasses.replace(
        regimes.BASE, kinds=4, values_per_kind=3, persona_facts=3, val_roles=8, test_roles=6))
    monkeypatch.setattr(regimes, "SPARSITY", ((32, 1), (16, 2)))
    for roles, dialogues in regimes.SPARSITY:
        regimes.run_point(roles, dialogues, 1, 0, tmp_path, TINY, ["predictor.loss=bag"])
    first = json.loads((tmp_path / "data" / "roles32x1_revealed1" / "world.json").read_text())
    second = json.loads((tmp_path / "data" / "roles16x2_revealed1" / "world.json").read_text())
    changed = {k for k in first["world"] if first["world"][k] != second["world"][k]}
    assert changed == {"train_roles", "dialogues_per_role"}
    bag = json.loads((tmp_path / "runs/roles32x1_revealed1/morpheus/seed0/results.json").read_text())
    wo_pc = json.loads((tmp_path / "runs/roles32x1_revealed1/wo_pc/seed0/results.json").read_text())
    assert bag["config"]["predictor"]["loss"] == "bag"  # --morpheus reaches the MORPHEUS run only
    assert wo_pc["config"]["predictor"]["loss"] == "ce" and wo_pc["ablation"]["name"] == "no_pc"

    records = regimes.collect(tmp_path)
    assert len(records) == 2 * 4  # two points, four systems, one seed
    point = [r for r in records if r["point"] == "roles32x1_revealed1"]
    by_system = {r["system"]: r["fact_accuracy"] for r in point}
    assert by_system["MORPHEUS"] == bag["morpheus"]["persona_fact_accuracy"]
    assert by_system["w/o PC"] == wo_pc["morpheus"]["persona_fact_accuracy"]
    assert {r["history_reference"] for r in point} == {first["count_model_fact_accuracy"]["history"]}
    line = regimes.table(records).splitlines()[2]
    diff = by_system["MORPHEUS"] - by_system["no persona"]
    assert line.startswith("| 32 × 1 | 1 | 0 |") and line.endswith(f"| {diff:+.3f} ({diff:+.3f}) |")
    regimes.plot(records, tmp_path / "regimes.png")
    assert (tmp_path / "regimes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
