"""nltk's sentence BLEU without smoothing, written so that self-BLEU can share its arithmetic."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def ngrams(tokens: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """The n-grams of `tokens` in order; none when there are fewer than n tokens."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def bleu_from_counts(matched: Sequence[int], hyp_len: int, ref_len: int) -> float:
    """BLEU-n in [0, 1] from the clipped k-gram matches, k = 1..n, as nltk computes it.

    p_k = matched[k] / max(1, hyp_len - k + 1); BLEU = BP * exp(fsum(log(p_k) / n)),
    BP = 1 if hyp_len > ref_len else exp(1 - ref_len / hyp_len): the same float operations
    as `nltk.translate.bleu_score.sentence_bleu(weights=(1/n,) * n)`, so equal values.
    Any p_k = 0, or an empty hypothesis, gives 0 (nltk gives 0 when p_1 = 0, and BP times
    sqrt(p_1 * 2.2e-308)-like numbers below 1e-150, with a warning, when a higher p_k = 0).
    """
    if hyp_len == 0 or not all(matched):
        return 0.0
    weight = 1.0 / len(matched)
    log_precision = math.fsum(
        weight * math.log(m / max(1, hyp_len - k)) for k, m in enumerate(matched)
    )
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


def sentence_bleu(hypothesis: Sequence[int], reference: Sequence[int], n: int) -> float:
    """nltk `sentence_bleu([reference], hypothesis, weights=(1/n,) * n)` without smoothing.

    Matches of a k-gram are clipped to its count in the reference; see `bleu_from_counts`.
    """
    matched = []
    for k in range(1, n + 1):
        reference_counts = Counter(ngrams(reference, k))
        hypothesis_counts = Counter(ngrams(hypothesis, k))
        matched.append(sum(min(c, reference_counts[g]) for g, c in hypothesis_counts.items()))
        if matched[-1] == 0:
            return 0.0
    return bleu_from_counts(matched, len(hypothesis), len(reference))
