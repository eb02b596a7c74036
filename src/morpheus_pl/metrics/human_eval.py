"""Human evaluation as in paper §4.3 and Appendix A.2: rankings -> scores and Fleiss' kappa.

Annotators rank, per example and criterion, the responses of several systems and the ground
truth, best first. Input, one JSON document:

    {"gold": "ground_truth",                       # optional, this is the default
     "systems": ["morpheus", "clv", "ground_truth"],
     "rankings": [{"example": "17", "criterion": "coherence", "annotator": "a1",
                   "ranking": ["morpheus", "ground_truth", "clv"]}, ...]}

Every ranking lists distinct known systems, the gold among them; all annotators of one example
and criterion rank the same candidates, and every (example, criterion) has the same number of
annotators (Fleiss' kappa needs a fixed number of raters). Scores (`response_score`): a response
ranked above the ground truth scores 1; the ground truth and the responses below it score by
position, (K - r) / (K - 1) for rank r (1 = best) of K candidates ("position", the default: the
appendix says that scores reflect the relative position, and its Table 3 gives the ground truth
0.92, not 1 or 0); rule "binary" scores 0 instead (the ground truth then always 0). A system's
score is its mean over examples and annotators. Fleiss' kappa takes every (example, candidate)
as a subject and its rank position as the category (appendix: "ordinal rankings ... as discrete
categories"), per criterion and over all criteria pooled.

CLI: python -m morpheus_pl.metrics.human_eval FILE [--rule position|binary]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from morpheus_pl.data.example import DataFormatError

Rule = Literal["position", "binary"]
ALL_CRITERIA = "all"
KAPPA_LABEL = "Fleiss' kappa"


@dataclass(frozen=True)
class Ranking:
    """One annotator's order of the candidates of one example under one criterion, best first."""

    example: str
    criterion: str
    annotator: str
    order: tuple[str, ...]


@dataclass(frozen=True)
class HumanEvaluation:
    """Validated rankings with the systems they rank and the name of the ground truth."""

    gold: str
    systems: tuple[str, ...]
    rankings: tuple[Ranking, ...]


def _field(record: dict, key: str, where: str, kinds: tuple[type, ...], expected: str) -> object:
    if key not in record:
        raise DataFormatError(f"{where}: missing field '{key}' (expected {expected})")
    if not isinstance(record[key], kinds) or isinstance(record[key], bool):
        raise DataFormatError(f"{where}: field '{key}': expected {expected}, got {record[key]!r}")
    return record[key]


def _ranking(record: object, where: str, systems: tuple[str, ...], gold: str) -> Ranking:
    if not isinstance(record, dict):
        raise DataFormatError(f"{where}: expected an object, got {record!r}")
    example, criterion, annotator = (
        str(_field(record, key, where, (str, int), "a string or number"))
        for key in ("example", "criterion", "annotator")
    )
    order = _field(record, "ranking", where, (list,), "a list of system names, best first")
    where = f"{where} (example {example!r}, criterion {criterion!r}, annotator {annotator!r})"
    for name in order:
        if name not in systems:
            raise DataFormatError(
                f"{where}: unknown system {name!r} in 'ranking'; expected one of {list(systems)}"
            )
    repeated = sorted({name for name in order if order.count(name) > 1})
    if repeated:
        raise DataFormatError(
            f"{where}: 'ranking' is not a permutation: {repeated} listed more than once"
        )
    if gold not in order or len(order) < 2:
        raise DataFormatError(
            f"{where}: 'ranking' must hold the ground truth {gold!r} and at least one other "
            f"system, got {order}"
        )
    return Ranking(example, criterion, annotator, tuple(order))


def _check_groups(rankings: list[Ranking], path: str) -> None:
    """Same candidates and distinct annotators per (example, criterion); one annotator count."""
    groups: dict[tuple[str, str], list[tuple[int, Ranking]]] = defaultdict(list)
    for i, ranking in enumerate(rankings):
        key = (ranking.example, ranking.criterion)
        for j, other in groups[key]:
            where = f"{path}: rankings[{i}] (example {key[0]!r}, criterion {key[1]!r})"
            if other.annotator == ranking.annotator:
                raise DataFormatError(
                    f"{where}: annotator {ranking.annotator!r} already ranked it in rankings[{j}]; "
                    "expected one ranking per annotator"
                )
            if set(other.order) != set(ranking.order):
                raise DataFormatError(
                    f"{where}: annotator {ranking.annotator!r} ranks {sorted(ranking.order)} but "
                    f"annotator {other.annotator!r} in rankings[{j}] ranks {sorted(other.order)}; "
                    "expected the same candidates from every annotator of an example"
                )
        groups[key].append((i, ranking))
    counts = {key: len(group) for key, group in groups.items()}
    first_key = next(iter(counts))
    for key, count in counts.items():
        if count < 2:
            raise DataFormatError(
                f"{path}: example {key[0]!r}, criterion {key[1]!r} has {count} annotator; "
                "expected at least 2 (Fleiss' kappa)"
            )
        if count != counts[first_key]:
            raise DataFormatError(
                f"{path}: example {key[0]!r}, criterion {key[1]!r} has {count} annotators, but "
                f"example {first_key[0]!r}, criterion {first_key[1]!r} has {counts[first_key]}; "
                "expected the same number everywhere (Fleiss' kappa)"
            )


