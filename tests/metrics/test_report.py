"""score_predictions: every metric under its results.json name, equal to its definition."""

import math

import pytest

from morpheus_pl.data.example import DialogExample
from morpheus_pl.metrics.report import score_predictions
from morpheus_pl.metrics.rouge import rouge_l_pair
from morpheus_pl.metrics.self_bleu import self_bleu_scores
from morpheus_pl.metrics.tokenize import metric_token_ids

EXAMPLES = [
    DialogExample(("i like cats.", "i live in paris."), ("hi!",), "i have a cat named tom", "r1",
                  "t:1", fact="cat", fact_options=("cat", "dog")),
    DialogExample(("i like dogs.",), ("hello",), "my dog is called rex", "r2", "t:2",
                  fact="dog", fact_options=("cat", "dog")),
    DialogExample(("我喜欢爬山。",), ("你好",), "我周末喜欢爬山", "r3", "t:3",
                  fact="爬山", fact_options=("爬山", "游泳")),
]
PREDS = ["i have a cat", "i have a dog named rex", "我喜欢爬山"]


def test_all_metrics_reported_and_consistent() -> None:
    scores = score_predictions(PREDS, EXAMPLES, ".", "13a")
    assert set(scores) == {
        "bleu1", "bleu2", "corpus_bleu", "rouge_l", "rouge_l_recall", "distinct1", "distinct2",
        "self_bleu1", "self_bleu2", "p_co", "persona_fact_accuracy",
    }
    pairs = [rouge_l_pair(metric_token_ids(p), metric_token_ids(e.response))
             for p, e in zip(PREDS, EXAMPLES)]
    assert scores["rouge_l"] == pytest.approx(100 * math.fsum(f for f, _ in pairs) / 3, rel=1e-6)
    assert scores["rouge_l_recall"] == pytest.approx(
        100 * math.fsum(r for _, r in pairs) / 3, rel=1e-6)
    rows = [metric_token_ids(p) for p in PREDS]
    for n in (1, 2):
        expected = 100 * math.fsum(self_bleu_scores(rows, n)) / 3
        assert scores[f"self_bleu{n}"] == pytest.approx(expected, rel=1e-6)
    assert 0 < scores["self_bleu2"] < scores["self_bleu1"] < 100  # "i have a" is shared
    assert scores["persona_fact_accuracy"] == pytest.approx(1.0)


def test_self_bleu_random_partner_option() -> None:
    from morpheus_pl.metrics.self_bleu import paired_self_bleu_scores

    scores = score_predictions(PREDS, EXAMPLES, ".", "13a", self_bleu_references="random")
    rows = [metric_token_ids(p) for p in PREDS]
    expected = 100 * math.fsum(paired_self_bleu_scores(rows, 2, seed=0)) / 3
    assert scores["self_bleu2"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError):
        score_predictions(PREDS, EXAMPLES, ".", "13a", self_bleu_references="some")
