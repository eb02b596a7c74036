"""Hydra entry point: `python -m morpheus_pl.run stage=... dataset=... model=...`.

stage=pipeline (default) trains whatever is missing of role awareness -> codebook init -> joint
training, the no-persona baseline and the consistency scorer, then evaluates MORPHEUS, no_persona
and true_persona on the test split, and writes the model bundle (model/). stage=scorer trains the
consistency scorer alone; stage=export writes the bundle of a trained run, stage=predict replies
to a file of dialogues from a bundle (docs/using_a_trained_model.md). The last line printed is the
run's output directory (export: the bundle; predict: the predictions file).

This module only dispatches: the config checks are config_checks.py's, training a stage
pipeline.py's, stage=pipeline/evaluate evaluation_stage.py's, export export.py's, predict
predict.py's.

A problem with the user's data, settings or files (`morpheus_pl.errors.UserError`: a bad data
record, a setting that cannot work, a missing checkpoint or model) ends the run with
`error: <message>` on stderr and exit status 2, no traceback; with the environment variable
HYDRA_FULL_ERROR=1 it is re-raised and the full traceback shows. Other exceptions are bugs and
keep their traceback.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from morpheus_pl.allocator import tune_glibc_malloc
from morpheus_pl.config_checks import check_config
from morpheus_pl.data.prepare import prepare_data
from morpheus_pl.distributed import global_rank
from morpheus_pl.errors import ConfigError, UserError
from morpheus_pl.evaluation_stage import evaluate_stage
from morpheus_pl.export import export_after_pipeline, export_bundle
from morpheus_pl.handoff import search_objective
from morpheus_pl.loggers import finish_wandb, print_config_tree, record_config
from morpheus_pl.pipeline import train_stage
from morpheus_pl.predict import predict_stage
from morpheus_pl.scorer.training import train_scorer
from morpheus_pl.stage_table import STAGES

log = logging.getLogger("morpheus_pl")
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def run(cfg: DictConfig) -> Path:
    """Run the configured stage; returns the path its last printed line names: the output
    directory, the bundle (stage=export) or the predictions file (stage=predict)."""
    check_config(cfg)
    if cfg.tune_malloc:
        tune_glibc_malloc()
    out_dir = Path(cfg.paths.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    if global_rank() == 0 and cfg.print_config:
        print_config_tree(cfg)
    started = time.perf_counter()
    stage = cfg.stage.name
    if stage == "predict":  # from a bundle: no dataset, no stage checkpoints
        return predict_stage(cfg, out_dir)
    dm, tokenizer_dir = prepare_data(cfg)
    check_config(cfg)  # again, with what the data decided (data.num_segments=auto)
    if global_rank() == 0:
        record_config(cfg, out_dir)
    timing, printed = {}, out_dir
    if stage in STAGES:
        train_stage(cfg, stage, dm, tokenizer_dir)
    elif stage == "scorer":
        train_scorer(cfg, dm)
    elif stage in ("pipeline", "evaluate"):
        evaluate_stage(cfg, dm, tokenizer_dir, out_dir, timing)
        if stage == "pipeline" and global_rank() == 0:
            export_after_pipeline(cfg, dm, tokenizer_dir)
    elif stage == "export":
        printed = export_bundle(cfg, dm, tokenizer_dir)
    else:
        raise ConfigError(f"unknown stage {stage!r}: one of "
                          f"{(*STAGES, 'scorer', 'pipeline', 'evaluate', 'export', 'predict')}")
    timing["total_s"] = round(time.perf_counter() - started, 1)
    timing["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    log.info("timing: %s", timing)
    log.info("outputs in %s", out_dir)
    return printed


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run; returns `optimized_metric`'s value, the objective of a hparams_search sweep."""
    try:
        printed = run(cfg)
        objective = search_objective(cfg)
    except UserError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        finish_wandb()
    print(printed)
    return objective


if __name__ == "__main__":
    main()
