"""End to end: a 2-member `+experiment=table4` sweep on a tiny world, then its aggregation."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# conf/debug/tiny.yaml with one layer, 4 validation roles, fewer steps and new tokens
TINY = [
    "debug=tiny", "model.architecture.n_layer=1", "dataset.world.val_roles=4",
    "model.tokenizer.train_vocab_size=300", "data.batch_size=8",
    "train.role_awareness.max_steps=3", "train.joint.max_steps=3", "generation.max_new_tokens=4",
]


def _python(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MORPHEUS_HOME": str(root)}
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env,
                          cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_table4_sweep_of_two_ablations_reuses_stages_and_aggregates(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    _python(tmp_path, "morpheus_pl.run", "-m", "+experiment=table4", "ablation=full,no_cl",
            "seed=0", *TINY, f"hydra.sweep.dir={sweep}")
    for job, (name, label) in enumerate([("full", "MORPHEUS"), ("no_cl", "w/o CL")]):
        results = json.loads((sweep / str(job) / "results.json").read_text())
        assert results["ablation"] == {"name": name, "label": label}
        assert results["config"]["loss"]["weights"]["contrastive"] == (0.0 if name == "no_cl" else 1.0)
        assert list(results["per_seed"]) == ["morpheus"]
        assert f"Ablation: {label} (`ablation={name}`)" in (sweep / str(job) / "results.md").read_text()
    stages = tmp_path / "artifacts" / "stages"
    counts = {s: len(list((stages / s).glob("*/model.ckpt"))) for s in
              ("role_awareness", "codebook_init", "joint")}
    assert counts == {"role_awareness": 1, "codebook_init": 1, "joint": 2}  # w/o CL reuses 1 and 2

    proc = _python(tmp_path, "morpheus_pl.aggregate", str(sweep))
    out = sweep / "aggregate"
    assert str(out / "table.md") in proc.stdout
    with open(out / "table.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["system"], r["ablation"], r["n"], r["missing"]) for r in rows] == [
        ("morpheus", "MORPHEUS", "1", "0"), ("morpheus", "w/o CL", "1", "0")]
    member = json.loads((sweep / "1" / "results.json").read_text())
    assert float(rows[1]["bleu1"]) == pytest.approx(member["morpheus"]["bleu1"])
    assert (out / "metric_vs_ablation.png").read_bytes()[:4] == b"\x89PNG"
