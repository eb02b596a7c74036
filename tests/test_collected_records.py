"""experiments/collected_records.py: where a collect reads and writes, and a study's records
file checked for its own fields (the merge itself: tests/test_regimes.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_collect_writes_into_out_or_its_first_folder(tmp_path):
    records = _module("collected_records")
    runs, stored = tmp_path / "runs", tmp_path / "stored.json"
    runs.mkdir()
    stored.write_text("[]")
    assert records.sources_and_out(None, None, Path("study_runs")) == (
        [Path("study_runs").resolve()], Path("study_runs").resolve())
    assert records.sources_and_out([stored, runs], None, Path("x")) == ([stored, runs], runs)
    assert records.sources_and_out([stored], tmp_path / "merged", Path("x"))[1] == tmp_path / "merged"
    with pytest.raises(SystemExit, match="--out is needed when every --collect source is a records file"):
        records.sources_and_out([stored], None, Path("x"))


def test_a_study_records_file_needs_the_studys_columns(tmp_path):
    study = _module("predictor_study")
    record = {"world": "sparse", "row": "bag", "system": "morpheus", "seed": 0,
              **dict.fromkeys(study.COLUMNS, 0.5)}
    stored = tmp_path / "study.json"
    stored.write_text(json.dumps([record, {**record, "seed": 1}]))
    assert [r["seed"] for r in study.load_records([stored])] == [0, 1]
    stored.write_text(json.dumps([{k: v for k, v in record.items() if k != "bleu1"}]))
    with pytest.raises(SystemExit, match=r"study.json: record 0 lacks bleu1$"):
        study.load_records([stored])
