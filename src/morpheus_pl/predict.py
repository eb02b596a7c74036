"""stage=predict: a bundle's replies to every dialogue of a file (data/prediction_input.py).

    python -m morpheus_pl.run stage=predict predict.model=DIR predict.input=FILE

One JSON line per input record, in order: its source, context, MORPHEUS's reply and picked codes
(probability, usage), and where the record has a persona, the persona and the true-persona reply
(where it has a response, that too as `reference`). Generated in batches of
`predict.batch_size`, seeded once with `predict.seed`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from morpheus_pl.bundle import MorpheusModel
from morpheus_pl.data.prediction_input import PredictionInput, read_prediction_inputs
from morpheus_pl.errors import ConfigError
from morpheus_pl.evaluation import evaluation_device

log = logging.getLogger("morpheus_pl")


def predict_stage(cfg: DictConfig, out_dir: Path) -> Path:
    """Read the input (all of it checked before the model loads), predict, write; returns the
    predictions file."""
    settings = cfg.predict
    if not settings.model or not settings.input:
        raise ConfigError("stage=predict needs predict.model=DIR (a bundle written by "
                          "stage=export, or a hub repository id) and predict.input=FILE")
    if settings.batch_size < 1:
        raise ConfigError(f"predict.batch_size must be >= 1, got {settings.batch_size}")
    inputs = read_prediction_inputs(settings.input)
    model = MorpheusModel.from_pretrained(settings.model,
                                          device=evaluation_device(cfg.trainer.accelerator))
    output = Path(settings.output) if settings.output else out_dir / "predictions.jsonl"
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f"{output.name}.tmp")
    torch.manual_seed(settings.seed)
    with open(staging, "w", encoding="utf-8") as file:
        for row in predict_rows(model, inputs, settings.batch_size, settings.greedy):
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
    staging.replace(output)
    log.info("%d predictions written to %s", len(inputs), output)
    return output


def predict_rows(model: MorpheusModel, inputs: Sequence[PredictionInput], batch_size: int,
                 greedy: bool = False) -> Iterator[dict]:
    """The output rows, in input order, generated batch by batch (with a progress bar)."""
    generation = {"do_sample": False} if greedy else {}
    starts = range(0, len(inputs), batch_size)
    for start in tqdm(starts, desc="predict", unit="batch", leave=False):
        chunk = inputs[start:start + batch_size]
        replies = model.generate([x.example for x in chunk], [x.has_persona for x in chunk],
                                 "morpheus", **generation)
        known = [i for i, x in enumerate(chunk) if x.has_persona]
        true = model.generate([chunk[i].example for i in known], [True] * len(known),
                              "true_persona", **generation) if known else []
        true_replies = dict(zip(known, true))
        for i, (item, reply) in enumerate(zip(chunk, replies)):
            ex = item.example
            row = {"source": ex.source, "context": list(ex.context), "reply": reply.text,
                   "codes": [asdict(code) for code in reply.codes]}
            if item.has_persona:
                row.update(persona=list(ex.persona), true_persona_reply=true_replies[i].text)
            if item.has_response:
                row["reference"] = ex.response
            yield row
