"""Budget by convergence: a stage stops on a validation plateau and keeps its best weights."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from morpheus_pl.convergence import (
    ValidationLossTrace,
    best_state_dict,
    convergence_callbacks,
    still_falling,
    stop_reason,
    wall_time_cap,
)
from morpheus_pl.errors import ConfigError
from morpheus_pl.handoff import read_stage_checkpoint

# the validation loss of the k-th validation: best at the 2nd, never better afterwards
SCRIPTED_VAL_LOSS = [3.0, 1.0, 1.5, 1.0005, 2.0, 0.5, 0.1]


class ScriptedValidation(L.LightningModule):
    """A linear layer trained by SGD (its weights change every step) whose validation loss is
    read from SCRIPTED_VAL_LOSS; it records its weights at every validation."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.snapshots.append({k: v.clone() for k, v in self.state_dict().items()})
        self.log("val/loss", SCRIPTED_VAL_LOSS[len(self.snapshots) - 1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _cfg(**early_stopping):
    es = {"monitor": "val/loss", "patience": 3, "min_delta": 0.001, "restore_best": True}
    return OmegaConf.create({"train": {"early_stopping": {**es, **early_stopping}}})


def _fit(tmp_path, cfg, max_steps=100):
    L.seed_everything(0)
    data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=8)
    module = ScriptedValidation()
    callbacks = convergence_callbacks(cfg, tmp_path)
    trainer = L.Trainer(max_steps=max_steps, val_check_interval=2, check_val_every_n_epoch=None,
                        num_sanity_val_steps=0, logger=False, enable_progress_bar=False,
                        enable_checkpointing=True, default_root_dir=str(tmp_path),
                        callbacks=callbacks, enable_model_summary=False)
    trainer.fit(module, data, data)
    return trainer, module, callbacks


def test_stops_after_patience_validations_without_a_min_delta_improvement(tmp_path):
    trainer, module, _ = _fit(tmp_path, _cfg())
    # best at validation 2 (step 4); 1.5, 1.0005 (not better by 0.001) and 2.0 -> stop at the 5th
    assert len(module.snapshots) == 5
    assert trainer.global_step == 10


def test_the_best_validations_weights_are_kept_not_the_last(tmp_path):
    _, module, callbacks = _fit(tmp_path, _cfg())
    best = best_state_dict(callbacks, "toy")
    for key, value in module.snapshots[1].items():
        assert torch.equal(best[key], value), key
    assert not torch.equal(best["layer.weight"], module.state_dict()["layer.weight"])


def test_restore_best_off_keeps_the_last_weights(tmp_path):
    _, module, callbacks = _fit(tmp_path, _cfg(restore_best=False))
    assert len(module.snapshots) == 5
    assert best_state_dict(callbacks, "toy") is None


def test_patience_null_is_the_fixed_budget(tmp_path):
    trainer, module, callbacks = _fit(tmp_path, _cfg(patience=None), max_steps=14)
    assert callbacks == [] and trainer.global_step == 14 and len(module.snapshots) == 7


def test_no_validation_before_the_cap_keeps_the_last_weights(tmp_path):
    trainer, module, callbacks = _fit(tmp_path, _cfg(), max_steps=1)
    assert module.snapshots == [] and best_state_dict(callbacks, "toy") is None


def test_a_patience_below_one_is_refused_naming_the_setting(tmp_path):
    with pytest.raises(ValueError, match=r"train\.early_stopping\.patience must be a positive"):
        convergence_callbacks(_cfg(patience=0), tmp_path)


def test_restore_best_with_deepspeed_is_refused_before_training(tmp_path):
    cfg = _cfg()
    cfg.trainer = {"strategy": "deepspeed_stage_2"}
    with pytest.raises(ConfigError, match=r"restore_best=false \(keep the last step's weights\)"):
        convergence_callbacks(cfg, tmp_path)
    cfg.train.early_stopping.restore_best = False
    assert len(convergence_callbacks(cfg, tmp_path)) == 1


def test_a_pipeline_stage_keeps_its_best_validation(tiny_compose, tiny_data, tmp_path):
    """No persona, validation every 2 steps at a learning rate that overshoots: the stage
    checkpoint holds the best validation's weights (the step of the least val/loss logged)."""
    import csv

    from morpheus_pl.handoff import checkpoint_path
    from morpheus_pl.pipeline import train_stage

    cfg = tiny_compose(f"paths.root={tmp_path}", f"paths.output={tmp_path / 'out'}",
                       "train.no_persona.max_steps=12",
                       "train.val_every_n_steps=2", "train.early_stopping.patience=100",
                       "model.lr=0.05", "seed=31")
    dm, tokenizer_dir = tiny_data
    path = train_stage(cfg, "no_persona", dm, tokenizer_dir)
    assert path == checkpoint_path(cfg, "no_persona")
    log_dir = Path(cfg.paths.output) / "logs" / "no_persona"
    rows = list(csv.DictReader(open(log_dir / "version_0" / "metrics.csv")))
    val = {int(r["step"]): float(r["val/loss"]) for r in rows if r.get("val/loss")}
    assert sorted(val) == [1, 3, 5, 7, 9, 11]  # Lightning logs validation at the step's index
    best_step = min(val, key=val.get) + 1
    assert best_step < 12  # the test needs a best validation before the last step
    best_files = list((path.parent / "best").glob("*.ckpt"))
    assert [f.name for f in best_files] == [f"best-step={best_step}.ckpt"]
    saved = read_stage_checkpoint(path)["state_dict"]
    best = torch.load(best_files[0], map_location="cpu", weights_only=True)["state_dict"]
    assert saved.keys() == best.keys()
    assert all(torch.equal(saved[k], best[k]) for k in saved)


def test_the_validation_schedule_does_not_change_the_training(tiny_compose, tiny_data, tmp_path):
    """Validating every 2 steps or never within 12 gives the same weights: validation draws
    nothing from the global random state that the training's dropout uses."""
    from morpheus_pl.pipeline import train_stage

    dm, tokenizer_dir = tiny_data
    weights = []
    for every in (2, 1000):
        root = tmp_path / str(every)
        cfg = tiny_compose(f"paths.root={root}", f"paths.output={root / 'out'}",
                           "train.no_persona.max_steps=12", f"train.val_every_n_steps={every}",
                           "seed=5")
        weights.append(read_stage_checkpoint(train_stage(cfg, "no_persona", dm, tokenizer_dir))
                       ["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


class _SlowStep(ScriptedValidation):
    """Each training step takes at least 50 ms."""

    def training_step(self, batch, batch_idx):
        time.sleep(0.05)
        return super().training_step(batch, batch_idx)


def _timed_fit(tmp_path, max_time, max_steps=40, module=None):
    data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=8)
    trainer = L.Trainer(max_steps=max_steps, max_time=max_time, logger=False,
                        enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(module or _SlowStep(), data)
    return trainer


def test_the_wall_time_cap_is_minutes_or_null_and_names_a_bad_value():
    cfg = OmegaConf.create({"train": {"joint": {"max_minutes": 12}, "no_persona": {"max_minutes": None}}})
    assert wall_time_cap(cfg, "joint") == timedelta(minutes=12)
    assert wall_time_cap(cfg, "no_persona") is None
    assert wall_time_cap(cfg, "scorer") is None  # a stage without the key has no cap
    for bad in (0, -1, "12", True):
        cfg.train.joint.max_minutes = bad
        with pytest.raises(ConfigError, match=r"train\.joint\.max_minutes must be a positive number "
                                              r"of minutes or null \(no wall-time cap\), got "):
            wall_time_cap(cfg, "joint")


def test_a_wall_time_cap_ends_training_before_its_steps_and_is_named(tmp_path):
    """Steps of >= 50 ms under a 0.3 s cap: training stops after about 6 of its 40 steps."""
    trainer = _timed_fit(tmp_path, timedelta(seconds=0.3))
    assert 1 <= trainer.global_step <= 7
    assert stop_reason(trainer) == "max_minutes"
    uncapped = _timed_fit(tmp_path, None, max_steps=3)
    assert uncapped.global_step == 3 and stop_reason(uncapped) == "max_steps"
    roomy = _timed_fit(tmp_path, timedelta(minutes=10), max_steps=3)
    assert roomy.global_step == 3 and stop_reason(roomy) == "max_steps"


def test_early_stopping_is_named_as_the_reason(tmp_path):
    trainer, _, _ = _fit(tmp_path, _cfg())
    assert trainer.global_step == 10 and stop_reason(trainer) == "early_stopping"


def test_a_pipeline_stage_cut_by_its_cap_records_and_warns(tiny_compose, tiny_data, tmp_path, caplog):
    """A cap of 6 ms stops the no-persona stage after its first step: provenance.json records
    the steps and the reason, the log warns; the cap is part of the stage's fingerprint."""
    from morpheus_pl.handoff import checkpoint_path, fingerprint, training_budgets
    from morpheus_pl.pipeline import train_stage

    cfg = tiny_compose(f"paths.root={tmp_path}", f"paths.output={tmp_path / 'out'}",
                       "train.no_persona.max_steps=12", "train.no_persona.max_minutes=0.0001",
                       "seed=7")
    assert fingerprint(cfg, "no_persona") != fingerprint(
        tiny_compose("train.no_persona.max_steps=12", "seed=7"), "no_persona")
    dm, tokenizer_dir = tiny_data
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        path = train_stage(cfg, "no_persona", dm, tokenizer_dir)
    assert path == checkpoint_path(cfg, "no_persona")
    record = json.loads((path.parent / "provenance.json").read_text())
    assert record["stopped_by"] == "max_minutes" and record["max_steps"] == 12
    assert record["still_falling"] is False  # no validation before the cap
    assert 1 <= record["steps"] < 12
    assert any("no_persona: stopped by its wall-time cap (train.no_persona.max_minutes) at step "
               f"{record['steps']} of 12" in r.getMessage() for r in caplog.records)
    assert training_budgets([path]) == {"no_persona": {"steps": record["steps"], "max_steps": 12,
                                                       "stopped_by": "max_minutes",
                                                       "still_falling": False}}
    assert training_budgets([tmp_path / "given" / "model.ckpt"]) == {}  # no record: nothing


def test_an_evaluation_warns_of_each_stage_behind_it_that_may_be_under_trained(caplog):
    """A capped stage and a still-falling one are named; one without the record (trained before
    it existed) and one that ended flat are not."""
    from morpheus_pl.handoff import warn_short_budgets

    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        warn_short_budgets({
            "joint": {"steps": 5, "max_steps": 9, "stopped_by": "max_minutes", "still_falling": False},
            "no_persona": {"steps": 9, "max_steps": 9, "stopped_by": "max_steps", "still_falling": True},
            "role_awareness": {"steps": 9, "max_steps": 9, "stopped_by": "max_steps"},
            "scorer": {"steps": 9, "max_steps": 9, "stopped_by": "max_steps", "still_falling": False}})
    assert [r.getMessage() for r in caplog.records] == [
        "joint was cut short by its wall-time cap: 5 of 9 steps (results.json's training)",
        "no_persona: its validation loss was still falling when its budget ended; the systems "
        "built on it may be under-trained (results.json's training)"]


@pytest.mark.parametrize(("losses", "falling"), [
    ([0.832, 0.798, 0.758, 0.717, 0.705], True),    # -7.0 % over the last two validations
    ([0.26, 0.305, 0.313, 0.341], False),           # rising (memorising)
    ([7.651, 7.492, 7.37, 7.365], False),           # the best, but only -1.7 %
    ([0.5, 0.4, 0.45, 0.42], False),                # -6.7 % over two, but not the best so far
    ([0.9, 0.5], False),                            # too few validations to tell
])
def test_still_falling_by_hand(losses, falling):
    assert still_falling(losses) is falling


@pytest.mark.parametrize(("max_steps", "falling"), [(14, True), (10, False)])
def test_the_trace_holds_every_validation_loss(tmp_path, caplog, max_steps, falling):
    """Seven validations read SCRIPTED_VAL_LOSS: ... 2.0, 0.5, 0.1 ends still falling; the first
    five (..., 1.0005, 2.0) do not."""
    trace = ValidationLossTrace("val/loss")
    trainer = L.Trainer(max_steps=max_steps, val_check_interval=2, check_val_every_n_epoch=None,
                        num_sanity_val_steps=1, logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, callbacks=[trace], enable_model_summary=False,
                        default_root_dir=str(tmp_path))
    data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=8)
    trainer.fit(ScriptedValidation(), data, data)
    assert trace.losses == pytest.approx(SCRIPTED_VAL_LOSS[:max_steps // 2])
    assert still_falling(trace.losses) is falling
    from morpheus_pl.pipeline import _training_budget

    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        record = _training_budget(trainer, "toy")
    assert record == {"steps": max_steps, "max_steps": max_steps, "stopped_by": "max_steps",
                      "still_falling": falling}
    warned = [r.getMessage() for r in caplog.records if "still falling" in r.getMessage()]
    assert warned == (["toy: its validation loss was still falling when its budget ended (2.0000 "
                       "-> 0.5000 -> 0.1000 at the last three validations): more steps "
                       "(train.toy.max_steps, max_minutes) may help"] if falling else [])
