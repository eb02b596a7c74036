"""Stage hand-off: where a stage's checkpoint lives, and loading it into the next stage.

A stage's checkpoint is found from an explicit path (`checkpoints.<stage>=...`) or, by default,
from a fingerprint of exactly the settings that produced it, so a sweep over codebook.N or
codebook.beta finds and reuses one stage-1 checkpoint in every member.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from morpheus_pl.digest import settings_digest
from morpheus_pl.errors import CheckpointError, ConfigError, MissingCheckpointError
from morpheus_pl.neutral_keys import is_neutral, without_neutral
from morpheus_pl.stage_table import SCORER_SETTINGS, STAGES

log = logging.getLogger("morpheus_pl")

# the settings each stage's fingerprint hashes (stage_table.py), and the consistency scorer's
STAGE_KEYS = {**{name: row.settings for name, row in STAGES.items()}, "scorer": SCORER_SETTINGS}
_IGNORED = ("num_workers", "eval_batch_size", "trust_remote_code")  # change no weights


def _select(cfg: DictConfig, dotted: str):
    value = OmegaConf.select(cfg, dotted)
    value = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
    value = without_neutral(value, dotted)
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in _IGNORED}
    return value


def _stage_settings(cfg: DictConfig, stage: str) -> dict:
    """The settings `stage`'s fingerprint hashes; a neutral key at its neutral value, or
    absent, is left out."""
    absent = object()
    return {key: _select(cfg, key) for key in STAGE_KEYS[stage]
            if not is_neutral(key, OmegaConf.select(cfg, key, default=absent), absent)}


def fingerprint(cfg: DictConfig, stage: str) -> str:
    """Hash of the settings that determine `stage`'s checkpoint (and nothing else)."""
    return settings_digest(_stage_settings(cfg, stage), 12, default=str)


def checkpoint_path(cfg: DictConfig, stage: str) -> Path:
    explicit = OmegaConf.select(cfg, f"checkpoints.{stage}")
    if explicit:
        return Path(explicit)
    return Path(cfg.paths.artifacts) / "stages" / stage / fingerprint(cfg, stage) / "model.ckpt"


def search_objective(cfg: DictConfig) -> float | None:
    """`optimized_metric` ("<stage>:<metric>"): the metric's value at the stage's last validation,
    from the provenance.json its training wrote beside the checkpoint (also when a later run
    reuses the checkpoint); None when no metric is set."""
    if not cfg.get("optimized_metric"):
        return None
    stage, metric = str(cfg.optimized_metric).split(":", 1)
    record = checkpoint_path(cfg, stage).parent / "provenance.json"
    if not record.exists():
        raise CheckpointError(f"optimized_metric={cfg.optimized_metric}: {record} does not exist "
                              f"(a stage checkpoint not trained by this project version?)")
    validation = json.loads(record.read_text()).get("last_validation", {})
    if metric not in validation:
        raise ConfigError(f"optimized_metric={cfg.optimized_metric}: stage {stage} logged no "
                          f"{metric!r} at its last validation; it logged {sorted(validation)}")
    return validation[metric]


def training_budgets(checkpoints) -> dict[str, dict]:
    """What each trained stage behind `checkpoints` trained: its steps, `max_steps`, what
    stopped it (`stopped_by`: max_steps, early_stopping, max_minutes, other) and whether its
    validation loss was still falling then (`still_falling`, where recorded), read from the
    provenance.json beside each checkpoint and the ones it was built on. Checkpoints without
    such a record (given explicitly, or trained before it existed) add nothing."""
    budgets = {}
    for provenance in provenance_chain(checkpoints):
        if "stopped_by" in provenance:
            budgets[provenance["stage"]] = {k: provenance[k] for k in
                                            ("steps", "max_steps", "stopped_by", "still_falling")
                                            if k in provenance}
    return budgets


def provenance_chain(checkpoints) -> Iterator[dict]:
    """The provenance.json records beside `checkpoints` and beside the checkpoints each was
    built on, back to stage 1; checkpoints without one (given explicitly, or trained before
    it existed) are skipped."""
    pending = [Path(c) for c in checkpoints]
    while pending:
        record = pending.pop().parent / "provenance.json"
        if not record.exists():
            continue
        provenance = json.loads(record.read_text())
        yield provenance
        if provenance.get("built_on"):
            pending.append(Path(provenance["built_on"]))


