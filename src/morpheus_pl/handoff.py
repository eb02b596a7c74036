"""Stage hand-off: where a stage's checkpoint lives, and loading it into the next stage.

A stage's checkpoint is found from an explicit path (`checkpoints.<stage>=...`) or, by default,
from a fingerprint of exactly the settings that produced it, so a sweep over codebook.N or
codebook.beta finds and reuses one stage-1 checkpoint in every member.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

log = logging.getLogger("morpheus_pl")

_SHARED = ("dataset", "model", "data", "optim", "seed")
_PERSONA = (*_SHARED, "encoder", "projector")
_AFTER_RA = (*_PERSONA, "ablation.role_awareness", "train.role_awareness")
STAGE_KEYS = {  # the ablation's label is not a key: only what changes the training is
    "role_awareness": (*_PERSONA, "train.role_awareness"),
    "codebook_init": (*_AFTER_RA, "codebook"),
    "joint": (*_AFTER_RA, "codebook", "ablation.persona_codebook", "predictor", "loss",
              "train.joint"),
    "no_persona": (*_SHARED, "train.no_persona"),
    "scorer": ("dataset", "scorer", "seed"),
}
_IGNORED = ("num_workers", "eval_batch_size")


def _select(cfg: DictConfig, dotted: str):
    value = OmegaConf.select(cfg, dotted)
    value = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in _IGNORED}
    return value


def fingerprint(cfg: DictConfig, stage: str) -> str:
    """Hash of the settings that determine `stage`'s checkpoint (and nothing else)."""
    settings = {key: _select(cfg, key) for key in STAGE_KEYS[stage]}
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def checkpoint_path(cfg: DictConfig, stage: str) -> Path:
    explicit = OmegaConf.select(cfg, f"checkpoints.{stage}")
    if explicit:
        return Path(explicit)
    return Path(cfg.paths.artifacts) / "stages" / stage / fingerprint(cfg, stage) / "model.ckpt"


def run_settings(cfg: DictConfig) -> dict:
    """The resolved config but its paths, logger and stage name: what an evaluation depends on
    (results.json records it, so a sweep can be aggregated from its results alone)."""
    return {k: _select(cfg, k) for k in cfg if k not in ("paths", "logger", "stage")}


def evaluation_dir(cfg: DictConfig) -> Path:
    """Where a finished evaluation with these settings is kept: a hash of the whole config but
    its paths, logger and stage name (pipeline and evaluate give the same evaluation), plus
    whether a scorer checkpoint exists (training one later makes the evaluation stale)."""
    settings = run_settings(cfg)
    settings["scorer_checkpoint_exists"] = checkpoint_path(cfg, "scorer").exists()
    blob = json.dumps(settings, sort_keys=True, default=str)
    return Path(cfg.paths.artifacts) / "evaluations" / hashlib.sha1(blob.encode()).hexdigest()[:12]


def save_stage(module: nn.Module, path: Path, stage: str, cfg: DictConfig) -> None:
    """Write weights + the stage's settings atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "stage": stage,
        "fingerprint": fingerprint(cfg, stage),
        "settings": json.dumps({k: _select(cfg, k) for k in STAGE_KEYS[stage]}, default=str),
        "state_dict": module.state_dict(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    log.info("%s checkpoint written to %s", stage, path)


def load_stage_weights(module: nn.Module, path: Path, new_parts: tuple[str, ...] = ()) -> dict:
    """Load a previous stage's weights strictly: only `new_parts` (prefixes) may be missing."""
    if not Path(path).exists():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist: run the previous stage first (stage=pipeline runs "
            f"all of them) or pass its path, e.g. checkpoints.role_awareness=/path/model.ckpt"
        )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    state = payload["state_dict"]
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint {path} ({payload.get('stage')}) does not fit {type(module).__name__}: it was "
            f"made with an incompatible decoder or sizes.\n{err}"
        ) from err
    missing = [k for k in missing if not k.startswith(new_parts)]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} ({payload.get('stage')}) does not fit {type(module).__name__}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''} (incompatible decoder/encoder?)"
        )
    return payload
