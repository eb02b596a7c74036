"""Stage orchestration: each stage trained once and handed on (the data: data/prepare.py).

`train_stage` returns the checkpoint of a stage, training it (and what it builds on) only when
no checkpoint with the same fingerprint exists; an interrupted stage resumes exactly from its
last Lightning checkpoint (morpheus_pl.resume). `train_scorer`/`load_scorer` do the same for
the consistency scorer. Under a distributed strategy every rank runs these functions in the same
order (Lightning needs all ranks in every fit and predict); only rank 0 writes files, among them
the codebook atlas a trained codebook stage leaves beside its checkpoint (atlas.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from morpheus_pl.atlas_files import stage_atlas
from morpheus_pl.convergence import best_state_dict, convergence_callbacks
from morpheus_pl.data.consistency import LABEL_NAMES, ConsistencyDataModule
from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.distributed import global_rank, run_id, training_lock
from morpheus_pl.evaluation import evaluation_device
from morpheus_pl.handoff import checkpoint_path, load_stage_weights, save_stage
from morpheus_pl.loggers import build_loggers
from morpheus_pl.modules.text_classifier import train_pair_tokenizer
from morpheus_pl.progress import ProgressLog
from morpheus_pl.resume import RandomStateCheckpoint
from morpheus_pl.stages.base import PersonaDialogStage
from morpheus_pl.stages.codebook_init import CodebookInitStage
from morpheus_pl.stages.consistency_scorer import ConsistencyScorerStage
from morpheus_pl.stages.joint import JointTrainingStage
from morpheus_pl.stages.joint_without_codebook import JointWithoutCodebookStage
from morpheus_pl.stages.no_persona import NoPersonaStage
from morpheus_pl.stages.role_awareness import RoleAwarenessStage

log = logging.getLogger("morpheus_pl")
STAGE_CLASSES = {
    "role_awareness": RoleAwarenessStage,
    "codebook_init": CodebookInitStage,
    "joint": JointTrainingStage,
    "no_persona": NoPersonaStage,
}
NEW_PARTS = {"codebook_init": ("codebook.",), "joint": ("predictor.",)}
TRAINED = ("role_awareness", "codebook_init", "joint", "no_persona")  # stage=<name> trains it alone


def _plain(cfg: DictConfig, key: str) -> dict:
    return OmegaConf.to_container(cfg[key], resolve=True)


def stage_class(cfg: DictConfig, stage: str) -> type[PersonaDialogStage]:
    """The LightningModule that trains `stage`; `ablation.persona_codebook=false` (w/o PC)
    replaces joint training by history-only generation training."""
    if stage == "joint" and not cfg.ablation.persona_codebook:
        return JointWithoutCodebookStage
    return STAGE_CLASSES[stage]


def builds_on(cfg: DictConfig, stage: str) -> str | None:
    """The stage whose checkpoint `stage` starts from (None: from the un-trained decoder).

    role awareness -> codebook init -> joint; `ablation.role_awareness=false` (w/o RA) starts the
    codebook init from the un-role-aware decoder, `ablation.persona_codebook=false` (w/o PC)
    starts joint training from stage 1 (there is no codebook to initialise).
    """
    if stage == "codebook_init":
        return "role_awareness" if cfg.ablation.role_awareness else None
    if stage == "joint":
        if cfg.ablation.persona_codebook:
            return "codebook_init"
        return "role_awareness" if cfg.ablation.role_awareness else None
    return None


def build_stage(cfg: DictConfig, stage: str, tokenizer_dir: str) -> PersonaDialogStage:
    """A stage's LightningModule from the composed config (seeded, so the init is repeatable)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    cls = stage_class(cfg, stage)
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
    if issubclass(cls, CodebookInitStage):
        kwargs["codebook"] = _plain(cfg, "codebook")
    if issubclass(cls, JointTrainingStage):
        kwargs["predictor"] = _plain(cfg, "predictor")
    return cls(**kwargs)


def trainer_kwargs(cfg: DictConfig) -> dict:
    """The trainer group as L.Trainer's keywords; a null key (trainer=cpu's strategy) is left
    to Lightning's default, as if it were absent."""
    return {key: value for key, value in _plain(cfg, "trainer").items() if value is not None}


def _trainer(cfg: DictConfig, stage: str, work_dir: Path, max_steps: int, callbacks=()) -> L.Trainer:
    """Validation every train.val_every_n_steps optimiser steps, across epochs."""
    return L.Trainer(max_steps=max_steps, default_root_dir=str(work_dir), callbacks=list(callbacks),
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
                 *callbacks]
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
    previous = builds_on(cfg, stage)
    previous_path = train_stage(cfg, previous, dm, tokenizer_dir) if previous else None
    module = build_stage(cfg, stage, tokenizer_dir)
    if previous_path is not None:
        load_stage_weights(module, previous_path, NEW_PARTS[stage], stage=previous)
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
    _save(trainer, module, path, stage, cfg,
          {"stage": stage, "built_on": str(previous_path) if previous_path else None},
          best=convergence)
    has_codebook = issubclass(stage_class(cfg, stage), CodebookInitStage)
    if has_codebook and cfg.atlas.k > 0 and global_rank() == 0:
        trained = load_trained(cfg, stage, tokenizer_dir, path)
        stage_atlas(trained.to(evaluation_device(cfg.trainer.accelerator)), dm, path.parent, stage,
                    cfg.atlas.k, trainer.loggers if trainer is not None else ())
    return path


