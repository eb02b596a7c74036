"""stage=pipeline and stage=evaluate: train what is missing, then evaluate every system.

Which trained stage each evaluated system uses (stage_table.py), how it generates
(`generation_kind`), reuse of a finished evaluation with the same settings, building the systems
and the consistency scorer; the scoring loop itself is evaluation.py's `evaluate`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from morpheus_pl.data.sources import world_dir
from morpheus_pl.distributed import global_rank
from morpheus_pl.evaluation import evaluate, evaluation_device
from morpheus_pl.generation import GenerationConfig
from morpheus_pl.handoff import (
    checkpoint_path,
    evaluation_dir,
    run_settings,
    training_budgets,
    warn_short_budgets,
)
from morpheus_pl.loggers import build_loggers
from morpheus_pl.modules.code_predictor import DISTINCT_MODES
from morpheus_pl.pipeline import load_trained, train_stage
from morpheus_pl.scorer.training import load_scorer, train_scorer
from morpheus_pl.stage_table import SYSTEM_STAGES

log = logging.getLogger("morpheus_pl")
EVALUATION_FILES = ("results.json", "results.md", "predictions.jsonl")


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
                if mode in DISTINCT_MODES and cfg.codebook.N < cfg.data.num_segments:
                    log.warning("eval.compare_decode: %s needs N >= M, skipped (N=%d, M=%d)", mode,
                                cfg.codebook.N, cfg.data.num_segments)
                    continue
                systems[f"morpheus/{mode}"] = (module, system, mode)
    t0 = time.perf_counter()
    scorer, scorer_info = load_scorer(cfg, dm)
    scorer = scorer.to(device) if scorer is not None else None
    training = training_budgets(paths.values())
    warn_short_budgets(training)
    extra = {"dataset": cfg.dataset.name, "ablation": {k: cfg.ablation[k] for k in ("name", "label")},
             "timing": timing, "training": training, "scorer": scorer_info, "checkpoints": started_from,
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
