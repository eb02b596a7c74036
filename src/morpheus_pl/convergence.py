"""A stage's budget: a cap in steps and in wall time, and optionally convergence (a stage stops
once its validation loss stops improving, and keeps the weights of its best validation).

`train.<stage>.max_steps` caps the steps and `train.<stage>.max_minutes` the minutes of training
(Lightning's Timer, `max_time`: validation counts, setting up does not; a resumed stage keeps
the minutes it already spent). `train.early_stopping` (Lightning's EarlyStopping on `monitor`,
`patience` validations without an improvement of `min_delta`) may end the stage sooner, and with
`restore_best` the stage's checkpoint holds the weights of the best validation (Lightning's
ModelCheckpoint keeps them), not those of the last step. Validation runs every
`train.val_every_n_steps` optimiser steps, counted across epochs, so the schedule does not
depend on the dataset's size. Measured effects: docs/persona_zoo.md.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, Timer
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from omegaconf import DictConfig, OmegaConf

from morpheus_pl.errors import ConfigError

log = logging.getLogger("morpheus_pl")
BEST_DIR = "best"
# a heuristic: a no-persona stage of the regimes map ended its 4,000 steps at 0.758, 0.717, 0.705
# (-7 % over its last two validations, just off a plateau); the default world's stages end flat
# or rising (its joint stage's last validation is not its best), the zoo's joint stages at
# -1.7 % (long_history) and -6.6 % (few_kinds) (docs/regimes.md)
STILL_FALLING_DROP = 0.02


def convergence_callbacks(cfg: DictConfig, work_dir: Path) -> list[Callback]:
    """EarlyStopping and, with `restore_best`, a ModelCheckpoint of the best validation into
    `work_dir/best/`; none when `train.early_stopping.patience` is null (the fixed budget)."""
    es = cfg.train.early_stopping
    if es.patience is None:
        return []
    if int(es.patience) < 1:
        raise ConfigError(f"train.early_stopping.patience must be a positive number of "
                          f"validations or null (a fixed budget), got {es.patience}")
    strategy = str(OmegaConf.select(cfg, "trainer.strategy") or "auto")  # null: Lightning's default
    if es.restore_best and strategy.startswith("deepspeed"):
        raise ConfigError(f"train.early_stopping.restore_best=true needs one-file checkpoints, "
                          f"which trainer.strategy={strategy} does not write: set "
                          f"train.early_stopping.restore_best=false (keep the last step's weights)")
    callbacks: list[Callback] = [EarlyStopping(monitor=es.monitor, mode="min",
                                               patience=int(es.patience),
                                               min_delta=float(es.min_delta),
                                               check_on_train_epoch_end=False, verbose=True)]
    if es.restore_best:
        callbacks.append(ModelCheckpoint(dirpath=str(work_dir / BEST_DIR), filename="best-{step}",
                                         monitor=es.monitor, mode="min", save_top_k=1,
                                         save_weights_only=True))
    return callbacks


def best_state_dict(callbacks: list[Callback], stage: str) -> dict | None:
    """The weights of the best validation, or None (no validation ran, or `restore_best` off:
    the last step's weights are kept). Read with `weights_only=True`."""
    best = next((cb for cb in callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None)
    if best is None or not best.best_model_path:
        return None
    path = Path(best.best_model_path)
    if not path.is_file():
        raise ConfigError(f"{stage}: the best validation's checkpoint {path} is not one file "
                          f"(a sharded checkpoint); set train.early_stopping.restore_best=false "
                          f"to keep the last step's weights with this strategy")
    log.info("%s: keeping the weights of the best validation (%s %.4f, %s)", stage, best.monitor,
             float(best.best_model_score), path.name)
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


class ValidationLossTrace(Callback):
    """The monitored validation loss at every validation of the stage (sanity checks left
    out), for `still_falling`. A resumed stage traces only the validations after the resume."""

    def __init__(self, monitor: str) -> None:
        self.monitor, self.losses = monitor, []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and not trainer.sanity_checking:
            self.losses.append(float(value))


def still_falling(losses: list[float], drop: float = STILL_FALLING_DROP) -> bool:
    """The last validation is the best so far and at least `drop` (relative) below the one two
    validations before it: the stage stopped while still learning."""
    if len(losses) < 3:
        return False
    return losses[-1] < min(losses[:-1]) and losses[-1] <= (1.0 - drop) * losses[-3]


def wall_time_cap(cfg: DictConfig, stage: str) -> timedelta | None:
    """`train.<stage>.max_minutes` as Lightning's `max_time`; None: no cap (also for a stage
    without the key: codebook_init, the scorer)."""
    minutes = OmegaConf.select(cfg, f"train.{stage}.max_minutes")
    if minutes is None:
        return None
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0:
        raise ConfigError(f"train.{stage}.max_minutes must be a positive number of minutes or "
                          f"null (no wall-time cap), got {minutes!r}")
    return timedelta(minutes=minutes)


def wall_timer(trainer: L.Trainer) -> Timer | None:
    """The Timer callback Lightning adds for `max_time` (None: no wall-time cap)."""
    return next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)


def stop_reason(trainer: L.Trainer) -> str:
    """Why a stage's training ended: "max_steps", "early_stopping", "max_minutes" (its wall-time
    cap), or "other" (Lightning's debugging runs, an epoch cap)."""
    if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
        return "max_steps"
    if any(isinstance(cb, EarlyStopping) and cb.stopping_reason != EarlyStoppingReason.NOT_STOPPED
           for cb in trainer.callbacks):
        return "early_stopping"
    timer = wall_timer(trainer)
    if timer is not None and (timer.time_remaining() or 0.0) <= 0:
        return "max_minutes"
    return "other"
