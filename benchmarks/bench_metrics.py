"""Time every automatic metric on 2,138 generated responses (one core); fail above 2 s in total.

Responses, references and personas come from a seeded template grammar, 5-25 words each (a tenth
in Chinese). Each metric is timed from `update` to `compute`, tokenisation included (the token
caches start cold, so the first metric on a text pays for it, as in `score_predictions`); not
timed: loading the cl100k table and one warm-up round on 10 other responses (one-time set-ups
such as regex compilation). Figures are medians of 3 rounds. For comparison, nltk's all-pairs
self-BLEU-2 on the first 300 responses.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
import warnings

import torch
from nltk.translate.bleu_score import sentence_bleu as nltk_sentence_bleu
from torchmetrics import Metric

from morpheus_pl.metrics.overlap import (
    CorpusBLEU,
    Distinct,
    PersonaCoverage,
    PersonaFactAccuracy,
    SentenceBLEU,
)
from morpheus_pl.metrics.rouge import RougeL
from morpheus_pl.metrics.self_bleu import SelfBLEU, self_bleu_scores
from morpheus_pl.metrics.tokenize import metric_token_ids, metric_tokenizer

RESPONSES = 2138
BUDGET_S = 2.0
NLTK_SUBSET = 300
ROUNDS = 3  # each on its own workload (seeds 0, 1, 2), so caches start cold for its texts

SUBJECTS = ["i", "my sister", "my dog", "we", "my best friend", "our neighbour", "the kids"]
VERBS = ["like", "love", "hate", "enjoy", "have", "want", "sometimes cook", "often visit"]
OBJECTS = ["pizza", "hiking", "blue cars", "two cats", "jazz music", "the beach", "old movies",
           "green tea", "long walks", "video games", "the mountains", "french bread"]
TAILS = ["on weekends", "every morning", "with my family", "after work", "in the summer",
         "when it rains", "a lot", "more than anything"]
LINKS = ["and", "but", "because", "so", "although"]
CHINESE = ["我", "喜欢", "周末", "去", "爬山", "和", "朋友", "一起", "看", "电影", "猫", "音乐"]
FACTS = ["cat", "dog", "fish", "bird"]


def sentence(rng: random.Random) -> str:
    """5-25 words: clauses of the grammar joined by links, cut at a drawn length."""
    length = rng.randint(5, 25)
    if rng.random() < 0.1:
        return "".join(rng.choice(CHINESE) for _ in range(length))
    words: list[str] = []
    while len(words) < length:
        if words:
            words.append(rng.choice(LINKS))
        for slot in (SUBJECTS, VERBS, OBJECTS, TAILS):
            words.extend(rng.choice(slot).split())
    return " ".join(words[:length])


def workload(seed: int, size: int) -> dict[str, list]:
    rng = random.Random(seed)
    return {
        "preds": [sentence(rng) for _ in range(size)],
        "refs": [sentence(rng) for _ in range(size)],
        "personas": [[sentence(rng) for _ in range(rng.randint(3, 5))] for _ in range(size)],
        "facts": [rng.choice(FACTS) for _ in range(size)],
        "options": [FACTS] * size,
    }


def metric_cases(data: dict[str, list]) -> dict[str, tuple[Metric, list[list]]]:
    """Each metric, new, with the columns its `update` takes."""
    preds, refs = data["preds"], data["refs"]
    return {
        "bleu1": (SentenceBLEU(1), [preds, refs]),
        "bleu2": (SentenceBLEU(2), [preds, refs]),
        "corpus_bleu": (CorpusBLEU(), [preds, refs]),
        "rouge_l (+ recall)": (RougeL(), [preds, refs]),
        "distinct1": (Distinct(1), [preds]),
        "distinct2": (Distinct(2), [preds]),
        "self_bleu1": (SelfBLEU(1), [preds]),
        "self_bleu2": (SelfBLEU(2), [preds]),
        "self_bleu2 random": (SelfBLEU(2, references="random"), [preds]),
        "p_co": (PersonaCoverage(), [preds, data["personas"]]),
        "persona_fact_accuracy": (PersonaFactAccuracy(), [preds, data["facts"], data["options"]]),
    }


def timed(metric: Metric, columns: list[list]) -> tuple[float, object]:
    start = time.perf_counter()
    metric.update(*columns)
    value = metric.compute()
    return time.perf_counter() - start, value


def run_round(data: dict[str, list]) -> tuple[dict[str, float], dict[str, object]]:
    """Seconds and value of every metric on `data`."""
    seconds, values = {}, {}
    for name, (metric, columns) in metric_cases(data).items():
        seconds[name], value = timed(metric, columns)
        values[name] = ({k: round(v.item(), 3) for k, v in value.items()}
                        if isinstance(value, dict) else round(value.item(), 3))
    return seconds, values


def main() -> int:
    torch.set_num_threads(1)
    metric_tokenizer()  # load the cl100k table outside the timings
    run_round(workload(seed=ROUNDS, size=10))  # warm-up
    workloads = [workload(seed, RESPONSES) for seed in range(ROUNDS)]
    rounds = [run_round(data) for data in workloads]
    preds = workloads[0]["preds"]
    print(f"{RESPONSES} responses ({sum(len(metric_token_ids(p)) for p in preds)} cl100k tokens "
          f"in round 1); torch threads {torch.get_num_threads()}; median of {ROUNDS} rounds")
    print(f"{'metric':<24}{'seconds':>10}  value (round 1)")
    for name in rounds[0][0]:
        seconds = statistics.median(times[name] for times, _ in rounds)
        print(f"{name:<24}{seconds:>10.3f}  {rounds[0][1][name]}")
    totals = [sum(times.values()) for times, _ in rounds]
    total = statistics.median(totals)
    print(f"{'total':<24}{total:>10.3f}  (budget {BUDGET_S:.1f} s; rounds "
          f"{', '.join(f'{t:.3f}' for t in totals)})")

    rows = [metric_token_ids(p) for p in preds[:NLTK_SUBSET]]
    start = time.perf_counter()
    ours = self_bleu_scores(rows, 2)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns on zero n-gram overlap
        theirs = [nltk_sentence_bleu(rows[:i] + rows[i + 1:], row, weights=(0.5, 0.5))
                  for i, row in enumerate(rows)]
    nltk_s = time.perf_counter() - start
    agree = all(a == (b if b > 1e-100 else 0.0) for a, b in zip(ours, theirs))
    print(f"self-BLEU-2 on {NLTK_SUBSET} responses: nltk all pairs {nltk_s:.3f} s, "
          f"ours {ours_s:.4f} s ({nltk_s / ours_s:.0f}x), identical values: {agree}")
    if total > BUDGET_S or not agree:
        print(f"FAIL: total {total:.3f} s > {BUDGET_S} s" if total > BUDGET_S
              else "FAIL: self-BLEU differs from nltk", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
