"""The metric columns of the paper-style tables: Table 2's column groups and each metric's
label. Plain data, no torch, so `python -m morpheus_pl.aggregate` (JSON in, tables out) loads
neither torch nor transformers."""

from __future__ import annotations

TABLE_GROUPS = {  # the paper's Table 2 column groups, then what only this framework measures
    "Coherence": {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "corpus_bleu": "corpus BLEU",
                  "rouge_l": "ROUGE-L", "rouge_l_recall": "ROUGE-L recall"},
    "Diversity": {"distinct1": "Dist-1", "distinct2": "Dist-2", "self_bleu1": "sBLEU-1",
                  "self_bleu2": "sBLEU-2"},
    "Consistency": {"p_co": "P-Co", "con_score": "Con.Score", "coh_con_score": "Coh-Con.Score"},
    "Persona inference": {"persona_fact_accuracy": "fact acc.", "code_recall": "code recall",
                          "code_recall_majority": "code recall of the M most frequent codes",
                          "fact_recall": "fact recall of the codes",
                          "fact_recall_majority": "fact recall of the M most frequent facts",
                          "code_accuracy": "code acc.",
                          "code_accuracy_majority": "code acc. of the majority code"},
}
# metric -> column label, in the tables' order
LABELS = {key: label for columns in TABLE_GROUPS.values() for key, label in columns.items()}
