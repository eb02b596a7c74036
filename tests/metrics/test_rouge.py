"""ROUGE-L vs Google's rouge-score on the same cl100k tokens; LCS vs a plain DP."""

import copy
import math
import random

import pytest
from rouge_score.rouge_scorer import RougeScorer

from morpheus_pl.metrics.rouge import RougeL, lcs_length, rouge_l_pair
from morpheus_pl.metrics.tokenize import metric_token_ids, metric_tokens

PAIRS = [  # (prediction, reference)
    ("i love to go hiking on the weekends", "i enjoy hiking on the weekends"),
    ("my favorite color is blue", "my favorite color is blue too"),
    ("i have two dogs and a cat", "i have a cat"),
    ("the the the the", "the cat sat on the mat the end"),  # repeats: LCS uses each once
    ("yes", "no, i do not think so"),  # no overlap
    ("", "hello there"),  # empty prediction
    ("hello there", ""),  # empty reference
    ("hello", "hello"),
    ("我喜欢在周末去爬山", "我周末喜欢爬山"),
    ("我是一名老师，教数学", "我是老师"),
    ("你好", "再见"),
    ("i like 猫 and 狗", "我喜欢猫和狗"),
]


class Cl100kTokens:
    """The tokenizer object rouge-score accepts: the same cl100k tokens as ours."""

    def tokenize(self, text: str) -> list[str]:
        return metric_tokens(text)


def oracle(pred: str, ref: str) -> tuple[float, float]:
    score = RougeScorer(["rougeL"], tokenizer=Cl100kTokens()).score(ref, pred)["rougeL"]
    return score.fmeasure, score.recall


def dp_lcs(a: list, b: list) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        previous = row[:]
        for j, y in enumerate(b):
            row[j + 1] = previous[j] + 1 if x == y else max(row[j], previous[j + 1])
    return row[-1]


def test_lcs_matches_dynamic_programming() -> None:
    rng = random.Random(7)
    for _ in range(500):
        a = [rng.randrange(4) for _ in range(rng.randrange(0, 30))]
        b = [rng.randrange(4) for _ in range(rng.randrange(0, 90))]  # > 64 bits too
        assert lcs_length(a, b) == dp_lcs(a, b), (a, b)
    assert lcs_length("ABCBDAB", "BDCABA") == 4  # Cormen et al.'s example


def test_pairs_equal_rouge_score_exactly() -> None:
    expected = [oracle(p, r) for p, r in PAIRS]
    ours = [rouge_l_pair(metric_token_ids(p), metric_token_ids(r)) for p, r in PAIRS]
    assert ours == expected
    assert all(f > 0 for f, _ in expected[:4] + expected[7:10])
    assert expected[4] == expected[5] == expected[6] == (0.0, 0.0)
    assert expected[7] == (1.0, 1.0)


def test_metric_is_the_mean_times_100() -> None:
    expected = [oracle(p, r) for p, r in PAIRS]
    metric = RougeL()
    metric.update([p for p, _ in PAIRS], [r for _, r in PAIRS])
    values = metric.compute()
    assert values["rouge_l"].item() == pytest.approx(
        100 * math.fsum(f for f, _ in expected) / len(PAIRS), rel=1e-6)
    assert values["rouge_l_recall"].item() == pytest.approx(
        100 * math.fsum(r for _, r in expected) / len(PAIRS), rel=1e-6)
    # hand check, "hello" vs "hello": recall 1; "i have two dogs and a cat" vs "i have a cat":
    # the reference is a subsequence, recall 1, precision 4/7, F = 2 * 4/7 / (1 + 4/7) = 8/11.
    assert rouge_l_pair(metric_token_ids(PAIRS[2][0]), metric_token_ids(PAIRS[2][1])) == (
        pytest.approx(8 / 11), 1.0)


def test_single_identical_and_no_data() -> None:
    metric = RougeL()
    metric.update(["my favorite color is blue"], ["my favorite color is blue"])
    assert {k: v.item() for k, v in metric.compute().items()} == {
        "rouge_l": 100.0, "rouge_l_recall": 100.0}
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert all(math.isnan(v.item()) for v in RougeL().compute().values())
    with pytest.raises(ValueError, match="differ in length"):
        RougeL().update(["a"], [])


def test_halves_merge_like_one() -> None:
    preds, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    whole = RougeL()
    whole.update(preds, refs)
    first, second = RougeL(), RougeL()
    first.update(preds[:5], refs[:5])
    second.update(preds[5:], refs[5:])
    merged = copy.deepcopy(first)
    merged.merge_state(second)
    for key, value in whole.compute().items():
        assert merged.compute()[key].item() == pytest.approx(value.item(), rel=1e-6)
