"""Stage orchestration: each stage trained once and handed on (the data: data/prepare.py).

`train_stage` returns the checkpoint of a stage, training it (and what it builds on) only when
no checkpoint with the same fingerprint exists; an interrupted stage resumes exactly from its
last Lightning checkpoint (morpheus_pl.resume). The consistency scorer is trained the same way
(morpheus_pl.scorer.training). Under a distributed strategy every rank runs these functions in
the same order (Lightning needs all ranks in every fit and predict); only rank 0 writes files,
among them the codebook atlas a trained codebook stage leaves beside its checkpoint (atlas.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from morpheus_pl.atlas_files import stage_atlas
from morpheus_pl.convergence import (
    ValidationLossTrace,
    best_state_dict,
    convergence_callbacks,
    still_falling,
    stop_reason,
    wall_time_cap,
)
from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.distributed import global_rank, run_id, training_lock
from morpheus_pl.evaluation import evaluation_device
from morpheus_pl.handoff import checkpoint_path, load_stage_weights, save_stage
from morpheus_pl.loggers import build_loggers
from morpheus_pl.progress import ProgressLog
from morpheus_pl.resume import RandomStateCheckpoint
from morpheus_pl.stage_table import STAGES, stage_module, starts_from
from morpheus_pl.stages.base import PersonaDialogStage

log = logging.getLogger("morpheus_pl")


def _plain(cfg: DictConfig, key: str) -> dict:
    return OmegaConf.to_container(cfg[key], resolve=True)


def build_stage(cfg: DictConfig, stage: str, tokenizer_dir: str) -> PersonaDialogStage:
    """A stage's LightningModule from the composed config (seeded, so the init is repeatable)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    cls = stage_module(cfg, stage)
    optim = _plain(cfg, "optim")
    if cfg.peft.lr is not None:
        optim["lr"] = cfg.peft.lr
    kwargs = dict(
        tokenizer_dir=tokenizer_dir,
        model=_plain(cfg, "model"),
        encoder=_plain(cfg, "encoder"),
        projector=_plain(cfg, "projector"),
        optim=optim,
        loss=_plain(cfg, "loss"),
        peft=_plain(cfg, "peft"),
    )
    kwargs.update({group: _plain(cfg, group) for group in cls.extra_config_groups})
    return cls(**kwargs)


def trainer_kwargs(cfg: DictConfig) -> dict:
    """The trainer group as L.Trainer's keywords; a null key (trainer=cpu's strategy) is left
    to Lightning's default, as if it were absent."""
    return {key: value for key, value in _plain(cfg, "trainer").items() if value is not None}


def _trainer(cfg: DictConfig, stage: str, work_dir: Path, max_steps: int, callbacks=()) -> L.Trainer:
    """Validation every train.val_every_n_steps optimiser steps, across epochs; training capped
    at train.<stage>.max_minutes (convergence.py)."""
    return L.Trainer(max_steps=max_steps, max_time=wall_time_cap(cfg, stage),
                     default_root_dir=str(work_dir), callbacks=list(callbacks),
                     logger=build_loggers(cfg, stage), val_check_interval=cfg.train.val_every_n_steps,
                     check_val_every_n_epoch=None, **trainer_kwargs(cfg))


def _resumable_trainer(cfg: DictConfig, stage: str, work_dir: Path, max_steps: int,
                       callbacks=()) -> tuple[L.Trainer, str | None]:
    """A trainer that checkpoints into `work_dir/resume/last.ckpt` (only: Lightning's default
    also kept a second, identical file) every train.checkpoint_every_n_steps, logs progress
    every train.progress_every_n_steps, and the checkpoint to resume from (None: afresh)."""
    callbacks = [ModelCheckpoint(dirpath=str(work_dir / "resume"), save_last=True, save_top_k=0,
                                 every_n_train_steps=cfg.train.checkpoint_every_n_steps),
                 RandomStateCheckpoint(), ProgressLog(stage, cfg.train.progress_every_n_steps),
                 ValidationLossTrace(cfg.train.early_stopping.monitor), *callbacks]
    trainer = _trainer(cfg, stage, work_dir, max_steps, callbacks)
    resume = work_dir / "resume" / "last.ckpt"
    return trainer, str(resume) if resume.exists() else None


def _save(trainer: L.Trainer | None, module, path: Path, stage: str, cfg: DictConfig,
          provenance: dict | None = None, best: list | None = None) -> None:
    """Rank 0 writes the stage checkpoint (the strategy assembles the full weights, also when
    they are sharded; the best validation's weights when `best`, the convergence callbacks,
    kept them); every rank waits until it is there. Without a trainer (nothing was trained)
    rank 0 writes the module's weights and no rank waits."""
    state = trainer.strategy.lightning_module_state_dict() if trainer is not None else None
    if global_rank() == 0:
        state = best_state_dict(best or [], stage) or state
        save_stage(module, path, stage, cfg, state)
        if provenance is not None:
            (path.parent / "provenance.json").write_text(json.dumps(provenance, indent=2))
    if trainer is not None:
        trainer.strategy.barrier(f"{stage} saved")


