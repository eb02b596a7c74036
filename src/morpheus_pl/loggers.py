"""Experiment loggers from the `logger` config group: CSV (default), TensorBoard, W&B.

W&B runs are named from the configuration so a dashboard reads like the paper: the project from
`logger.project`, one group per sweep (dataset / decoder / sweep folder; a single run gets its
own), job_type = the stage, tags for dataset, decoder, stage, N, β, init, seed, ablation and the
experiment's own tags, and the resolved config. Without an API key (or with WANDB_MODE=offline)
W&B logs offline, says so once, and never waits for a login; `wandb sync` uploads later.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from morpheus_pl.errors import ConfigError

log = logging.getLogger("morpheus_pl")
_OFFLINE_MODES = ("offline", "dryrun", "disabled")
_said_offline = False


def _choice(cfg: DictConfig, group: str) -> str:
    """The config-group option chosen on the command line (e.g. model=tiny), else a fallback."""
    try:
        return HydraConfig.get().runtime.choices[group]
    except ValueError:  # composed outside a Hydra app (tests, notebooks)
        return str(OmegaConf.select(cfg, f"{group}.name_or_path") or OmegaConf.select(cfg, f"{group}.name") or group)


def _sweep_name() -> str | None:
    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:
        return None
    return Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode.name == "MULTIRUN" else None


def has_wandb_key() -> bool:
    """Whether W&B could log in without asking: WANDB_API_KEY or a netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_offline(setting: str | bool) -> bool:
    """logger.offline: true/false, or "auto" = offline unless a key is there and WANDB_MODE allows."""
    if setting != "auto":
        return bool(setting)
    return os.environ.get("WANDB_MODE", "").lower() in _OFFLINE_MODES or not has_wandb_key()


def run_tags(cfg: DictConfig, stage: str) -> list[str]:
    """dataset, decoder, stage, N, β, init, seed, ablation, and logger.tags."""
    return [
        f"dataset={cfg.dataset.name}", f"model={_choice(cfg, 'model')}", f"stage={stage}",
        f"N={cfg.codebook.N}", f"beta={cfg.codebook.beta}", f"init={cfg.codebook.init}",
        f"seed={cfg.seed}", f"ablation={cfg.ablation.name}",
        *[str(t) for t in OmegaConf.select(cfg, "logger.tags", default=[]) or []],
    ]


def build_loggers(cfg: DictConfig, stage: str) -> list[Logger]:
    """The configured logger for one stage (one W&B run per stage), writing under the run's
    output folder."""
    out = Path(cfg.paths.output)
    kind = cfg.logger.kind
    if kind == "csv":
        return [CSVLogger(str(out / "logs"), name=stage)]
    if kind == "tensorboard":
        return [TensorBoardLogger(str(out / "tensorboard"), name=stage)]
    if kind == "wandb":
        return [_wandb_logger(cfg, stage, out)]
    raise ConfigError(f"logger.kind must be csv, tensorboard or wandb, got {kind!r}")


def _wandb_logger(cfg: DictConfig, stage: str, out: Path) -> WandbLogger:
    global _said_offline
    offline = wandb_offline(cfg.logger.offline)
    if offline and not _said_offline:
        log.info("W&B: %s, logging offline under %s; upload later with `wandb sync %s/wandb/offline-run-*`",
                 "WANDB_MODE is offline" if has_wandb_key() else "no API key found", out, out)
        _said_offline = True
    dataset, model = cfg.dataset.name, _choice(cfg, "model")
    sweep = _sweep_name()
    group = cfg.logger.group or "/".join(x for x in (dataset, model, sweep) if x)
    out.mkdir(parents=True, exist_ok=True)
    finish_wandb()  # Lightning's WandbLogger would otherwise reuse the previous stage's run
    return WandbLogger(
        project=cfg.logger.project, entity=cfg.logger.entity, group=group, job_type=stage,
        name=f"{stage}-{out.name}", tags=run_tags(cfg, stage), save_dir=str(out), offline=offline,
        config=OmegaConf.to_container(cfg, resolve=True), log_model=False,
    )


def finish_wandb() -> None:
    """Close the active W&B run, if any (each stage opened one); nothing when W&B was never
    imported (it need not be installed for the other loggers)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def record_config(cfg: DictConfig, out_dir: Path) -> Path:
    """Write the resolved config (every interpolation filled in, as the run uses it) to
    `out_dir/config_resolved.yaml` (Hydra's `.hydra/config.yaml` keeps the interpolations) and
    log the chosen config-group options on one line; returns the file."""
    groups = ("stage", "dataset", "model", "encoder", "peft", "trainer", "ablation")
    path = out_dir / "config_resolved.yaml"
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info("config: %s (resolved: %s)", " ".join(f"{g}={_choice(cfg, g)}" for g in groups), path)
    return path


def print_config_tree(cfg: DictConfig, console=None) -> None:
    """Print the resolved config at start as a tree: one branch per top-level section, its YAML
    inside (`print_config: false` turns it off)."""
    tree = Tree("config", guide_style="dim")
    for key in cfg:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(str(key)).add(Syntax(text.rstrip(), "yaml", theme="ansi_dark"))
    (console or Console()).print(tree)
