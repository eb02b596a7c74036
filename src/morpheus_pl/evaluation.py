"""Evaluation on the test split: generate with every system, score, write the reports.

Writes into the run's output directory:
  predictions.jsonl  one line per test example and system (first seed): persona, history,
                     reference, prediction, predicted and gold codes, the scorer's label
  results.json       {system: {metric: mean}} plus per-seed values and run facts; with each
                     system's generation time, `generate_s_per_example` (wall seconds, the
                     code decoding included; machine-dependent, not a quality metric)
  results.md         the same as a table laid out like the paper's Table 2
and logs every system's metrics to the given Lightning loggers.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from lightning.pytorch.loggers import Logger
from tqdm import tqdm

from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.errors import DeviceUnavailableError
from morpheus_pl.generation import GenerationConfig, generate_batch
from morpheus_pl.metrics.fact_recall import fact_recall_scores
from morpheus_pl.metrics.report import ONE_PROCESS, metric_tokenizer_name, score_predictions
from morpheus_pl.metrics.table_columns import TABLE_GROUPS
from morpheus_pl.modules.code_predictor import set_recall
from morpheus_pl.scorer.metric import ConsistencyScore
from morpheus_pl.scorer.module import ConsistencyScorerStage
from morpheus_pl.stages.base import PersonaDialogStage

log = logging.getLogger("morpheus_pl")
SAMPLE_GENERATIONS = 50  # per system, into the loggers' generations table


def generate_system(module: PersonaDialogStage, dm: PersonaDialogDataModule, system: str,
                    gen: GenerationConfig, decode: str, seed: int) -> list[dict]:
    """Predictions of one system on the test split, with the picked and true codes if any."""
    torch.manual_seed(seed)
    rows = []
    for batch in tqdm(dm.test_dataloader(), desc=f"generate {system} (seed {seed})", leave=False):
        batch = module.transfer_batch_to_device(batch, module.device, 0)
        texts, codes = generate_batch(module, batch, system, gen, decode)
        recall, gold = [None] * len(texts), None
        if codes is not None:
            with torch.no_grad():
                gold = module.codebook.nearest(module.persona_vectors(batch))
            recall = set_recall(codes, gold).tolist()
        for i, (ex, text) in enumerate(zip(batch["examples"], texts)):
            rows.append({
                "system": system, "persona": list(ex.persona), "history": list(ex.context),
                "reference": ex.response, "prediction": text, "fact": ex.fact,
                "predicted_codes": codes[i].tolist() if codes is not None else None,
                "gold_codes": gold[i].tolist() if gold is not None else None,
                "code_recall": recall[i],
            })
    return rows


def code_scores(rows: list[dict], facts: dict[str, float] | None = None) -> dict[str, float]:
    """Code prediction against the codes nearest to the true persona's segments (Eq. 8), with
    `facts`, the rows' `fact_recall_scores` where the data records facts.

    code_recall: the set view (slots carry no order; `set_recall`); code_accuracy: picked ==
    gold per slot, over all slots, and code_accuracy_slot<m> for each slot m. The chance
    references: code_recall_majority, the code recall of always picking the M codes most
    frequent among the gold ones (ties to the lower index: what a predictor that ignores the
    history can reach in the set view), code_accuracy_majority, the code accuracy of always
    picking each slot's most frequent gold code, and gold_codes_distinct, how many codes the
    test personas use (1: the codebook collapsed, and code recall/accuracy say nothing; a
    warning says so). A predictor no better than its reference is warned about, by fact recall
    where there are facts (code recall counts the right fact in another template as a miss).
    """
    if not rows or rows[0]["predicted_codes"] is None:
        return {}
    picked = torch.tensor([r["predicted_codes"] for r in rows])
    gold = torch.tensor([r["gold_codes"] for r in rows])
    hits = (picked == gold).float()
    majority = [torch.bincount(slot).max().item() / len(slot) for slot in gold.T]
    out = {"code_recall": statistics.fmean(r["code_recall"] for r in rows),
           "code_recall_majority": most_frequent_codes_recall(gold),
           "code_accuracy": hits.mean().item(),
           "code_accuracy_majority": statistics.fmean(majority),
           "gold_codes_distinct": float(gold.unique().numel())}
    out.update({f"code_accuracy_slot{m}": v for m, v in enumerate(hits.mean(0).tolist())})
    out.update(facts or {})
    if out["gold_codes_distinct"] == 1:
        log.warning("%s: every test persona segment maps to code %d: the codebook collapsed, "
                    "so code recall and accuracy are trivially 1 (see the joint stage's "
                    "train/codes_in_use; codebook.reseed_below)", rows[0]["system"],
                    int(gold[0, 0]))
    elif facts:
        if out["fact_recall"] <= out["fact_recall_majority"]:
            log.warning("%s: the picked codes name %.3f of a persona's facts, no more than always "
                        "picking the %d most frequent facts (%.3f): the code predictor does not read "
                        "the history, so the prefix carries no persona of this dialogue "
                        "(docs/predictor_study.md)", rows[0]["system"], out["fact_recall"],
                        gold.shape[1], out["fact_recall_majority"])
    elif out["code_recall"] <= out["code_recall_majority"]:
        log.warning("%s: code recall %.3f is no better than always picking the %d most frequent "
                    "codes (%.3f): the code predictor does not read the history, so the prefix "
                    "carries no persona of this dialogue (docs/predictor_study.md)",
                    rows[0]["system"], out["code_recall"], gold.shape[1], out["code_recall_majority"])
    return out


def most_frequent_codes_recall(gold: torch.Tensor) -> float:
    """The code recall (`set_recall`) of always picking the M codes most frequent among the
    gold codes (B, M), ties to the lower index: what a predictor that ignores the history
    reaches."""
    counts = torch.bincount(gold.flatten()).tolist()
    frequent = sorted((k for k, c in enumerate(counts) if c), key=lambda k: (-counts[k], k))
    always = torch.tensor(frequent[: gold.shape[1]]).expand(len(gold), -1)
    return set_recall(always, gold).mean().item()


def consistency_scores(scorer: ConsistencyScorerStage | None, rows: list[dict]) -> dict:
    """Con.Score and Coh-Con.Score of the predictions (None when there is no scorer); each row
    gets its `scorer_label`."""
    if scorer is None:
        return {"con_score": None, "coh_con_score": None}
    labels = scorer.predict_labels([r["persona"] for r in rows], [r["history"] for r in rows],
                                   [r["prediction"] for r in rows])
    for row, label in zip(rows, labels.tolist()):
        row["scorer_label"] = label
    metric = ConsistencyScore(**ONE_PROCESS)
    metric.update(labels)
    return {name: float(value) for name, value in metric.compute().items()}


def evaluation_device(accelerator: str) -> torch.device:
    """Where evaluation runs: the trainer's accelerator (gpu/cuda, mps, or auto) when present."""
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator in ("mps", "auto") and torch.backends.mps.is_available():
        return torch.device("mps")
    if accelerator in ("gpu", "cuda", "mps"):
        raise DeviceUnavailableError(
            f"trainer.accelerator={accelerator} but no such device is available")
    return torch.device("cpu")