def warn_short_budgets(budgets: dict[str, dict]) -> None:
    """Warn, before an evaluation, of each stage behind it that its wall-time cap cut short or
    that ended its budget while its validation loss still fell: its system may be
    under-trained."""
    for stage, budget in budgets.items():
        if budget["stopped_by"] == "max_minutes":
            log.warning("%s was cut short by its wall-time cap: %d of %d steps (results.json's "
                        "training)", stage, budget["steps"], budget["max_steps"])
        if budget.get("still_falling"):
            log.warning("%s: its validation loss was still falling when its budget ended; the "
                        "systems built on it may be under-trained (results.json's training)", stage)


def run_settings(cfg: DictConfig) -> dict:
    """The resolved config but its paths, logger, stage name, search objective, console output
    and the atlas, export and predict settings: what an evaluation depends on (results.json
    records it, so a sweep can be aggregated from its results alone)."""
    return {k: _select(cfg, k) for k in cfg
            if k not in ("paths", "logger", "stage", "optimized_metric", "print_config", "atlas",
                         "export", "predict")}


def evaluation_dir(cfg: DictConfig) -> Path:
    """Where a finished evaluation with these settings is kept: a hash of `run_settings`
    (pipeline and evaluate give the same evaluation), plus
    whether a scorer checkpoint exists (training one later makes the evaluation stale)."""
    settings = run_settings(cfg)
    settings["scorer_checkpoint_exists"] = checkpoint_path(cfg, "scorer").exists()
    return Path(cfg.paths.artifacts) / "evaluations" / settings_digest(settings, 12, default=str)


def save_stage(module: nn.Module, path: Path, stage: str, cfg: DictConfig,
               state_dict: dict | None = None) -> None:
    """Write weights + the stage's settings atomically (a crash never leaves half a file).

    `state_dict` defaults to the module's; under a sharding strategy pass the full one the
    trainer's strategy assembles (`lightning_module_state_dict`). A frozen pretrained decoder's
    weights are left out (`reloadable_keys`): every stage loads them unchanged from the model
    source, so a PEFT-mode checkpoint holds only what trained.
    """
    reloadable = _reloadable_keys(module)
    state = module.state_dict() if state_dict is None else state_dict
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "stage": stage,
        "fingerprint": fingerprint(cfg, stage),
        "settings": json.dumps(_stage_settings(cfg, stage), default=str),
        "state_dict": {k: v for k, v in state.items() if k not in reloadable},
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    log.info("%s checkpoint written to %s", stage, path)


def _reloadable_keys(module: nn.Module) -> set[str]:
    keys = getattr(module, "reloadable_keys", None)
    return keys() if keys is not None else set()
def read_stage_checkpoint(path: Path) -> dict:
    """The payload `save_stage` wrote, read with `weights_only=True`: tensors and plain
    containers only, so a file holding any other pickled object is refused, never executed."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = next((line for line in lines if re.search("unsupported", line, re.I)), lines[0])
        raise CheckpointError(
            f"checkpoint {path} refused: loaded with weights_only=True (tensors and plain "
            f"containers only, as save_stage writes them), it holds something else: {reason}"
        ) from err
    except Exception as err:  # torch's unpickler fails on corrupt bytes in many ways
        raise CheckpointError(
            f"checkpoint {path} is not a readable torch checkpoint (expected a file written by "
            f"save_stage): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(payload, Mapping) or not isinstance(payload.get("state_dict"), Mapping):
        raise CheckpointError(
            f"checkpoint {path}: expected a stage checkpoint (a dict with a 'state_dict' "
            f"mapping, as written by save_stage), got {type(payload).__name__}"
        )
    return dict(payload)


def load_stage_weights(module: nn.Module, path: Path, new_parts: tuple[str, ...] = (),
                       stage: str = "<stage>") -> dict:
    """Load `stage`'s weights strictly: only `new_parts` (prefixes) may be missing."""
    if not Path(path).exists():
        raise MissingCheckpointError(
            f"checkpoint {path} does not exist: train stage {stage} first (stage=pipeline runs "
            f"every stage) or pass its path: checkpoints.{stage}=/path/model.ckpt"
        )
    payload = read_stage_checkpoint(path)
    state = payload["state_dict"]
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint {path} ({payload.get('stage')}) does not fit {type(module).__name__}: it was "
            f"made with an incompatible decoder or sizes.\n{err}"
        ) from err
    reloadable = _reloadable_keys(module)
    missing = [k for k in missing if not k.startswith(new_parts) and k not in reloadable]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} ({payload.get('stage')}) does not fit {type(module).__name__}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''} (incompatible decoder/encoder?)"
        )
    return payload
