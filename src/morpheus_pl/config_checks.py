"""Checks of the composed config that fail a run before any data or model work: settings that
cannot work together raise a `UserError` (`error: <message>`, exit status 2) at once, not hours
into training."""

from __future__ import annotations

import importlib.util

from omegaconf import DictConfig

from morpheus_pl.errors import ConfigError, MissingPackageError
from morpheus_pl.modules.code_predictor import DECODE_MODES, DISTINCT_MODES, LOSSES
from morpheus_pl.modules.history_reader import READS
from morpheus_pl.stage_table import STAGES, SYSTEM_STAGES

PREFIX_SCHEDULES = ("constant", "linear")  # loss.predicted_prefix_schedule


def check_config(cfg: DictConfig) -> None:
    """Every check that applies to `cfg.stage.name`: strategy, then systems, then the predictor's
    options and decode."""
    check_strategy(cfg.trainer)
    check_optimized_metric(cfg.get("optimized_metric"))
    if cfg.stage.name in ("pipeline", "evaluate"):
        check_systems(cfg)
    if cfg.stage.name in ("joint", "pipeline", "evaluate"):
        check_predictor(cfg.predictor, cfg.eval.compare_decode, cfg.codebook.N)
        check_decode(cfg)
        check_predicted_prefix(cfg.loss)


def check_optimized_metric(value) -> None:
    """`optimized_metric` is null or "<stage>:<metric>" of a trained stage."""
    if value is None:
        return
    stage, sep, metric = str(value).partition(":")
    if not sep or stage not in STAGES or not metric:
        raise ConfigError(f"optimized_metric must be null or '<stage>:<metric>' with a stage of "
                          f"{list(STAGES)} (e.g. 'joint:val/loss_gen_predicted'), got {value!r}")


def check_systems(cfg: DictConfig) -> None:
    """Fail before any training on an `eval.systems` entry that cannot be evaluated."""
    unknown = [s for s in cfg.eval.systems if s not in SYSTEM_STAGES]
    if unknown:
        raise ConfigError(f"eval.systems: unknown system(s) {unknown}; expected some of "
                          f"{list(SYSTEM_STAGES)}")
    if "oracle_codes" in cfg.eval.systems and not cfg.ablation.persona_codebook:
        raise ConfigError(f"eval.systems: oracle_codes needs the persona codebook, which "
                          f"ablation={cfg.ablation.name} removes")


def check_predictor(predictor: DictConfig, compare_decode, n: int) -> None:
    """Fail before any training on a `predictor` option (or `eval.compare_decode` entry) that
    does not exist; the message names the key and its choices."""
    for key, value, choices in (("predictor.loss", predictor.loss, LOSSES),
                                ("predictor.reads", predictor.get("reads", "last"), READS),
                                ("predictor.decode", predictor.decode, DECODE_MODES),
                                *(("eval.compare_decode", mode, DECODE_MODES) for mode in compare_decode)):
        if value not in choices:
            raise ConfigError(f"{key} must be one of {choices}, got {value!r}")
    top_k = predictor.get("expected_top_k")
    if top_k is not None and (type(top_k) is not int or not 1 <= top_k <= n):
        raise ConfigError(f"predictor.expected_top_k must be null (all N codes) or an int in "
                          f"[1, codebook.N={n}], got {top_k!r}")
    samples = predictor.get("rescore_samples", 4)
    if type(samples) is not int or samples < 1:
        raise ConfigError(f"predictor.rescore_samples must be an int >= 1, got {samples!r}")


def check_predicted_prefix(loss: DictConfig) -> None:
    """Train as you infer's settings (stages/joint.py): a share in [0, 1], a known schedule."""
    share = loss.get("predicted_prefix_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ConfigError(f"loss.predicted_prefix_share must be a number in [0, 1], got {share!r}")
    schedule = loss.get("predicted_prefix_schedule", "constant")
    if schedule not in PREFIX_SCHEDULES:
        raise ConfigError(f"loss.predicted_prefix_schedule must be one of {PREFIX_SCHEDULES}, "
                          f"got {schedule!r}")
    if not isinstance(loss.get("predicted_prefix_grad", False), bool):
        raise ConfigError(f"loss.predicted_prefix_grad must be true or false, got "
                          f"{loss.predicted_prefix_grad!r}")


def check_decode(cfg: DictConfig) -> None:
    """Fail before any training when `predictor.decode` cannot pick M codes from N."""
    n, m, decode = cfg.codebook.N, cfg.data.num_segments, cfg.predictor.decode
    if m == "auto":  # known once the data is read (data/prepare.py); run.py checks again then
        return
    if decode in DISTINCT_MODES and cfg.ablation.persona_codebook and n < m:
        raise ConfigError(f"predictor.decode={decode} picks M distinct codes and needs "
                          f"codebook.N >= data.num_segments (N={n}, M={m}): raise codebook.N or "
                          f"set predictor.decode=argmax")


def check_strategy(trainer: DictConfig) -> None:
    """Fail before any data or model work on a strategy that cannot run here: DeepSpeed without
    its package, FSDP on CPUs (Lightning's FSDP needs GPUs)."""
    strategy = str(trainer.get("strategy") or "auto")  # null: Lightning's default
    if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise MissingPackageError(f"trainer.strategy={strategy} needs DeepSpeed, which is not "
                                  f"installed: pip install deepspeed (or choose trainer=ddp or "
                                  f"trainer=fsdp)")
    if strategy.startswith("fsdp") and trainer.get("accelerator") == "cpu":
        raise ConfigError("trainer=fsdp needs GPUs (Lightning's FSDP does not run on CPUs); on "
                          "CPUs use trainer=ddp trainer.accelerator=cpu")
