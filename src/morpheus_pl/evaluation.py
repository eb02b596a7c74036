"""Evaluation on the test split: generate with every system, score, write the reports.

Writes into the run's output directory:
  predictions.jsonl  one line per test example and system (first seed)
  results.json       {system: {metric: mean}} plus per-seed values and run facts
  results.md         the same as a table
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path

import torch
from tqdm import tqdm

from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.generation import GenerationConfig, generate_batch
from morpheus_pl.metrics.report import metric_tokenizer_name, score_predictions
from morpheus_pl.modules.code_predictor import set_recall
from morpheus_pl.stages.base import PersonaDialogStage

log = logging.getLogger("morpheus_pl")
COLUMNS = ("persona_fact_accuracy", "code_recall", "bleu1", "bleu2", "corpus_bleu", "rouge_l",
           "rouge_l_recall", "distinct1", "distinct2", "self_bleu1", "self_bleu2", "p_co")


def generate_system(module: PersonaDialogStage, dm: PersonaDialogDataModule, system: str,
                    gen: GenerationConfig, decode: str, seed: int) -> list[dict]:
    """Predictions of one system on the test split, with the picked and true codes if any."""
    torch.manual_seed(seed)
    rows = []
    for batch in tqdm(dm.test_dataloader(), desc=f"generate {system} (seed {seed})", leave=False):
        texts, codes = generate_batch(module, batch, system, gen, decode)
        recall = [None] * len(texts)
        if codes is not None:
            with torch.no_grad():
                true = module.codebook.nearest(module.persona_vectors(batch))
            recall = set_recall(codes, true).tolist()
        for i, (ex, text) in enumerate(zip(batch["examples"], texts)):
            rows.append({
                "system": system, "persona": list(ex.persona), "history": list(ex.context),
                "reference": ex.response, "prediction": text, "fact": ex.fact,
                "predicted_codes": codes[i].tolist() if codes is not None else None,
                "code_recall": recall[i],
            })
    return rows


def evaluate(systems: dict[str, tuple[PersonaDialogStage, str, str]], dm: PersonaDialogDataModule,
             out_dir: Path, gen: GenerationConfig, seeds: list[int], sacrebleu_tokenize: str,
             extra: dict | None = None) -> dict:
    """Generate and score every system for every seed; write the three reports.

    `systems` maps a row name to (module, system kind, code decoding), e.g.
    "morpheus/argmax" -> (joint module, "morpheus", "argmax").
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    examples = dm.read("test")
    per_seed: dict[str, list[dict]] = {name: [] for name in systems}
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as pred_file:
        for seed in seeds:
            for name, (module, kind, decode) in systems.items():
                rows = generate_system(module, dm, kind, gen, decode, seed)
                for row in rows:
                    row["system"] = name
                scores = score_predictions([r["prediction"] for r in rows], examples,
                                           dm.dataset["separator"], sacrebleu_tokenize)
                if rows and rows[0]["code_recall"] is not None:
                    scores["code_recall"] = statistics.fmean(r["code_recall"] for r in rows)
                per_seed[name].append(scores)
                log.info("%s seed %d: %s", name, seed, scores)
                if seed == seeds[0]:
                    for row in rows:
                        pred_file.write(json.dumps(row, ensure_ascii=False) + "\n")
    results = {name: _aggregate(runs) for name, runs in per_seed.items()}
    report = {**results, "per_seed": per_seed, "seeds": seeds,
              "metric_tokenizer": metric_tokenizer_name(), **(extra or {})}
    (out_dir / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (out_dir / "results.md").write_text(results_table(results, per_seed, report))
    return report


def _aggregate(runs: list[dict]) -> dict:
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[key] = statistics.fmean(values)
        if len(values) > 1:
            out[f"{key}_std"] = statistics.stdev(values)
    return out


def results_table(results: dict, per_seed: dict, report: dict) -> str:
    """Markdown table: systems as rows, metrics as columns (mean ± std over seeds)."""
    columns = [c for c in COLUMNS if any(c in r for r in results.values())]
    lines = ["| system | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, res in results.items():
        cells = []
        for c in columns:
            if c not in res:
                cells.append("–")
            elif f"{c}_std" in res:
                cells.append(f"{res[c]:.3f} ± {res[c + '_std']:.3f}")
            else:
                cells.append(f"{res[c]:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = [f"\nSeeds: {report['seeds']}. Metric tokenizer: {report['metric_tokenizer']}. "
             "persona_fact_accuracy and code_recall are fractions; the others ×100. "
             "self_bleu: lower is more diverse."]
    for key in ("world", "timing"):
        if key in report:
            notes.append(f"\n{key}: `{json.dumps(report[key])}`")
    return "\n".join(lines) + "\n" + "\n".join(notes) + "\n"