def load_human_evaluation(path: str | Path) -> HumanEvaluation:
    """Read and validate a rankings file (format: module docstring); errors name file and record."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot read a JSON document: {exc}") from exc
    if not isinstance(document, dict):
        raise DataFormatError(f"{path}: expected an object with 'systems' and 'rankings'")
    gold = document.get("gold", "ground_truth")
    systems = _field(document, "systems", str(path), (list,), "a list of system names")
    if not all(isinstance(s, str) for s in systems) or len(set(systems)) != len(systems):
        raise DataFormatError(f"{path}: 'systems': expected distinct strings, got {systems}")
    if gold not in systems:
        raise DataFormatError(f"{path}: the ground truth {gold!r} is not in 'systems' {systems}")
    records = _field(document, "rankings", str(path), (list,), "a list of rankings")
    if not records:
        raise DataFormatError(f"{path}: 'rankings' is empty; expected at least one ranking")
    rankings = [
        _ranking(record, f"{path}: rankings[{i}]", tuple(systems), gold)
        for i, record in enumerate(records)
    ]
    _check_groups(rankings, str(path))
    return HumanEvaluation(gold, tuple(systems), tuple(rankings))


def response_score(rank: int, gold_rank: int, candidates: int, rule: Rule = "position") -> float:
    """Score of the response at `rank` (1 = best) when the ground truth is at `gold_rank`."""
    if rank < gold_rank:
        return 1.0
    return (candidates - rank) / (candidates - 1) if rule == "position" else 0.0


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa of a subjects x categories table of rater counts (equal row sums, >= 2).

    P_i = (sum_j n_ij^2 - n) / (n (n - 1)), p_j = column share, kappa = (mean P_i - sum_j p_j^2)
    / (1 - sum_j p_j^2); nan when all ratings fall into one category.
    """
    raters = sum(table[0])
    total = raters * len(table)
    agreement = math.fsum(
        (sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in table
    ) / len(table)
    chance = math.fsum((sum(column) / total) ** 2 for column in zip(*table))
    return (agreement - chance) / (1 - chance) if chance < 1 else math.nan


def _rank_table(rankings: Sequence[Ranking]) -> list[list[int]]:
    """Rows (example, criterion, candidate), columns rank positions, cells annotator counts."""
    width = max(len(r.order) for r in rankings)
    rows: dict[tuple[str, str, str], list[int]] = {}
    for ranking in rankings:
        for position, name in enumerate(ranking.order):
            rows.setdefault((ranking.example, ranking.criterion, name), [0] * width)[position] += 1
    return list(rows.values())


def system_scores(
    evaluation: HumanEvaluation, rule: Rule = "position"
) -> dict[str, dict[str, float]]:
    """{criterion: {system: mean score}}; systems a criterion never ranked are left out."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for ranking in evaluation.rankings:
        gold_rank = ranking.order.index(evaluation.gold) + 1
        for rank, name in enumerate(ranking.order, start=1):
            value = response_score(rank, gold_rank, len(ranking.order), rule)
            scores[ranking.criterion][name].append(value)
    return {
        criterion: {s: math.fsum(v) / len(v) for s in evaluation.systems if (v := by_system.get(s))}
        for criterion, by_system in scores.items()
    }


def agreement(evaluation: HumanEvaluation) -> dict[str, float]:
    """Fleiss' kappa per criterion and over all criteria pooled (key "all")."""
    by_criterion: dict[str, list[Ranking]] = defaultdict(list)
    for ranking in evaluation.rankings:
        by_criterion[ranking.criterion].append(ranking)
    kappa = {c: fleiss_kappa(_rank_table(group)) for c, group in by_criterion.items()}
    return {**kappa, ALL_CRITERIA: fleiss_kappa(_rank_table(evaluation.rankings))}


def format_report(evaluation: HumanEvaluation, rule: Rule = "position") -> str:
    """Systems as rows, criteria as columns (as the paper's Table 3), then the kappas."""
    scores, kappa = system_scores(evaluation, rule), agreement(evaluation)
    criteria = list(scores)
    width = max(len(s) for s in [*evaluation.systems, KAPPA_LABEL])
    lines = [" ".join([f"{'system':<{width}}", *(f"{c:>12}" for c in criteria)])]
    for system in evaluation.systems:
        cells = (f"{scores[c][system]:>12.3f}" if system in scores[c] else f"{'-':>12}"
                 for c in criteria)
        lines.append(" ".join([f"{system:<{width}}", *cells]))
    lines.append(" ".join([f"{KAPPA_LABEL:<{width}}", *(f"{kappa[c]:>12.3f}" for c in criteria)]))
    examples = len({r.example for r in evaluation.rankings})
    annotators = len({r.annotator for r in evaluation.rankings})
    lines.append(f"kappa over all criteria: {kappa[ALL_CRITERIA]:.3f}; {examples} examples, "
                 f"{annotators} annotators, rule {rule!r}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", help="rankings JSON (format: morpheus_pl.metrics.human_eval)")
    parser.add_argument("--rule", choices=["position", "binary"], default="position",
                        help="score of a response not above the ground truth")
    args = parser.parse_args(argv)
    try:
        evaluation = load_human_evaluation(args.file)
    except DataFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(evaluation, args.rule))
    return 0


if __name__ == "__main__":
    sys.exit(main())
