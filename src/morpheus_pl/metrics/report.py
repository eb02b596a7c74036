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
        "bleu1": SentenceBLEU(1), "bleu2": SentenceBLEU(2),
        "corpus_bleu": CorpusBLEU(tokenize=sacrebleu_tokenize),
    }
    out = {}
    for name, metric in metrics.items():
        metric.update(preds, refs)
        out[name] = float(metric.compute())
    rouge = RougeL()
    rouge.update(preds, refs)
    out.update({name: float(value) for name, value in rouge.compute().items()})
    for n in (1, 2):
        for name, metric in ((f"distinct{n}", Distinct(n)), (f"self_bleu{n}", SelfBLEU(n, self_bleu_references))):
            metric.update(preds)
            out[name] = float(metric.compute())
    p_co = PersonaCoverage()
    p_co.update(preds, personas)
    out["p_co"] = float(p_co.compute())
    with_facts = [(p, ex) for p, ex in zip(preds, examples) if ex.fact is not None]
    if with_facts:
        acc = PersonaFactAccuracy()
        acc.update([p for p, _ in with_facts], [ex.fact for _, ex in with_facts],
                   [list(ex.fact_options or ()) for _, ex in with_facts])
        out["persona_fact_accuracy"] = float(acc.compute())
    return out


def metric_tokenizer_name() -> str:
    return metric_tokenizer()[1]
