"""Word-overlap metrics of paper §4.3 as `torchmetrics.Metric`s (definitions: docs/metrics.md).

Texts are tokenised into cl100k token ids (`metrics.tokenize`, Appendix A.1), except for
`CorpusBLEU`, which keeps sacrebleu's own tokenisation. Scores are ×100, except
`PersonaFactAccuracy` (a fraction in [0, 1]). A metric that has seen no sample returns nan.
How the states survive DDP: `metrics.state`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sacrebleu
import torch
from torch import Tensor
from torchmetrics import Metric

from morpheus_pl.metrics.bleu import ngrams, sentence_bleu
from morpheus_pl.metrics.state import (
    check_lengths,
    flat,
    mean_or_nan,
    pack_rows,
    pack_texts,
    scalar,
    state_ints,
    unpack_rows,
    unpack_texts,
)
from morpheus_pl.metrics.tokenize import metric_token_ids

_SPACELESS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana and CJK ideographs
_WORD = f"[^\\W{_SPACELESS}]"  # a word character of a script written with spaces


def mentions(text: str, phrase: str) -> bool:
    """Whether `phrase` occurs in `text`, case-insensitively, as whole words.

    An edge of `phrase` that is a word character of a space-delimited script may not touch another
    such character in `text` ("cat" is not in "category"); CJK text matches as a plain substring.
    Whitespace inside `phrase` matches any run of whitespace.
    """
    words = phrase.split()
    if not words:
        return False
    pattern = r"\s+".join(re.escape(word) for word in words)
    if re.match(_WORD, words[0][0]):
        pattern = f"(?<!{_WORD})" + pattern
    if re.match(_WORD, words[-1][-1]):
        pattern += f"(?!{_WORD})"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def fact_correct(prediction: str, fact: str, options: Sequence[str]) -> bool:
    """True iff, of `options` (and `fact`), the prediction mentions exactly `fact` (casefolded)."""
    candidates = {option.strip().casefold() for option in [*options, fact]}
    mentioned = {option for option in candidates if mentions(prediction, option)}
    return mentioned == {fact.strip().casefold()}


class SentenceBLEU(Metric):
    """BLEU-n: mean over pairs of `sentence_bleu` on cl100k ids (no smoothing), ×100."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        bleu_sum = torch.tensor(0.0, dtype=torch.float64)
        self.add_state("bleu_sum", default=bleu_sum, dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: list[str], targets: list[str]) -> None:
        check_lengths(preds, targets)
        scores = [
            sentence_bleu(metric_token_ids(p), metric_token_ids(t), self.n)
            for p, t in zip(preds, targets)
        ]
        self.bleu_sum += math.fsum(scores)
        self.count += len(scores)

    def compute(self) -> Tensor:
        return mean_or_nan(self, self.bleu_sum.item(), self.count.item(), 100.0)


class CorpusBLEU(Metric):
    """`sacrebleu.corpus_bleu(preds, [targets], tokenize=tokenize).score` (already ×100)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, tokenize: str = "13a", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokenize = tokenize
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, preds: list[str], targets: list[str]) -> None:
        check_lengths(preds, targets)
        self.preds.append(pack_texts(self, preds))
        self.targets.append(pack_texts(self, targets))

    def compute(self) -> Tensor:
        preds = unpack_texts(self.preds)
        if not preds:
            return scalar(self, math.nan)
        # force=True only silences sacrebleu's "forgot to detokenize" warning (same score): the
        # persona datasets come tokenized ("i am fine .") and are scored as they are
        bleu = sacrebleu.corpus_bleu(preds, [unpack_texts(self.targets)], tokenize=self.tokenize,
                                     force=True)
        return scalar(self, bleu.score)


class Distinct(Metric):
    """Distinct-n: distinct n-grams / all n-grams of cl100k ids over all predictions, ×100.

    0 when the predictions hold no n-gram. `targets` is ignored; it is accepted so that the metric
    can share a `MetricCollection` with the reference-based metrics.
    """

    # Distinctness is over the union of all processes' predictions: a sum of per-process distinct
    # counts would count an n-gram seen on two processes twice, so the token ids are gathered
    # ("cat") and the n-grams are counted once, at compute time.
    full_state_update = False
    higher_is_better = True

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self.add_state("preds", default=[], dist_reduce_fx="cat")

    def update(self, preds: list[str], targets: list[str] | None = None) -> None:
        self.preds.append(pack_rows(self, [metric_token_ids(p) for p in preds]))

    def compute(self) -> Tensor:
        preds = unpack_rows(self.preds)
        if not preds:
            return scalar(self, math.nan)
        grams = [gram for tokens in preds for gram in ngrams(tokens, self.n)]
        return mean_or_nan(self, len(set(grams)), len(grams), 100.0) if grams else scalar(self, 0.0)


class PersonaCoverage(Metric):
    """P-Co (Song et al., 2019b) on cl100k ids, ×100.

    A persona segment's score is the mean IDF of its tokens that occur in the prediction (0 if
    none), IDF(t) = 1 / (1 + ln(1 + df(t))), df(t) = number of persona segments of the evaluated
    set containing t (every segment of every example counts, repeats included). An example scores
    the max over its segments (0 without segments); P-Co is the mean over examples. Tokens are
    sets within a segment and within a prediction: repeats count once.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("segments", default=[], dist_reduce_fx="cat")
        self.add_state("segments_per_example", default=[], dist_reduce_fx="cat")

    def update(self, preds: list[str], personas: list[list[str]]) -> None:
        check_lengths(preds, personas)
        segments = [metric_token_ids(segment) for persona in personas for segment in persona]
        self.preds.append(pack_rows(self, [metric_token_ids(p) for p in preds]))
        self.segments.append(pack_rows(self, segments))
        self.segments_per_example.append(flat(self, [len(p) for p in personas]))

    def compute(self) -> Tensor:
        preds = unpack_rows(self.preds)
        segments = [set(segment) for segment in unpack_rows(self.segments)]
        document_frequency = Counter(token for segment in segments for token in segment)
        idf = {t: 1.0 / (1.0 + math.log(1.0 + df)) for t, df in document_frequency.items()}
        total, start = 0.0, 0
        for pred, count in zip(preds, state_ints(self.segments_per_example)):
            tokens, best = set(pred), 0.0
            for segment in segments[start : start + count]:
                if covered := segment & tokens:
                    best = max(best, math.fsum(idf[t] for t in covered) / len(covered))
            total, start = total + best, start + count
        return mean_or_nan(self, total, len(preds), 100.0)


class PersonaFactAccuracy(Metric):
    """Share of predictions for which `fact_correct` holds, in [0, 1] (not ×100).

    A prediction is correct iff, of its example's `fact_options` (plus the gold fact), it
    mentions the gold fact and nothing else (`mentions`: whole words, case-insensitive; CJK as
    substrings). Mentioning no option, or several, is wrong; so is an option that contains
    another ("black cat" also mentions "cat").
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: list[str], facts: list[str], fact_options: list[list[str]]) -> None:
        check_lengths(preds, facts, fact_options)
        self.correct += sum(fact_correct(*row) for row in zip(preds, facts, fact_options))
        self.count += len(preds)

    def compute(self) -> Tensor:
        return mean_or_nan(self, self.correct.item(), self.count.item(), 1.0)
