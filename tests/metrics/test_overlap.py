"""Overlap metrics vs nltk, sacrebleu and hand-worked numbers; merging, simulated and real DDP."""

import copy
import itertools
import logging
import math
import multiprocessing
import socket
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import sacrebleu
import torch
import torch.distributed as dist
from nltk.translate.bleu_score import sentence_bleu as nltk_sentence_bleu
from torchmetrics import Metric

from morpheus_pl.metrics.bleu import sentence_bleu
from morpheus_pl.metrics.overlap import (
    CorpusBLEU,
    Distinct,
    PersonaCoverage,
    PersonaFactAccuracy,
    SentenceBLEU,
    mentions,
)
from morpheus_pl.metrics.rouge import RougeL
from morpheus_pl.metrics.self_bleu import SelfBLEU
from morpheus_pl.metrics.tokenize import metric_token_ids, metric_tokens

PAIRS = [  # (prediction, reference)
    ("i love to go hiking on the weekends", "i enjoy hiking on the weekends"),
    ("my favorite color is blue", "my favorite color is blue too"),
    ("i have two dogs and a cat", "i have a cat"),
    ("yes", "no, i do not think so"),  # no overlap
    ("", "hello there"),  # empty prediction
    ("hello", "hello"),  # shorter than n = 2
    ("hi there", ""),  # empty reference
    ("我喜欢在周末去爬山", "我周末喜欢爬山"),
    ("我是一名老师，教数学", "我是老师"),
]
PREDS = [p for p, _ in PAIRS]
REFS = [r for _, r in PAIRS]