def load_trained(cfg: DictConfig, stage: str, tokenizer_dir: str, path: Path) -> PersonaDialogStage:
    """A stage module with its trained weights, for evaluation."""
    module = build_stage(cfg, stage, tokenizer_dir)
    load_stage_weights(module, path, stage=stage)
    return module.eval()


def _scorer_module(cfg: DictConfig, tokenizer_dir: Path) -> ConsistencyScorerStage:
    sc = _plain(cfg, "scorer")
    return ConsistencyScorerStage(str(tokenizer_dir), sc["model"], sc["optim"], sc["max_length"],
                                  sc["max_context_turns"])


def _scorer_tokenizer_dir(cfg: DictConfig, path: Path, dm: PersonaDialogDataModule) -> Path | str:
    """A trained scorer tokenizer lives beside its checkpoint; a pretrained one is its model's."""
    model = _plain(cfg, "scorer")["model"]
    vocab_size = (model.get("tokenizer") or {}).get("train_vocab_size")
    if not vocab_size:
        return model["name_or_path"]
    tok_dir = path.parent / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        train_pair_tokenizer(dm.training_texts(), vocab_size, tok_dir)
    return tok_dir


def train_scorer(cfg: DictConfig, dm: PersonaDialogDataModule) -> Path:
    """Checkpoint of the consistency scorer: reused when it exists, else trained on the
    training split's triples and tested on the test split's; `scorer_report.json` beside it
    holds the held-out accuracy and confusion matrix."""
    path = checkpoint_path(cfg, "scorer")
    if path.exists():
        log.info("scorer: reusing %s", path)
        return path
    with training_lock(path, run_id(cfg)):
        if path.exists():
            log.info("scorer: reusing %s (trained meanwhile by another process)", path)
            return path
        return _train_scorer(cfg, dm, path)


def _train_scorer(cfg: DictConfig, dm: PersonaDialogDataModule, path: Path) -> Path:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    tokenizer_dir = _scorer_tokenizer_dir(cfg, path, dm)
    module = _scorer_module(cfg, tokenizer_dir)
    sc = cfg.scorer
    data = ConsistencyDataModule({split: dm.read(split) for split in ("train", "val", "test")},
                                 module.tokenizer, sc.batch_size, sc.max_length,
                                 sc.max_context_turns, cfg.seed)
    trainer, resume = _resumable_trainer(cfg, "scorer", path.parent, sc.max_steps)
    trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
    _save(trainer, module, path, "scorer", cfg)
    # held-out test of the saved weights: under FSDP, `fit` leaves `module` with its shards only
    tested = _scorer_module(cfg, tokenizer_dir)
    load_stage_weights(tested, path, stage="scorer")
    trainer.test(tested, datamodule=data, verbose=False)
    confusion = tested.test_confusion.compute()
    report = {
        "held_out_split": "test",
        "held_out_triples": int(confusion.sum()),
        "held_out_accuracy": float(confusion.trace() / confusion.sum().clamp(min=1)),
        "confusion_matrix": confusion.tolist(),
        "confusion_matrix_axes": "rows: true label, columns: predicted; labels "
                                 + ", ".join(f"{k} {v}" for k, v in sorted(LABEL_NAMES.items())),
    }
    if global_rank() == 0:
        (path.parent / "scorer_report.json").write_text(json.dumps(report, indent=2))
    log.info("scorer: held-out accuracy %.3f on %d test triples; confusion %s",
             report["held_out_accuracy"], report["held_out_triples"], report["confusion_matrix"])
    return path


def load_scorer(cfg: DictConfig, dm: PersonaDialogDataModule) -> tuple[ConsistencyScorerStage | None, dict]:
    """The trained scorer and its report, or (None, why it is missing)."""
    path = checkpoint_path(cfg, "scorer")
    if not path.exists():
        why = (f"no consistency scorer checkpoint at {path}: Con.Score and Coh-Con.Score are "
               f"reported as missing (train one with stage=scorer, or pass checkpoints.scorer=PATH)")
        log.warning(why)
        return None, {"checkpoint": None, "missing": why}
    module = _scorer_module(cfg, _scorer_tokenizer_dir(cfg, path, dm))
    load_stage_weights(module, path, stage="scorer")
    report_path = path.parent / "scorer_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return module.eval(), {"checkpoint": str(path), **report}
