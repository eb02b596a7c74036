"""All automatic metrics of one system's predictions, by name (results.json keys)."""

from __future__ import annotations

from collections.abc import Sequence

from morpheus_pl.data.example import DialogExample
from morpheus_pl.data.persona import split_sentences
from morpheus_pl.metrics.overlap import (
    CorpusBLEU,
    Distinct,
    PersonaCoverage,
    PersonaFactAccuracy,
    SentenceBLEU,
)
from morpheus_pl.metrics.rouge import RougeL
from morpheus_pl.metrics.self_bleu import SelfBLEU
from morpheus_pl.metrics.tokenize import metric_tokenizer

# Evaluation scores every prediction on rank 0 alone; torchmetrics syncs states with the other
# ranks whenever a process group exists (after DDP/FSDP training), and they are not computing.
ONE_PROCESS = {"sync_on_compute": False}


def score_predictions(
    preds: Sequence[str], examples: Sequence[DialogExample], separator: str, sacrebleu_tokenize: str,
    self_bleu_references: str = "all",
) -> dict[str, float]:
    """BLEU-1/2 (sentence, averaged), corpus BLEU, ROUGE-L (F and recall), Distinct-1/2,
    self-BLEU-1/2 (against all other predictions, or one seeded random other: the official
    script's variant), P-Co, and persona-fact accuracy where the dataset records facts. Values
    ×100 except the accuracy (a fraction)."""
    preds = list(preds)
    refs = [ex.response for ex in examples]
    personas = [
        [s for sent in ex.persona for s in split_sentences(sent, separator)] for ex in examples
    ]
    metrics = {
        "bleu1": SentenceBLEU(1, **ONE_PROCESS), "bleu2": SentenceBLEU(2, **ONE_PROCESS),
        "corpus_bleu": CorpusBLEU(tokenize=sacrebleu_tokenize, **ONE_PROCESS),
    }
    out = {}
    for name, metric in metrics.items():
        metric.update(preds, refs)
        out[name] = float(metric.compute())
    rouge = RougeL(**ONE_PROCESS)
    rouge.update(preds, refs)
    out.update({name: float(value) for name, value in rouge.compute().items()})
    for n in (1, 2):
        for name, metric in ((f"distinct{n}", Distinct(n, **ONE_PROCESS)),
                             (f"self_bleu{n}", SelfBLEU(n, self_bleu_references, **ONE_PROCESS))):
            metric.update(preds)
            out[name] = float(metric.compute())
    p_co = PersonaCoverage(**ONE_PROCESS)
    p_co.update(preds, personas)
    out["p_co"] = float(p_co.compute())
    with_facts = [(p, ex) for p, ex in zip(preds, examples) if ex.fact is not None]
    if with_facts:
        acc = PersonaFactAccuracy(**ONE_PROCESS)
        acc.update([p for p, _ in with_facts], [ex.fact for _, ex in with_facts],
                   [list(ex.fact_options or ()) for _, ex in with_facts])
        out["persona_fact_accuracy"] = float(acc.compute())
    return out


def metric_tokenizer_name() -> str:
    return metric_tokenizer()[1]