def evaluate(systems: dict[str, tuple[PersonaDialogStage, str, str]], dm: PersonaDialogDataModule,
             out_dir: Path, gen: GenerationConfig, seeds: list[int], sacrebleu_tokenize: str,
             extra: dict | None = None, scorer: ConsistencyScorerStage | None = None,
             loggers: Sequence[Logger] = (), self_bleu_references: str = "all") -> dict:
    """Generate and score every system for every seed; write the three reports.

    `systems` maps a row name to (module, system kind, code decoding), e.g.
    "morpheus/argmax" -> (joint module, "morpheus", "argmax"). Without a `scorer`, Con.Score
    and Coh-Con.Score are None (missing), never 0.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    examples = dm.read("test")
    per_seed: dict[str, list[dict]] = {name: [] for name in systems}
    sample_rows: list[dict] = []
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as pred_file:
        for seed in seeds:
            for name, (module, kind, decode) in systems.items():
                start = time.perf_counter()
                rows = generate_system(module, dm, kind, gen, decode, seed)
                seconds = (time.perf_counter() - start) / max(1, len(rows))
                for row in rows:
                    row["system"] = name
                scores = score_predictions([r["prediction"] for r in rows], examples,
                                           dm.dataset["separator"], sacrebleu_tokenize,
                                           self_bleu_references)
                facts = fact_recall_scores(rows, (ex.fact_options for ex in examples),
                                           dm.dataset["separator"])
                scores.update(code_scores(rows, facts))
                scores.update(consistency_scores(scorer, rows))
                scores["generate_s_per_example"] = seconds
                per_seed[name].append(scores)
                log.info("%s seed %d: %s", name, seed, scores)
                if seed == seeds[0]:
                    sample_rows += rows[:SAMPLE_GENERATIONS]
                    for row in rows:
                        pred_file.write(json.dumps(row, ensure_ascii=False) + "\n")
    results = {name: _aggregate(runs) for name, runs in per_seed.items()}
    report = {**results, "per_seed": per_seed, "seeds": seeds,
              "metric_tokenizer": metric_tokenizer_name(), **(extra or {})}
    (out_dir / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (out_dir / "results.md").write_text(results_table(results, report))
    log_results(loggers, results, sample_rows)
    return report


def log_results(loggers: Sequence[Logger], results: dict, sample_rows: list[dict]) -> None:
    """Every system's metrics as `test/<system>/<metric>`; where the logger keeps tables (W&B),
    the results table and a table of sample generations too."""
    metrics = sorted({m for res in results.values() for m, v in res.items() if v is not None})
    for logger in loggers:
        logger.log_metrics({f"test/{name}/{metric}": value for name, res in results.items()
                            for metric, value in res.items() if value is not None})
        if hasattr(logger, "log_table"):
            logger.log_table("test/results", columns=["system", *metrics],
                             data=[[name, *(res.get(m) for m in metrics)]
                                   for name, res in results.items()])
            columns = ["system", "history", "reference", "prediction", "predicted_codes"]
            logger.log_table("test/generations", columns=columns,
                             data=[[" | ".join(r["history"]) if c == "history" else str(r[c])
                                    for c in columns] for r in sample_rows])
        logger.save()


def _aggregate(runs: list[dict]) -> dict:
    """Mean (and std over more than one seed) of every metric; a metric missing in any run
    (None) stays None."""
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        if any(v is None for v in values):
            out[key] = None
            continue
        out[key] = statistics.fmean(values)
        if len(values) > 1:
            out[f"{key}_std"] = statistics.stdev(values)
    return out


def results_table(results: dict, report: dict) -> str:
    """Markdown table like the paper's Table 2: systems as rows, metric columns grouped as
    coherence | diversity | consistency | persona inference; mean ± std over seeds; "missing"
    where a metric could not be computed (no scorer), "–" where it does not apply."""
    present = {key for res in results.values() for key in res}
    groups = {group: [(key, label) for key, label in columns.items() if key in present]
              for group, columns in TABLE_GROUPS.items()}
    header = [f"{group} · {label}" for group, columns in groups.items() for _, label in columns]
    keys = [key for columns in groups.values() for key, _ in columns]
    lines = ["| system | " + " | ".join(header) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, res in results.items():
        cells = []
        for key in keys:
            if key not in res:
                cells.append("–")
            elif res[key] is None:
                cells.append("missing")
            elif f"{key}_std" in res:
                cells.append(f"{res[key]:.3f} ± {res[key + '_std']:.3f}")
            else:
                cells.append(f"{res[key]:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = [f"\nSeeds: {report['seeds']}. Metric tokenizer: {report['metric_tokenizer']}. "
             "Fact accuracy and code recall/accuracy are fractions; the others ×100. "
             "sBLEU: lower is more diverse."]
    ablation = report.get("ablation")
    if ablation is not None:
        notes.append(f"\nAblation: {ablation['label']} (`ablation={ablation['name']}`).")
    scorer = report.get("scorer")
    if scorer is not None:
        if scorer.get("checkpoint") is None:
            notes.append(f"\nCon.Score missing: {scorer['missing']}")
        else:
            accuracy = scorer.get("held_out_accuracy")
            notes.append(f"\nConsistency scorer: {scorer['checkpoint']}; held-out accuracy "
                         f"{'unknown' if accuracy is None else f'{accuracy:.3f}'}, "
                         f"confusion matrix {scorer.get('confusion_matrix', 'unknown')} "
                         f"({scorer.get('confusion_matrix_axes', '')}).")
    if report.get("parameters"):
        notes.append(f"\nTrainable parameters (peft={report.get('peft')}): " + "; ".join(
            f"{name} {p['trainable']:,} of {p['total']:,} ({p['tps_percent']:.2f} %)"
            for name, p in report["parameters"].items()))
    for key in ("world", "timing"):
        if key in report:
            notes.append(f"\n{key}: `{json.dumps(report[key])}`")
    return "\n".join(lines) + "\n" + "\n".join(notes) + "\n"
