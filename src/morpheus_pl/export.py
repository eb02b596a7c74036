"""stage=export: the trained joint stage as a model bundle (bundle_files.py, loaded by
bundle.py's `MorpheusModel`) with its codebook atlas, its checkpoint found as stage=evaluate
finds it; stage=pipeline writes one at its end too (`export.pipeline`)."""

from __future__ import annotations

import logging
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from morpheus_pl.atlas_files import ATLAS_FILES, atlas_is_current, stage_atlas
from morpheus_pl.bundle_files import write_bundle
from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.errors import ConfigError
from morpheus_pl.handoff import checkpoint_path, fingerprint, load_stage_weights
from morpheus_pl.pipeline import build_stage

log = logging.getLogger("morpheus_pl")
BUNDLED_STAGES = ("role_awareness", "codebook_init", "joint")  # the joint stage and what it builds on
DATA_KEYS = ("num_segments", "max_history_tokens", "max_response_tokens", "max_segment_tokens")


def export_dir(cfg: DictConfig) -> Path:
    """`export.dir`, or `model/` in the run's output directory."""
    return Path(cfg.export.dir) if cfg.export.dir else Path(cfg.paths.output) / "model"


def export_bundle(cfg: DictConfig, dm: PersonaDialogDataModule, tokenizer_dir: str) -> Path:
    """Write the bundle of the joint stage these settings trained; returns its folder."""
    if not cfg.ablation.persona_codebook:
        raise ConfigError(f"stage=export bundles MORPHEUS's persona codebook, which "
                          f"ablation={cfg.ablation.name} removes")
    path = checkpoint_path(cfg, "joint")
    module = build_stage(cfg, "joint", tokenizer_dir)
    payload = load_stage_weights(module, path, stage="joint")
    config = bundle_config(cfg, module.eval(), path, payload)
    atlas = []
    if cfg.atlas.k > 0:  # a checkpoint trained before atlases existed gets its atlas now
        if not atlas_is_current(path.parent, cfg.atlas.k):
            stage_atlas(module, dm, path.parent, "joint", cfg.atlas.k)
        atlas = [path.parent / name for name in ATLAS_FILES]
    out = write_bundle(module, export_dir(cfg), config, dm.segment_tokenizer, atlas)
    log.info("model bundle written to %s", out)
    return out


def export_after_pipeline(cfg: DictConfig, dm: PersonaDialogDataModule, tokenizer_dir: str) -> None:
    """stage=pipeline's bundle, where it trained MORPHEUS with its codebook."""
    if cfg.export.pipeline and "morpheus" in cfg.eval.systems and cfg.ablation.persona_codebook:
        export_bundle(cfg, dm, tokenizer_dir)


def bundle_config(cfg: DictConfig, module, checkpoint: Path, payload: dict) -> dict:
    """config.json but the stage's constructor arguments and buffers (bundle_files.py adds them)."""
    layout = module.projector.layout
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return {
        "dataset": {"name": cfg.dataset.name, "separator": cfg.dataset.separator},
        "data": {key: cfg.data[key] for key in DATA_KEYS},
        "generation": OmegaConf.to_container(cfg.generation, resolve=True),
        "decode": cfg.predictor.decode,
        "sizes": {"M": cfg.data.num_segments, "N": cfg.codebook.N, "hidden_size": module.hidden_size,
                  "projector": {"layers": layout.n_layers, "kv_heads": layout.kv_heads,
                                "head_dim": layout.head_dim, "kv": module.projector.kv,
                                "positions": module.projector.positions},
                  "predictor": {"slots": cfg.predictor.num_slots, "codes": cfg.codebook.N,
                                "hidden_multiplier": cfg.predictor.hidden_multiplier}},
        "decoder": {"source": model["source"], "name_or_path": model["name_or_path"],
                    "gguf_file": model.get("gguf_file"), "frozen": bool(cfg.peft.freeze_decoder),
                    "model_type": module.decoder.config.model_type},
        "encoder": {"kind": cfg.encoder.kind, "pooling": cfg.encoder.pooling,
                    "name_or_path": cfg.encoder.name_or_path},
        "provenance": {"checkpoint": str(checkpoint), "checkpoint_fingerprint": payload.get("fingerprint"),
                       "fingerprints": {stage: fingerprint(cfg, stage) for stage in BUNDLED_STAGES},
                       "ablation": cfg.ablation.name, "seed": cfg.seed, **git_commit(),
                       "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


def git_commit() -> dict:
    """The commit of the code that exports (and whether tracked files differ from it); None
    outside a git checkout."""
    repo = str(Path(__file__).resolve().parents[2])
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        status = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": None}
    if head.returncode != 0:
        return {"git_commit": None}
    return {"git_commit": head.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
