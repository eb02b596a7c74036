"""Stage orchestration: data + tokenizer, then each stage trained once and handed on.

`train_stage` returns the checkpoint of a stage, training it (and what it builds on) only when
no checkpoint with the same fingerprint exists; an interrupted stage resumes from its last
Lightning checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.handoff import checkpoint_path, load_stage_weights, save_stage
from morpheus_pl.modules.decoder import load_tokenizer, train_tokenizer
from morpheus_pl.stages.base import PersonaDialogStage
from morpheus_pl.stages.codebook_init import CodebookInitStage
from morpheus_pl.stages.joint import JointTrainingStage
from morpheus_pl.stages.no_persona import NoPersonaStage
from morpheus_pl.stages.role_awareness import RoleAwarenessStage

log = logging.getLogger("morpheus_pl")
STAGE_CLASSES = {
    "role_awareness": RoleAwarenessStage,
    "codebook_init": CodebookInitStage,
    "joint": JointTrainingStage,
    "no_persona": NoPersonaStage,
}
PREVIOUS = {"codebook_init": "role_awareness", "joint": "codebook_init"}
NEW_PARTS = {"codebook_init": ("codebook.",), "joint": ("predictor.",)}


def _plain(cfg: DictConfig, key: str) -> dict:
    return OmegaConf.to_container(cfg[key], resolve=True)


def prepare_data(cfg: DictConfig) -> tuple[PersonaDialogDataModule, str]:
    """The DataModule with its tokenizers set, and the folder of the saved decoder tokenizer.

    A tokenizer trained here (model.tokenizer.train_vocab_size) is trained on the training split
    and saved by fingerprint, so every later stage and evaluation uses exactly the same one.
    """
    dm = PersonaDialogDataModule(dataset=_plain(cfg, "dataset"), **_plain(cfg, "data"))
    tok_cfg = _plain(cfg, "model")["tokenizer"]
    key = json.dumps([_plain(cfg, "dataset"), tok_cfg], sort_keys=True, default=str)
    tok_dir = Path(cfg.paths.artifacts) / "tokenizers" / hashlib.sha1(key.encode()).hexdigest()[:12]
    saved = (tok_dir / "tokenizer.json").exists()
    if saved:
        tokenizer = load_tokenizer(tok_dir)
    elif tok_cfg.get("train_vocab_size"):
        tokenizer = train_tokenizer(dm.training_texts(), tok_cfg["train_vocab_size"], tok_dir)
    else:
        tokenizer = load_tokenizer(tok_cfg["name_or_path"])
    segment_tokenizer = None
    if cfg.encoder.kind == "pretrained":
        segment_tokenizer = load_tokenizer(cfg.encoder.name_or_path)
    dm.set_tokenizers(tokenizer, segment_tokenizer)
    if not saved:
        tokenizer.save_pretrained(str(tok_dir))
    dm.setup()
    return dm, str(tok_dir)


def build_stage(cfg: DictConfig, stage: str, tokenizer_dir: str) -> PersonaDialogStage:
    """A stage's LightningModule from the composed config (seeded, so the init is repeatable)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    kwargs = dict(
        tokenizer_dir=tokenizer_dir,
        model=_plain(cfg, "model"),
        encoder=_plain(cfg, "encoder"),
        projector=_plain(cfg, "projector"),
        optim=_plain(cfg, "optim"),
        loss=_plain(cfg, "loss"),
    )
    if stage in ("codebook_init", "joint"):
        kwargs["codebook"] = _plain(cfg, "codebook")
    if stage == "joint":
        kwargs["predictor"] = _plain(cfg, "predictor")
    return STAGE_CLASSES[stage](**kwargs)


def _trainer(cfg: DictConfig, stage: str, work_dir: Path, max_steps: int, callbacks=()) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps,
        default_root_dir=str(work_dir),
        logger=CSVLogger(str(Path(cfg.paths.output) / "logs"), name=stage),
        callbacks=list(callbacks),
        **_plain(cfg, "trainer"),
    )


def train_stage(cfg: DictConfig, stage: str, dm: PersonaDialogDataModule, tokenizer_dir: str) -> Path:
    """Checkpoint of `stage`: reused when it exists, else trained on top of the previous stage."""
    path = checkpoint_path(cfg, stage)
    if path.exists():
        log.info("%s: reusing %s", stage, path)
        return path
    previous = PREVIOUS.get(stage)
    previous_path = train_stage(cfg, previous, dm, tokenizer_dir) if previous else None
    module = build_stage(cfg, stage, tokenizer_dir)
    if previous_path is not None:
        load_stage_weights(module, previous_path, NEW_PARTS[stage])
    work_dir = path.parent
    if stage == "codebook_init":
        trainer = _trainer(cfg, stage, work_dir, max_steps=-1)
        vectors = torch.cat(trainer.predict(module, dataloaders=dm.persona_dataloader()))
        module.fit_codebook(vectors, seed=cfg.seed)
    else:
        steps = cfg.train[stage].max_steps
        last = ModelCheckpoint(dirpath=str(work_dir / "resume"), save_last=True,
                               every_n_train_steps=cfg.train.checkpoint_every_n_steps)
        trainer = _trainer(cfg, stage, work_dir, steps, [last])
        resume = work_dir / "resume" / "last.ckpt"
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume.exists() else None)
    save_stage(module, path, stage, cfg)
    (path.parent / "provenance.json").write_text(json.dumps(
        {"stage": stage, "built_on": str(previous_path) if previous_path else None}, indent=2))
    return path


def load_trained(cfg: DictConfig, stage: str, tokenizer_dir: str, path: Path) -> PersonaDialogStage:
    """A stage module with its trained weights, for evaluation."""
    module = build_stage(cfg, stage, tokenizer_dir)
    load_stage_weights(module, path)
    return module.eval()
