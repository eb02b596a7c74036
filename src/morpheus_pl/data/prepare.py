"""The data of a run: the DataModule with its tokenizers, the decoder's tokenizer trained on the
training split (model.tokenizer.train_vocab_size) or loaded, saved by fingerprint."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.digest import settings_digest
from morpheus_pl.distributed import global_rank, wait_for
from morpheus_pl.modules.decoder import load_tokenizer, train_tokenizer
from morpheus_pl.neutral_keys import without_neutral

log = logging.getLogger("morpheus_pl")


def tokenizer_dir(cfg: DictConfig) -> Path:
    """Where the decoder tokenizer of this dataset and model.tokenizer is saved: a fingerprint
    of both (neutral keys at their neutral value left out: morpheus_pl/neutral_keys.py)."""
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    tok_cfg = OmegaConf.to_container(cfg.model, resolve=True)["tokenizer"]
    key = [without_neutral(dataset, "dataset"), without_neutral(tok_cfg, "model.tokenizer")]
    return Path(cfg.paths.artifacts) / "tokenizers" / settings_digest(key, 12, default=str)


def record_num_segments(cfg: DictConfig, dm: PersonaDialogDataModule) -> int:
    """M (Eq. 3) as the DataModule decides it (`data.num_segments: auto`: from the training
    personas), written into `cfg` so that every fingerprint, the predictor's slots and
    results.json see the number."""
    m = dm.resolve_num_segments()
    if cfg.data.num_segments == "auto":
        with open_dict(cfg):
            cfg.data.num_segments = m
        log.info("data.num_segments=auto: M = %d, the most segments of a training persona", m)
    return m


def prepare_data(cfg: DictConfig) -> tuple[PersonaDialogDataModule, str]:
    """The DataModule with its tokenizers set, and the folder of the saved decoder tokenizer.

    A tokenizer trained here (model.tokenizer.train_vocab_size) is trained on the training split
    and saved by fingerprint, so every later stage and evaluation uses exactly the same one.
    Rank 0 writes the data and the tokenizer (whole: saved aside, then renamed); the other ranks
    of a run whose launcher starts all ranks at once (SLURM, torchrun) wait for the tokenizer.
    """
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    tok_cfg = OmegaConf.to_container(cfg.model, resolve=True)["tokenizer"]
    tok_dir = tokenizer_dir(cfg)
    if global_rank() > 0:
        wait_for(lambda: (tok_dir / "tokenizer.json").exists(), f"rank 0 to write {tok_dir}")
    dm = PersonaDialogDataModule(dataset=dataset, seed=cfg.seed,
                                 **OmegaConf.to_container(cfg.data, resolve=True))
    record_num_segments(cfg, dm)
    saved = (tok_dir / "tokenizer.json").exists()
    trust_decoder_code = bool(cfg.model.get("trust_remote_code", False))
    staging = tok_dir.with_name(f"{tok_dir.name}.{os.getpid()}.tmp")
    if saved:
        tokenizer = load_tokenizer(tok_dir, trust_remote_code=trust_decoder_code)
    elif tok_cfg.get("train_vocab_size"):
        tokenizer = train_tokenizer(dm.training_texts(), tok_cfg["train_vocab_size"], staging)
    else:
        tokenizer = load_tokenizer(tok_cfg["name_or_path"], gguf_file=tok_cfg.get("gguf_file"),
                                   trust_remote_code=trust_decoder_code)
    segment_tokenizer = None
    if cfg.encoder.kind == "pretrained":
        trust_encoder_code = bool(cfg.encoder.get("trust_remote_code", False))
        segment_tokenizer = load_tokenizer(cfg.encoder.name_or_path,
                                           trust_remote_code=trust_encoder_code)
    dm.set_tokenizers(tokenizer, segment_tokenizer)
    if not saved:
        tokenizer.save_pretrained(str(staging))
        try:
            staging.rename(tok_dir)
        except OSError:  # a parallel run saved the same tokenizer first
            shutil.rmtree(staging)
    dm.setup()
    return dm, str(tok_dir)
