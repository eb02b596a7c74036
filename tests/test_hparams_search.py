"""`hparams_search=morpheus_optuna`: Hydra's Optuna sweeper trains joint training per trial,
reads each trial's objective from the stage's last validation, and resumes its study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from morpheus_pl.config_checks import check_optimized_metric
from morpheus_pl.errors import ConfigError
from morpheus_pl.handoff import checkpoint_path, search_objective

from conftest import compose_tiny

TINY = ["debug=tiny", "data.batch_size=4", "model.architecture.n_layer=1", "model.tokenizer.train_vocab_size=300",
        "train.role_awareness.max_steps=3", "train.val_every_n_steps=3",
        "hydra.sweeper.params={codebook.N:'choice(5, 8)'}"]  # merged into the search space


def _search(root: Path, trials: int) -> None:
    env = {**os.environ, "MORPHEUS_HOME": str(root)}
    proc = subprocess.run(
        [sys.executable, "-m", "morpheus_pl.run", "-m", "hparams_search=morpheus_optuna", *TINY,
         f"hydra.sweeper.n_trials={trials}", f"hydra.sweep.dir={root / 'sweep'}"],
        capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
def test_a_study_runs_trials_from_validation_and_resumes(tmp_path: Path) -> None:
    _search(tmp_path, 2)
    _search(tmp_path, 1)  # the same command again: the stored study goes on
    study = optuna.load_study(study_name="morpheus_synthetic",
                              storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trials = study.trials
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    for trial in trials:
        cfg = compose_tiny(tmp_path, "stage=joint", "train.val_every_n_steps=3",
                           "model.architecture.n_layer=1", "model.tokenizer.train_vocab_size=300",
                           "train.role_awareness.max_steps=3",
                           "optimized_metric=joint:val/loss_gen_predicted",
                           *(f"{k}={v}" for k, v in trial.params.items()))
        record = json.loads((checkpoint_path(cfg, "joint").parent / "provenance.json").read_text())
        assert trial.value == record["last_validation"]["val/loss_gen_predicted"] > 0
        assert search_objective(cfg) == trial.value
    # beta and N leave stage 1 as it is; the learning rate (every stage's) does not
    stage1 = list((tmp_path / "artifacts" / "stages" / "role_awareness").iterdir())
    assert len(stage1) == len({t.params["optim.lr"] for t in trials})


def test_the_objective_names_a_stage_and_a_metric():
    check_optimized_metric(None)
    check_optimized_metric("joint:val/loss_gen_predicted")
    for bad in ("val/loss", "jointt:val/loss", "joint:"):
        with pytest.raises(ConfigError, match="optimized_metric must be null or '<stage>:<metric>'"):
            check_optimized_metric(bad)
