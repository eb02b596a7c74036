"""Train, test and load the consistency scorer like a stage: reused by fingerprint, trained
under the same lock, resumable, with the same trainer settings (morpheus_pl.pipeline)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from morpheus_pl import pipeline
from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.distributed import global_rank, run_id, training_lock
from morpheus_pl.handoff import checkpoint_path, load_stage_weights
from morpheus_pl.scorer.classifier import train_pair_tokenizer
from morpheus_pl.scorer.module import ConsistencyScorerStage
from morpheus_pl.scorer.triples import LABEL_NAMES, ConsistencyDataModule

log = logging.getLogger("morpheus_pl")


def _scorer_module(cfg: DictConfig, tokenizer_dir: Path) -> ConsistencyScorerStage:
    sc = pipeline._plain(cfg, "scorer")
    return ConsistencyScorerStage(str(tokenizer_dir), sc["model"], sc["optim"], sc["max_length"],
                                  sc["max_context_turns"])


def _scorer_tokenizer_dir(cfg: DictConfig, path: Path, dm: PersonaDialogDataModule) -> Path | str:
    """A trained scorer tokenizer lives beside its checkpoint; a pretrained one is its model's."""
    model = pipeline._plain(cfg, "scorer")["model"]
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
    trainer, resume = pipeline._resumable_trainer(cfg, "scorer", path.parent, sc.max_steps)
    trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
    pipeline._save(trainer, module, path, "scorer", cfg)
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