def nltk_bleu(pred: str, ref: str, n: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns on zero n-gram overlap
        weights = (1.0 / n,) * n
        return nltk_sentence_bleu([metric_tokens(ref)], metric_tokens(pred), weights=weights)


def fake_all_gather(tensors: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    assert len({t.dtype for t in tensors}) == 1, "all_gather needs one dtype on every process"
    return list(tensors)


def floats(value: torch.Tensor | dict[str, torch.Tensor]) -> float | dict[str, float]:
    """A metric's result as python floats (a dict for the metrics that return several)."""
    return {k: v.item() for k, v in value.items()} if isinstance(value, dict) else value.item()


def simulated_ddp(ranks: list[Metric]) -> float | dict[str, float]:
    """Compute on rank 0 after torchmetrics' own `_sync_dist`, with a fake all-gather."""
    recorded = []
    for rank in ranks:
        calls: list[torch.Tensor] = []
        copy.deepcopy(rank)._sync_dist(lambda t, group=None, calls=calls: calls.append(t) or [t])
        recorded.append(calls)
    gathered = iter(zip(*recorded))
    ranks[0]._sync_dist(lambda t, group=None: fake_all_gather(next(gathered)))
    return floats(ranks[0].compute())


@pytest.mark.parametrize("n", [1, 2])
def test_sentence_bleu_matches_nltk(n: int) -> None:
    oracle = [nltk_bleu(p, r, n) for p, r in PAIRS]
    ours = [sentence_bleu(metric_token_ids(p), metric_token_ids(r), n) for p, r in PAIRS]
    # the same float operations: exactly nltk, except its < 1e-150 values for a zero p_2 (0 here)
    assert ours == [value if value > 1e-100 else 0.0 for value in oracle]
    assert 0 < min(oracle[:3] + oracle[7:]) and oracle[3] == oracle[4] == oracle[6] == 0
    assert n == 1 or 0 < oracle[5] < 1e-150  # "hello" vs "hello": no bigram, nltk's artifact
    metric = SentenceBLEU(n)
    metric.update(PREDS, REFS)
    assert metric.compute().item() == pytest.approx(100 * sum(ours) / len(ours), rel=1e-6)


@pytest.mark.parametrize(("pairs", "tokenize"), [(PAIRS[:7], "13a"), (PAIRS[7:], "zh")])
def test_corpus_bleu_matches_sacrebleu(pairs: list[tuple[str, str]], tokenize: str) -> None:
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
    metric = CorpusBLEU(tokenize=tokenize)
    metric.update(preds, refs)
    expected = sacrebleu.corpus_bleu(preds, [refs], tokenize=tokenize).score
    assert expected > 0
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)


def test_distinct_hand_count() -> None:
    # "hello world" = [hello, " world"], "hello there" = [hello, " there"] in cl100k.
    assert len(metric_tokens("hello world")) == len(metric_tokens("hello there")) == 2
    preds = ["hello world", "hello world", "hello there"]
    counts = {1: (3, 6), 2: (2, 3)}  # (distinct, all): unigrams {hello, world, there}; bigrams
    for n, (distinct, total) in counts.items():
        metric = Distinct(n)
        metric.update(preds)
        assert metric.compute().item() == pytest.approx(100 * distinct / total)


def test_distinct_chinese_identical_and_degenerate() -> None:
    tokens = metric_tokens("我喜欢猫")  # 8 ids, all different
    assert len(set(tokens)) == len(tokens) == 8
    metric = Distinct(1)
    metric.update(["我喜欢猫", "我喜欢猫"])
    assert metric.compute().item() == pytest.approx(50.0)  # 8 distinct / 16
    short = Distinct(2)
    short.update(["hello", ""])  # no bigram at all
    assert short.compute().item() == 0.0


IDF = {df: 1 / (1 + math.log(1 + df)) for df in (1, 2, 3)}  # 0.590616, 0.476505, 0.419060
PERSONAS = [["i like cats", "i live in paris"], ["i like dogs"]]
PCO_PREDS = ["i like paris", "i like dogs too"]


def test_persona_coverage_hand_worked() -> None:
    # Segments {i, like, cats}, {i, live, in, paris}, {i, like, dogs} (each word one cl100k id);
    # df: i = 3, like = 2, every other token = 1.
    # Example 1, {i, like, paris}:
    #   segment 1 covers {i, like}  -> (0.419060 + 0.476505) / 2 = 0.447783
    #   segment 2 covers {i, paris} -> (0.419060 + 0.590616) / 2 = 0.504838  <- max
    # Example 2, {i, like, dogs, too}:
    #   segment 3 covers {i, like, dogs} -> (0.419060 + 0.476505 + 0.590616) / 3 = 0.495394
    # P-Co = 100 * (0.504838 + 0.495394) / 2 = 50.0116
    assert all(len(metric_tokens(w)) == 1 for w in ["i", " like", " cats", " paris", " dogs"])
    example_1 = max((IDF[3] + IDF[2]) / 2, (IDF[3] + IDF[1]) / 2)
    example_2 = (IDF[3] + IDF[2] + IDF[1]) / 3
    metric = PersonaCoverage()
    metric.update(PCO_PREDS, PERSONAS)
    assert metric.compute().item() == pytest.approx(100 * (example_1 + example_2) / 2, rel=1e-6)
    assert metric.compute().item() == pytest.approx(50.0116, abs=1e-4)
    alone = PersonaCoverage()  # example 1 alone: df(i) = 2, so the IDF differs
    alone.update(PCO_PREDS[:1], PERSONAS[:1])
    assert alone.compute().item() == pytest.approx(100 * (IDF[2] + IDF[1]) / 2, rel=1e-6)
    empty = PersonaCoverage()
    empty.update(["", "zzz"], [["i like cats"], []])
    assert empty.compute().item() == 0.0


FACT_CASES = [  # (prediction, gold fact, options, correct)
    ("i have a cat named tom", "cat", ["cat", "dog", "fish"], True),
    ("I have a CAT.", "cat", ["cat", "dog"], True),
    ("my favourite category is sports", "cat", ["cat", "dog"], False),  # no whole word
    ("i have a cat and a dog", "cat", ["cat", "dog"], False),  # several options
    ("i live in New  York city", "new york", ["new york", "paris"], True),
    ("i live in paris", "new york", ["new york", "paris"], False),  # the wrong option
    ("我养了一只猫", "猫", ["猫", "狗"], True),
    ("我养了猫和狗", "猫", ["猫", "狗"], False),
    ("", "cat", ["cat", "dog"], False),
]


def test_fact_accuracy_hand_cases() -> None:
    assert not mentions("category", "cat") and mentions("我的cat很乖", "cat")
    for pred, fact, options, correct in FACT_CASES:
        metric = PersonaFactAccuracy()
        metric.update([pred], [fact], [options])
        assert metric.compute().item() == float(correct), pred
    metric = PersonaFactAccuracy()
    metric.update(*map(list, zip(*[case[:3] for case in FACT_CASES])))
    assert metric.compute().item() == pytest.approx(4 / 9)


FACTORIES: dict[str, tuple[Callable[[], Metric], tuple[list, ...]]] = {
    "bleu2": (lambda: SentenceBLEU(2), (PREDS, REFS)),
    "corpus": (CorpusBLEU, (PREDS, REFS)),
    "distinct2": (lambda: Distinct(2), (PREDS, REFS)),
    "self_bleu2": (lambda: SelfBLEU(2), (PREDS + REFS,)),
    "rouge_l": (RougeL, (PREDS, REFS)),
    "pco": (PersonaCoverage, (PCO_PREDS * 2, PERSONAS + [["hiking"], ["i like paris"]])),
    "facts": (PersonaFactAccuracy, tuple(map(list, zip(*[c[:3] for c in FACT_CASES])))),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_halves_merge_and_sync_like_one(name: str) -> None:
    factory, columns = FACTORIES[name]
    whole = factory()
    whole.update(*columns)
    expected = floats(whole.compute())
    parts = [factory(), factory(), factory()]
    for part, half in zip(parts, [slice(0, 3), slice(3, None)]):
        part.update(*[column[half] for column in columns])
    merged = copy.deepcopy(parts[0])
    merged.merge_state(parts[1])
    assert floats(merged.compute()) == pytest.approx(expected, rel=1e-6)
    # parts[2] never updated, as on a DDP rank that got no batch.
    assert simulated_ddp(parts) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_no_data_is_nan(name: str) -> None:
    with pytest.warns(UserWarning, match="before the ``update``"):
        value = floats(FACTORIES[name][0]().compute())
    assert all(map(math.isnan, value.values() if isinstance(value, dict) else [value]))


def test_identical_prediction_and_single_sample() -> None:
    for metric in (SentenceBLEU(1), SentenceBLEU(2), CorpusBLEU()):
        metric.update(["my favorite color is blue"], ["my favorite color is blue"])
        assert metric.compute().item() == pytest.approx(100.0)


def test_degenerate_inputs_give_defined_values() -> None:
    # empty texts, texts shorter than n, all-identical predictions: numbers, no exception
    assert len(metric_tokens("a b c")) == 3
    cases = [  # (metric, update arguments, expected)
        (SentenceBLEU(2), (["", "hello", ""], ["", "hello", "hello"]), 0.0),
        (SentenceBLEU(1), (["hello", "hi there"], ["hello", ""]), 50.0),  # 100 and 0
        (CorpusBLEU(), (["", "hello"], ["", "hello"]),
         sacrebleu.corpus_bleu(["", "hello"], [["", "hello"]]).score),
        (Distinct(2), (["a b c"] * 3,), 100 * 2 / 6),  # bigrams {a b, b c} of 6
        (Distinct(1), ([""],), 0.0),
        (PersonaCoverage(), (["", "i like cats"], [["i like cats"], [""]]), 0.0),
        (PersonaFactAccuracy(), ([""], ["cat"], [[]]), 0.0),
    ]
    for metric, arguments, expected in cases:
        metric.update(*arguments)
        assert metric.compute().item() == pytest.approx(expected), type(metric).__name__


def ddp_worker(rank: int, port: int, parts: list[slice | None], queue: Any) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    values = {}
    for name, (factory, columns) in FACTORIES.items():
        metric = factory()
        if parts[rank] is not None:
            metric.update(*[column[parts[rank]] for column in columns])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the rank without data computes before updating
            values[name] = floats(metric.compute())
    queue.put((rank, values))
    dist.destroy_process_group()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
@pytest.mark.parametrize("parts", [[slice(0, 3), slice(3, None)], [slice(None), None]])
def test_real_gloo_ddp_matches_one_process(parts: list[slice | None]) -> None:
    expected = {}
    for name, (factory, columns) in FACTORIES.items():
        metric = factory()
        metric.update(*columns)
        expected[name] = floats(metric.compute())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=ddp_worker, args=(r, port, parts, queue)) for r in range(2)]
    for worker in workers:
        worker.start()
    results = dict(queue.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    for rank, name in itertools.product(range(2), expected):
        assert results[rank][name] == pytest.approx(expected[name], rel=1e-6), (rank, name)


def test_corpus_bleu_on_tokenized_text_gives_sacrebleus_score_without_its_warning(caplog) -> None:
    preds = [f"i have {i} cats ." for i in range(120)]
    refs = [f"i have {i % 7} dogs ." for i in range(120)]
    metric = CorpusBLEU()
    metric.update(preds, refs)
    with caplog.at_level(logging.WARNING, logger="sacrebleu"):
        score = float(metric.compute())
    assert not [r for r in caplog.records if r.name == "sacrebleu"]
    assert score == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score, abs=1e-4)
