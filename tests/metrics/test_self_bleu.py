"""self-BLEU vs nltk's multi-reference sentence BLEU computed the quadratic way."""

import math
import random
import warnings

import pytest
from nltk.translate.bleu_score import sentence_bleu as nltk_sentence_bleu

from morpheus_pl.metrics.self_bleu import (
    SelfBLEU,
    paired_self_bleu_scores,
    random_partners,
    self_bleu_scores,
)
from morpheus_pl.metrics.tokenize import metric_token_ids

NLTK_ARTIFACT = 1e-100  # nltk: BP * exp(fsum(w * log p)) with p = 2.2e-308 for a zero p_k, k > 1

SUBJECTS = ["i", "my dog", "my sister", "we", "the cat", "我", "我的朋友"]
VERBS = ["like", "love", "hate", "have", "like to eat", "喜欢", "讨厌"]
OBJECTS = ["pizza", "hiking on weekends", "blue", "two cats and a dog", "music", "爬山", "猫"]
_RNG = random.Random(0)
SENTENCES = [  # 44 from a template grammar (English, Chinese, mixed; some repeat), then 16 more
    " ".join(_RNG.choice(slot) for slot in (SUBJECTS, VERBS, OBJECTS)) for _ in range(44)
] + [
    "i like pizza", "i like pizza",  # a duplicate pair
    "pizza pizza pizza pizza pizza",  # the unique holder of the max count of "pizza"
    "pizza pizza", "yes", "no", "ok ok", "hello", "", "",  # short and empty
    "我", "i i i i i i i i i i i i i i i i i i i i i i i i i",  # long, repetitive
    "what do you like to do on weekends with your two cats and a dog",
    "我喜欢在周末去爬山", "我周末喜欢爬山", "the the the",
]


def nltk_oracle(rows: list[list[int]], n: int) -> list[float]:
    """nltk sentence BLEU of each row against all the others, quadratic."""
    weights = (1.0 / n,) * n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns on zero n-gram overlap
        return [
            nltk_sentence_bleu(rows[:i] + rows[i + 1 :], row, weights=weights)
            for i, row in enumerate(rows)
        ]


def assert_equal_to_nltk(ours: list[float], oracle: list[float]) -> None:
    assert len(ours) == len(oracle)
    for i, (mine, theirs) in enumerate(zip(ours, oracle)):
        if theirs >= NLTK_ARTIFACT:
            assert mine == theirs, i  # the same float operations: exactly equal
        else:
            assert mine == 0.0, i


@pytest.mark.parametrize("n", [1, 2])
def test_all_others_equals_nltk_on_sentences(n: int) -> None:
    assert len(SENTENCES) == 60
    rows = [metric_token_ids(s) for s in SENTENCES]
    oracle = nltk_oracle(rows, n)
    assert_equal_to_nltk(self_bleu_scores(rows, n), oracle)
    assert sum(NLTK_ARTIFACT <= s < 1 for s in oracle) >= 7 and 0 in oracle and 1.0 in oracle
    assert n == 1 or any(0 < s < NLTK_ARTIFACT for s in oracle)  # a zero bigram precision
    metric = SelfBLEU(n)
    metric.update(SENTENCES[:25])
    metric.update(SENTENCES[25:])
    expected = 100 * math.fsum(s if s >= NLTK_ARTIFACT else 0.0 for s in oracle) / len(rows)
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_all_others_equals_nltk_on_random_rows(seed: int) -> None:
    # a 3-token vocabulary and lengths 0-9: many ties of max counts and of closest lengths
    rng = random.Random(seed)
    rows = [[rng.randrange(3) for _ in range(rng.randrange(10))] for _ in range(40)]
    for n in (1, 2, 3):
        assert_equal_to_nltk(self_bleu_scores(rows, n), nltk_oracle(rows, n))


def test_hand_worked_unique_holder_and_closest_length() -> None:
    # rows a a a a | a a | b: for "a a a a" the others hold at most two "a" -> p1 = 2/4;
    # closest other length to 4 is 2 (|4-2| < |4-1|), 4 > 2 -> BP = 1; BLEU-1 = 0.5.
    # "a a": "a a a a" holds four -> p1 = 1; closest length to 2: 1 (tie 1 vs 4? |2-1| = 1,
    # |2-4| = 2) -> BP = 1; BLEU-1 = 1. "b": no other "b" -> 0.
    assert self_bleu_scores([[1, 1, 1, 1], [1, 1], [2]], 1) == [0.5, 1.0, 0.0]
    # tie of lengths: hyp of 3 between references of 2 and 4 -> the shorter, 2; BP = 1
    assert self_bleu_scores([[1, 2, 3], [1, 2], [1, 2, 3, 4]], 1)[0] == 1.0


def test_edge_cases() -> None:
    def value(preds: list[str], n: int = 2, references: str = "all") -> float:
        metric = SelfBLEU(n, references=references)
        metric.update(preds)
        return metric.compute().item()

    for references in ("all", "random"):
        assert value(["i like pizza"], references=references) == 0.0  # no other prediction
        assert value(["i like pizza"] * 4, references=references) == pytest.approx(100.0)
        assert value(["", ""], references=references) == 0.0
        assert value(["hello", "hello"], references=references) == 0.0  # shorter than n = 2
        assert value(["hello", "hello"], 1, references) == pytest.approx(100.0)
        # an empty prediction scores 0 and counts: (100 + 100 + 0) / 3
        assert value(["i like pizza", "i like pizza", ""], references="all") == pytest.approx(
            200 / 3)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(SelfBLEU(2).compute().item())
    with pytest.raises(ValueError, match="references"):
        SelfBLEU(2, references="one")


def test_random_partner_variant() -> None:
    partners = random_partners(1000, seed=3)
    assert partners == random_partners(1000, seed=3) != random_partners(1000, seed=4)
    assert all(j != i and 0 <= j < 1000 for i, j in enumerate(partners))
    assert len(set(partners)) > 500  # spread over the others, not one favourite
    rows = [metric_token_ids(s) for s in SENTENCES]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = [
            nltk_sentence_bleu([rows[j]], rows[i], weights=(0.5, 0.5))
            for i, j in enumerate(random_partners(len(rows), seed=0))
        ]
    assert_equal_to_nltk(paired_self_bleu_scores(rows, 2, seed=0), oracle)
    metric = SelfBLEU(2, references="random", seed=0)
    metric.update(SENTENCES)
    expected = 100 * math.fsum(s if s >= NLTK_ARTIFACT else 0.0 for s in oracle) / len(rows)
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)
