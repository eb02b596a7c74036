"""`python -m morpheus_pl.aggregate` on hand-made sweep folders: mean ± sample std against numpy,
missing members listed, valid PNG plots."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib import image

from morpheus_pl.aggregate import main, read_members

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABELS = {"full": "MORPHEUS", "no_cl": "w/o CL"}


def _results(systems: dict[str, dict], config: dict | None = None, ablation: str = "full") -> dict:
    report = {**systems, "per_seed": {name: [values] for name, values in systems.items()},
              "seeds": [0], "ablation": {"name": ablation, "label": LABELS[ablation]}}
    if config is not None:
        report["config"] = config
    return report


def _member(sweep: Path, job: int, overrides: list[str] | None, results: dict | None) -> None:
    folder = sweep / str(job)
    folder.mkdir(parents=True)
    if overrides is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results))


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0  # not a blank canvas


BLEU1 = {"full": [10.0, 12.0, 17.0], "no_cl": [8.0, 9.5]}
FACT = {"full": [0.70, 0.74, 0.81], "no_cl": [0.61, 0.66]}


@pytest.fixture()
def ablation_sweep(tmp_path: Path) -> Path:
    """ablation full/no_cl × seed 0,1,2; job 5 (no_cl, seed 2) failed: .hydra, no results."""
    sweep = tmp_path / "table4"
    job = 0
    for ablation in ("full", "no_cl"):
        for seed in range(3):
            overrides = ["+experiment=table4", f"ablation={ablation}", f"seed={seed}",
                         "train.joint.max_steps=5"]
            results = None
            if seed < len(BLEU1[ablation]):
                results = _results({"morpheus": {
                    "bleu1": BLEU1[ablation][seed], "bleu1_std": 99.0,
                    "persona_fact_accuracy": FACT[ablation][seed], "con_score": None,
                    "code_accuracy_slot0": 0.5}}, ablation=ablation)
            _member(sweep, job, overrides, results)
            job += 1
    _member(sweep, job, ["+experiment=table4", "ablation=no_ra", "seed=0",
                         "train.joint.max_steps=5"], None)  # a whole row failed
    return sweep


def test_ablation_table_mean_std_over_seeds_and_missing_member(ablation_sweep, tmp_path, capsys):
    out = tmp_path / "agg"
    assert main([str(ablation_sweep), "--out", str(out)]) == 0
    rows = _csv_rows(out / "table.csv")
    assert [(r["system"], r["ablation"]) for r in rows] == [("morpheus", "MORPHEUS"),
                                                           ("morpheus", "w/o CL"), ("–", "no_ra")]
    assert (rows[2]["n"], rows[2]["missing"], rows[2]["bleu1"]) == ("0", "1", "")
    for row, name in zip(rows, ("full", "no_cl")):
        assert float(row["bleu1"]) == pytest.approx(np.mean(BLEU1[name]))
        assert float(row["bleu1_std"]) == pytest.approx(np.std(BLEU1[name], ddof=1))
        assert float(row["persona_fact_accuracy"]) == pytest.approx(np.mean(FACT[name]))
        assert float(row["persona_fact_accuracy_std"]) == pytest.approx(np.std(FACT[name], ddof=1))
        assert row["con_score"] == ""  # missing in the members: missing, not 0
        assert int(row["n"]) == len(BLEU1[name])
    assert rows[0]["seeds"] == "0 1 2" and rows[0]["missing"] == "0"
    assert rows[1]["seeds"] == "0 1" and rows[1]["missing"] == "1"
    assert "seed" not in rows[0] and "train.joint.max_steps" not in rows[0]  # constant or seed
    assert not any("slot" in column for column in rows[0])

    table = (out / "table.md").read_text()
    assert "| morpheus | MORPHEUS | 3 | 0,1,2 | 0 |" in table
    assert f"{np.mean(BLEU1['full']):.3f} ± {np.std(BLEU1['full'], ddof=1):.3f}" in table
    assert "| missing |" in table
    assert "| – | no_ra | 0 | – | 1 | missing |" in table
    assert "Missing (no results.json, failed or unfinished): 2" in table
    assert "- `5`: experiment=table4 ablation=no_cl seed=2" in table
    printed = capsys.readouterr().out
    assert str(out / "table.md") in printed and "w/o CL" in printed
    _assert_png(out / "metric_vs_ablation.png")


def test_numeric_sweep_plots_metric_against_the_value(tmp_path):
    sweep = tmp_path / "figure3"
    values = {(20, 0): 0.5, (20, 1): 0.6, (100, 0): 0.7, (100, 1): 0.9, (500, 0): 0.4, (500, 1): 0.4}
    for job, ((n, seed), fact) in enumerate(values.items()):
        _member(sweep, job, [f"codebook.N={n}", f"seed={seed}"],
                _results({"morpheus": {"persona_fact_accuracy": fact, "bleu1": 10 * fact}}))
    assert main([str(sweep)]) == 0
    rows = _csv_rows(sweep / "aggregate" / "table.csv")
    assert [r["codebook.N"] for r in rows] == ["20", "100", "500"]
    assert float(rows[1]["persona_fact_accuracy"]) == pytest.approx(0.8)
    assert float(rows[1]["persona_fact_accuracy_std"]) == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert float(rows[2]["persona_fact_accuracy_std"]) == pytest.approx(0.0)
    _assert_png(sweep / "aggregate" / "metric_vs_codebook.N.png")


def test_settings_from_results_config_without_hydra_folder(tmp_path):
    sweep = tmp_path / "copied"
    for job, (beta, seed, bleu) in enumerate([(0.05, 0, 1.0), (0.05, 1, 3.0), (0.5, 0, 7.0)]):
        config = {"seed": seed, "codebook": {"beta": beta, "N": 100}}
        _member(sweep, job, None, _results({"morpheus": {"bleu1": bleu}}, config))
    assert [m.settings["codebook.beta"] for m in read_members(sweep)] == ["0.05", "0.05", "0.5"]
    assert main([str(sweep)]) == 0
    rows = _csv_rows(sweep / "aggregate" / "table.csv")
    assert [(r["codebook.beta"], r["seeds"], r["bleu1"]) for r in rows] == [
        ("0.05", "0 1", "2.0"), ("0.5", "0", "7.0")]
    assert rows[1]["bleu1_std"] == ""  # one seed: no std
    _assert_png(sweep / "aggregate" / "metric_vs_codebook.beta.png")


def test_seed_only_sweep_gives_one_row_per_system(tmp_path):
    sweep = tmp_path / "table2"
    for seed, (a, b) in enumerate([(1.0, 2.0), (2.0, 4.0), (4.0, 9.0)]):
        _member(sweep, seed, [f"seed={seed}"],
                _results({"morpheus": {"distinct1": a, "code_recall": 0.5},
                          "no_persona": {"distinct1": b}}))
    assert main([str(sweep)]) == 0
    rows = _csv_rows(sweep / "aggregate" / "table.csv")
    assert [r["system"] for r in rows] == ["morpheus", "no_persona"]
    assert rows[1]["code_recall"] == ""
    table = (sweep / "aggregate" / "table.md").read_text()
    assert "| no_persona | 3 | 0,1,2 | 0 | 5.000 ± 3.606 | – |" in table  # no codes: not applicable
    assert float(rows[1]["distinct1"]) == pytest.approx(5.0)
    assert float(rows[1]["distinct1_std"]) == pytest.approx(np.std([2, 4, 9], ddof=1))
    _assert_png(sweep / "aggregate" / "systems.png")


def test_members_that_may_be_under_trained_are_listed(tmp_path):
    """A stage cut by its cap or ended still learning names its member; one that ended its
    steps flat, or a record made before `still_falling` existed, does not."""
    sweep = tmp_path / "beta"
    trainings = [
        {"joint": {"steps": 400, "max_steps": 1000, "stopped_by": "max_minutes", "still_falling": True},
         "role_awareness": {"steps": 3000, "max_steps": 3000, "stopped_by": "max_steps", "still_falling": True}},
        {"joint": {"steps": 1000, "max_steps": 1000, "stopped_by": "max_steps", "still_falling": False}},
        {"joint": {"steps": 1000, "max_steps": 1000, "stopped_by": "max_steps"}}]
    for job, training in enumerate(trainings):
        _member(sweep, job, [f"seed={job}"], {**_results({"morpheus": {"bleu1": 1.0}}), "training": training})
    assert main([str(sweep)]) == 0
    notes = (sweep / "aggregate" / "table.md").read_text().split("May be under-trained")[1]
    assert notes == (" (results.json's `training`): 1\n"
                     "- `0`: joint (cut short by its wall-time cap), role_awareness (still falling)\n")


def test_a_sweep_without_any_results_is_an_error(tmp_path, capsys):
    _member(tmp_path / "failed", 0, ["seed=0"], None)
    assert main([str(tmp_path / "failed")]) == 1
    assert "no results.json" in capsys.readouterr().err


def test_aggregate_and_its_plots_load_no_torch_and_not_each_other():
    """Reading JSON needs neither torch nor transformers (TABLE_GROUPS lives in
    metrics/table_columns.py), and the plotting module does not import aggregate back."""
    code = ("import sys, morpheus_pl.sweep_plots; "
            "assert 'morpheus_pl.aggregate' not in sys.modules, 'sweep_plots imports aggregate'; "
            "import morpheus_pl.aggregate; "
            "heavy = {'torch', 'transformers', 'lightning'} & set(sys.modules); "
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_table_labels_are_the_evaluation_reports_columns():
    """One source for the column labels: results.md (evaluation) and the sweep tables."""
    from morpheus_pl import aggregate, evaluation, sweep_plots
    from morpheus_pl.metrics.table_columns import LABELS, TABLE_GROUPS

    assert evaluation.TABLE_GROUPS is TABLE_GROUPS
    assert aggregate.LABELS is sweep_plots.LABELS is LABELS
    assert LABELS["persona_fact_accuracy"] == "fact acc." and list(LABELS)[0] == "bleu1"
