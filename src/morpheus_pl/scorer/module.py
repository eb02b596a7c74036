"""The consistency scorer (paper §4.3): a 3-way classifier over (persona, context, response).

Labels (scorer/triples.py): 2 consistent and coherent, 1 consistent but no fit for the context,
0 inconsistent with the persona. Con.Score is the share of generated responses it labels 1 or 2,
Coh-Con.Score the share labelled 2 (scorer/metric.py). Its held-out accuracy and confusion
matrix come from `trainer.test` on the test split's triples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from morpheus_pl.scorer.classifier import build_classifier, load_classifier_tokenizer
from morpheus_pl.scorer.triples import scorer_inputs
from morpheus_pl.stages.base import adamw_with_linear_warmup
from morpheus_pl.stages.gradient_clipping import NormClippingModule

NUM_LABELS = 3


class ConsistencyScorerStage(NormClippingModule):
    """Encoder + classification head; `predict_labels` scores generated responses."""

    def __init__(self, tokenizer_dir: str, model: dict, optim: dict, max_length: int,
                 max_context_turns: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        trust_code = bool(model.get("trust_remote_code"))  # null (scorer=tiny) or absent: false
        self.tokenizer = load_classifier_tokenizer(tokenizer_dir, trust_code)
        self.classifier = build_classifier(
            model["source"], self.tokenizer, NUM_LABELS, model.get("name_or_path"),
            model.get("architecture"), trust_code)
        self.optim = optim
        self.max_length = max_length
        self.max_context_turns = max_context_turns
        self.val_accuracy = MulticlassAccuracy(NUM_LABELS, average="micro")
        self.test_accuracy = MulticlassAccuracy(NUM_LABELS, average="micro")
        self.test_confusion = MulticlassConfusionMatrix(NUM_LABELS)

    def forward(self, batch: dict) -> Tensor:
        """Logits (B, 3) of a tokenised batch (labels, if present, are not passed on)."""
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.classifier(**inputs).logits

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = F.cross_entropy(self(batch), batch["labels"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"ConsistencyScorerStage: loss 'ce' is {float(loss)} at step {self.global_step}; "
                f"stopping instead of training on NaN/Inf")
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_accuracy(self(batch).argmax(-1), batch["labels"])
        self.log("val/accuracy", self.val_accuracy, prog_bar=True, batch_size=len(batch["labels"]))

    def test_step(self, batch: dict, batch_idx: int) -> None:
        predicted = self(batch).argmax(-1)
        self.test_accuracy(predicted, batch["labels"])
        self.test_confusion.update(predicted, batch["labels"])
        self.log("test/accuracy", self.test_accuracy, batch_size=len(batch["labels"]))

    def configure_optimizers(self):
        return adamw_with_linear_warmup(self, self.optim)

    @torch.no_grad()
    def predict_labels(self, personas: Sequence[Sequence[str]], contexts: Sequence[Sequence[str]],
                       responses: Sequence[str], batch_size: int = 64) -> Tensor:
        """Predicted label (N,) of each (persona, context, response), in input order."""
        self.eval()
        labels = []
        for start in range(0, len(responses), batch_size):
            end = start + batch_size
            batch = scorer_inputs(self.tokenizer, personas[start:end], contexts[start:end],
                                  responses[start:end], self.max_length, self.max_context_turns)
            labels.append(self({k: v.to(self.device) for k, v in batch.items()}).argmax(-1).cpu())
        return torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
