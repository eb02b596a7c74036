"""Hydra entry point: `python -m morpheus_pl.run stage=... dataset=... model=...`.

stage=pipeline (default) trains whatever is missing of role awareness -> codebook init -> joint
training, the no-persona baseline and the consistency scorer, then evaluates MORPHEUS, no_persona
and true_persona on the test split. stage=scorer trains the consistency scorer alone. The last
line printed is the run's output directory.

A problem with the user's data, settings or files (`morpheus_pl.errors.UserError`: a bad data
record, a setting that cannot work, a missing checkpoint or model) ends the run with
`error: <message>` on stderr and exit status 2, no traceback; with the environment variable
HYDRA_FULL_ERROR=1 it is re-raised and the full traceback shows. Other exceptions are bugs and
keep their traceback.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from morpheus_pl.allocator import tune_glibc_malloc
from morpheus_pl.data.prepare import prepare_data
from morpheus_pl.data.sources import world_dir
from morpheus_pl.distributed import global_rank
from morpheus_pl.errors import ConfigError, MissingPackageError, UserError
from morpheus_pl.evaluation import evaluate, evaluation_device
from morpheus_pl.generation import GenerationConfig
from morpheus_pl.handoff import checkpoint_path, evaluation_dir, run_settings
from morpheus_pl.loggers import build_loggers, finish_wandb
from morpheus_pl.pipeline import load_scorer, load_trained, train_scorer, train_stage

log = logging.getLogger("morpheus_pl")
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
TRAINED = ("role_awareness", "codebook_init", "joint", "no_persona")
EVALUATION_FILES = ("results.json", "results.md", "predictions.jsonl")
SYSTEM_STAGES = {"morpheus": "joint", "no_persona": "no_persona", "true_persona": "role_awareness",
                 "oracle_codes": "joint"}


def run(cfg: DictConfig) -> Path:
    """Run the configured stage; returns the output directory."""
    check_strategy(cfg.trainer)
    if cfg.stage.name in ("pipeline", "evaluate"):
        check_systems(cfg)
    if cfg.stage.name in ("joint", "pipeline", "evaluate"):
        check_decode(cfg)
    if cfg.tune_malloc:
        tune_glibc_malloc()
    out_dir = Path(cfg.paths.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dm, tokenizer_dir = prepare_data(cfg)
    stage = cfg.stage.name
    timing = {}
    if stage in TRAINED:
        train_stage(cfg, stage, dm, tokenizer_dir)
    elif stage == "scorer":
        train_scorer(cfg, dm)
    elif stage in ("pipeline", "evaluate"):
        evaluate_stage(cfg, dm, tokenizer_dir, out_dir, timing)
    else:
        raise ConfigError(
            f"unknown stage {stage!r}: one of {TRAINED + ('scorer', 'pipeline', 'evaluate')}")
    timing["total_s"] = round(time.perf_counter() - started, 1)
    timing["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    log.info("timing: %s", timing)
    log.info("outputs in %s", out_dir)
    return out_dir


def check_systems(cfg: DictConfig) -> None:
    """Fail before any training on an `eval.systems` entry that cannot be evaluated."""
    unknown = [s for s in cfg.eval.systems if s not in SYSTEM_STAGES]
    if unknown:
        raise ConfigError(f"eval.systems: unknown system(s) {unknown}; expected some of "
                          f"{list(SYSTEM_STAGES)}")
    if "oracle_codes" in cfg.eval.systems and not cfg.ablation.persona_codebook:
        raise ConfigError(f"eval.systems: oracle_codes needs the persona codebook, which "
                          f"ablation={cfg.ablation.name} removes")


def check_decode(cfg: DictConfig) -> None:
    """Fail before any training when `predictor.decode` cannot pick M codes from N."""
    n, m = cfg.codebook.N, cfg.data.num_segments
    if cfg.predictor.decode == "top_m_distinct" and cfg.ablation.persona_codebook and n < m:
        raise ConfigError(f"predictor.decode=top_m_distinct picks M distinct codes and needs "
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


def evaluate_stage(cfg: DictConfig, dm, tokenizer_dir: str, out_dir: Path, timing: dict) -> None:
    """Generate and score every system (training what is missing under stage=pipeline).

    An evaluation with exactly these settings that already finished is copied, not re-run
    (`eval.skip_existing`, on by default), so re-running a sweep skips finished members.
    Under a distributed strategy all ranks train; rank 0 alone generates and writes.
    """
    pipeline = cfg.stage.name == "pipeline"
    if pipeline and cfg.eval.train_scorer:
        t0 = time.perf_counter()
        train_scorer(cfg, dm)
        timing["train_scorer_s"] = round(time.perf_counter() - t0, 1)
    done = evaluation_dir(cfg)
    finished = cfg.eval.skip_existing and (done / "results.json").exists()
    paths = {}
    for system in [] if finished else cfg.eval.systems:
        t0 = time.perf_counter()
        stage_name = SYSTEM_STAGES[system]
        paths[system] = (train_stage(cfg, stage_name, dm, tokenizer_dir) if pipeline
                         else checkpoint_path(cfg, stage_name))
        timing[f"train_{system}_s"] = round(time.perf_counter() - t0, 1)
    if global_rank() > 0:
        return
    if finished:
        for name in EVALUATION_FILES:
            shutil.copy2(done / name, out_dir / name)
        log.info("evaluation with these settings already done: copied %s (eval.skip_existing=false "
                 "re-runs it)", done)
        return
    systems, started_from, parameters = {}, {}, {}
    device = evaluation_device(cfg.trainer.accelerator)
    for system, path in paths.items():
        stage_name = SYSTEM_STAGES[system]
        started_from[system] = str(path)
        module = load_trained(cfg, stage_name, tokenizer_dir, path).to(device)
        parameters[system] = module.parameter_budget()
        kind = generation_kind(cfg, system)
        systems[system] = (module, kind, cfg.predictor.decode)
        if kind == "morpheus":
            for mode in cfg.eval.compare_decode:
                if mode == "top_m_distinct" and cfg.codebook.N < cfg.data.num_segments:
                    log.warning("eval.compare_decode: top_m_distinct needs N >= M, skipped (N=%d, "
                                "M=%d)", cfg.codebook.N, cfg.data.num_segments)
                    continue
                systems[f"morpheus/{mode}"] = (module, system, mode)
    t0 = time.perf_counter()
    scorer, scorer_info = load_scorer(cfg, dm)
    scorer = scorer.to(device) if scorer is not None else None
    extra = {"dataset": cfg.dataset.name, "ablation": {k: cfg.ablation[k] for k in ("name", "label")},
             "timing": timing, "scorer": scorer_info, "checkpoints": started_from,
             "peft": cfg.peft.name, "parameters": parameters, "config": run_settings(cfg)}
    if cfg.dataset.source == "world":
        world = world_dir(cfg.dataset.root, OmegaConf.to_container(cfg.dataset.world)) / "world.json"
        extra["world"] = json.loads(world.read_text())
    evaluate(systems, dm, out_dir, GenerationConfig(**cfg.generation), list(cfg.eval.seeds),
             cfg.dataset.sacrebleu_tokenize, extra, scorer, build_loggers(cfg, "evaluate"),
             cfg.eval.self_bleu)
    timing["evaluate_s"] = round(time.perf_counter() - t0, 1)
    done.mkdir(parents=True, exist_ok=True)
    for name in EVALUATION_FILES:
        shutil.copy2(out_dir / name, done / name)


def generation_kind(cfg: DictConfig, system: str) -> str:
    """How `system` generates: MORPHEUS without a persona codebook (w/o PC) has no prefix."""
    if system == "morpheus" and not cfg.ablation.persona_codebook:
        return "no_persona"
    return system


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        out_dir = run(cfg)
    except UserError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        finish_wandb()
    print(out_dir)


if __name__ == "__main__":
    main()