def train_stage(cfg: DictConfig, stage: str, dm: PersonaDialogDataModule, tokenizer_dir: str) -> Path:
    """Checkpoint of `stage`: reused when it exists, else trained on top of the previous stage
    (under `training_lock`, so concurrent sweep members train it once)."""
    path = checkpoint_path(cfg, stage)
    if path.exists():
        log.info("%s: reusing %s", stage, path)
        return path
    with training_lock(path, run_id(cfg)):
        if path.exists():
            log.info("%s: reusing %s (trained meanwhile by another process)", stage, path)
            return path
        return _train_stage(cfg, stage, dm, tokenizer_dir, path)


def _train_stage(cfg: DictConfig, stage: str, dm: PersonaDialogDataModule, tokenizer_dir: str,
                 path: Path) -> Path:
    previous = starts_from(cfg, stage)
    previous_path = train_stage(cfg, previous, dm, tokenizer_dir) if previous else None
    module = build_stage(cfg, stage, tokenizer_dir)
    if previous_path is not None:
        load_stage_weights(module, previous_path, STAGES[stage].new_parts, stage=previous)
    module.count_persona_tokens(dm)
    work_dir = path.parent
    convergence = []
    if stage == "codebook_init":
        trainer = _trainer(cfg, stage, work_dir, max_steps=-1)
        trainer.predict(module, dataloaders=dm.persona_dataloader(), return_predictions=False)
        module.fit_codebook(module.encoded_personas, seed=cfg.seed)
    elif module.parameter_budget()["trainable"] == 0:
        log.info("%s: nothing to train (peft.baseline=frozen): the pretrained decoder as it is", stage)
        trainer = None
    else:
        convergence = convergence_callbacks(cfg, work_dir)
        trainer, resume = _resumable_trainer(cfg, stage, work_dir, cfg.train[stage].max_steps,
                                             convergence)
        # Lightning's resume checkpoints hold only tensors and plain containers (weights,
        # optimiser, scheduler, loop, callback and random states, hyper-parameters as dicts),
        # so resuming needs no full pickle: weights_only=True.
        trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True)
    validation = {name: float(value) for name, value in
                  (trainer.callback_metrics.items() if trainer is not None else ())
                  if name.startswith("val/")}
    provenance = {"stage": stage, "built_on": str(previous_path) if previous_path else None,
                  "last_validation": validation}
    if trainer is not None and stage != "codebook_init":
        provenance |= _training_budget(trainer, stage)
    _save(trainer, module, path, stage, cfg, provenance, best=convergence)
    has_codebook = "codebook" in stage_module(cfg, stage).extra_config_groups
    if has_codebook and cfg.atlas.k > 0 and global_rank() == 0:
        trained = load_trained(cfg, stage, tokenizer_dir, path)
        stage_atlas(trained.to(evaluation_device(cfg.trainer.accelerator)), dm, path.parent, stage,
                    cfg.atlas.k, trainer.loggers if trainer is not None else ())
    return path


def _training_budget(trainer: L.Trainer, stage: str) -> dict:
    """The steps a stage trained, why it stopped and whether its validation loss was still
    falling then (provenance.json); a wall-time cap that cut the stage short is a warning (a
    slower machine trains fewer steps on the same settings), and so is a budget that ended
    while the validation loss still fell."""
    reason = stop_reason(trainer)
    if reason == "max_minutes":
        log.warning("%s: stopped by its wall-time cap (train.%s.max_minutes) at step %d of %d; "
                    "a faster machine or a larger cap trains more steps", stage, stage,
                    trainer.global_step, trainer.max_steps)
    losses = next((cb.losses for cb in trainer.callbacks if isinstance(cb, ValidationLossTrace)), [])
    falling = reason in ("max_steps", "max_minutes") and still_falling(losses)
    if falling:
        log.warning("%s: its validation loss was still falling when its budget ended (%s at the "
                    "last three validations): more steps (train.%s.max_steps, max_minutes) may "
                    "help", stage, " -> ".join(f"{v:.4f}" for v in losses[-3:]), stage)
    return {"steps": trainer.global_step, "max_steps": trainer.max_steps, "stopped_by": reason,
            "still_falling": falling}


def load_trained(cfg: DictConfig, stage: str, tokenizer_dir: str, path: Path) -> PersonaDialogStage:
    """A stage module with its trained weights, for evaluation."""
    module = build_stage(cfg, stage, tokenizer_dir)
    load_stage_weights(module, path, stage=stage)
    return module.eval()
