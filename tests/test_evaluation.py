"""Evaluation helpers: code accuracy per slot, seed aggregation with missing metrics, the table."""

from __future__ import annotations

import logging

import pytest

from morpheus_pl.evaluation import _aggregate, code_scores, consistency_scores, results_table


def _row(picked, gold, recall):
    return {"system": "morpheus", "predicted_codes": picked, "gold_codes": gold, "code_recall": recall}


def test_code_accuracy_per_slot_and_overall() -> None:
    rows = [_row([1, 2, 3], [1, 5, 3], 2 / 3), _row([4, 4, 4], [4, 6, 7], 1 / 3)]
    scores = code_scores(rows)
    # slot 0: 2 of 2 right, slot 1: 0 of 2, slot 2: 1 of 2; overall 3 of 6
    assert scores["code_accuracy_slot0"] == 1.0
    assert scores["code_accuracy_slot1"] == 0.0
    assert scores["code_accuracy_slot2"] == 0.5
    assert scores["code_accuracy"] == 0.5
    assert scores["code_recall"] == pytest.approx(0.5)
    assert code_scores([_row(None, None, None)]) == {}


def test_no_scorer_means_missing_not_zero() -> None:
    assert consistency_scores(None, [{"prediction": "x"}]) == {"con_score": None,
                                                               "coh_con_score": None}


def test_aggregate_mean_std_and_missing() -> None:
    runs = [{"bleu1": 10.0, "con_score": None}, {"bleu1": 14.0, "con_score": None}]
    out = _aggregate(runs)
    assert out["bleu1"] == 12.0 and out["bleu1_std"] == pytest.approx(2 ** 0.5 * 2)
    assert out["con_score"] is None and "con_score_std" not in out


def test_table_groups_like_table_2_and_marks_missing() -> None:
    results = {"morpheus": {"bleu1": 12.0, "bleu1_std": 2.0, "distinct1": 5.0, "p_co": 3.0,
                            "con_score": None, "persona_fact_accuracy": 0.5},
               "no_persona": {"bleu1": 11.0, "distinct1": 4.0, "p_co": 2.0, "con_score": None}}
    report = {"seeds": [0, 1], "metric_tokenizer": "cl100k_base",
              "scorer": {"checkpoint": None, "missing": "no scorer here"}}
    table = results_table(results, report)
    header = table.splitlines()[0]
    assert header == ("| system | Coherence · BLEU-1 | Diversity · Dist-1 | Consistency · P-Co | "
                      "Consistency · Con.Score | Persona inference · fact acc. |")
    assert "| morpheus | 12.000 ± 2.000 | 5.000 | 3.000 | missing | 0.500 |" in table
    assert "| no_persona | 11.000 | 4.000 | 2.000 | missing | – |" in table
    assert "Con.Score missing: no scorer here" in table


def test_table_reports_the_trainable_share_per_system() -> None:
    report = {"seeds": [0], "metric_tokenizer": "cl100k_base", "peft": "lora",
              "parameters": {"morpheus": {"trainable": 1500, "total": 10000, "tps_percent": 15.0},
                             "no_persona": {"trainable": 25, "total": 10025,
                                            "tps_percent": 100 * 25 / 10025}}}
    table = results_table({"morpheus": {"bleu1": 1.0}}, report)
    assert ("Trainable parameters (peft=lora): morpheus 1,500 of 10,000 (15.00 %); "
            "no_persona 25 of 10,025 (0.25 %)") in table


def test_majority_code_reference_and_distinct_gold_codes() -> None:
    rows = [_row([1, 5], [1, 5], 1.0), _row([1, 5], [1, 6], 0.5), _row([2, 7], [2, 7], 1.0)]
    scores = code_scores(rows)
    # slot 0 gold 1, 1, 2: majority 2/3; slot 1 gold 5, 6, 7: 1/3; mean 1/2
    assert scores["code_accuracy_majority"] == pytest.approx(0.5)
    assert scores["gold_codes_distinct"] == 5.0
    assert scores["code_accuracy"] == pytest.approx(5 / 6)


def test_the_set_view_has_its_own_majority_reference() -> None:
    """Gold [1, 5], [5, 1], [1, 6]: per slot the majority picks 1 then 5 (2/3 and 1/3, mean
    1/2); as sets the two most frequent codes {1, 5} find 2 of 2, 2 of 2 and 1 of 2 (5/6)."""
    rows = [_row([1, 5], [1, 5], 1.0), _row([5, 1], [5, 1], 1.0), _row([1, 6], [1, 6], 1.0)]
    scores = code_scores(rows)
    assert scores["code_accuracy_majority"] == pytest.approx(0.5)
    assert scores["code_recall_majority"] == pytest.approx(5 / 6)
    # ties go to the lower code: {1, 2} of gold [1, 5], [1, 6], [2, 7] finds one of each
    rows = [_row([1, 5], [1, 5], 1.0), _row([1, 6], [1, 6], 1.0), _row([2, 7], [2, 7], 1.0)]
    assert code_scores(rows)["code_recall_majority"] == pytest.approx(0.5)


def test_a_predictor_no_better_than_the_most_frequent_codes_is_named(caplog) -> None:
    """Recall 1/2 against the reference's 5/6 warns; the same gold read right does not."""
    gold = [[1, 5], [5, 1], [1, 6]]
    blind = [_row([1, 9], g, 0.5) for g in gold]
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        code_scores(blind)
        code_scores([{**_row(g, g, 1.0), "system": "morpheus/covering"} for g in gold])
    assert [r.getMessage() for r in caplog.records] == [
        "morpheus: code recall 0.500 is no better than always picking the 2 most frequent codes "
        "(0.833): the code predictor does not read the history, so the prefix carries no persona "
        "of this dialogue (docs/predictor_study.md)"]


def test_collapsed_codebook_is_flagged(caplog) -> None:
    rows = [_row([4, 4], [4, 4], 1.0) for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        scores = code_scores(rows)
    assert scores["code_accuracy"] == scores["code_accuracy_majority"] == 1.0
    assert scores["gold_codes_distinct"] == 1.0
    assert "morpheus: every test persona segment maps to code 4: the codebook collapsed" in caplog.text


def test_with_facts_the_warning_goes_by_fact_recall(caplog) -> None:
    """Code recall below its reference but fact recall above (the right facts in other templates'
    codes): no warning; fact recall no better than its reference: the fact-level warning."""
    gold = [[1, 5], [5, 1], [1, 6]]
    blind = [_row([1, 9], g, 0.5) for g in gold]
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        scores = code_scores(blind, {"fact_recall": 0.6, "fact_recall_majority": 0.4})
        code_scores(blind, {"fact_recall": 0.4, "fact_recall_majority": 0.4})
    assert scores["fact_recall"] == 0.6 and scores["code_recall"] == 0.5
    assert [r.getMessage() for r in caplog.records] == [
        "morpheus: the picked codes name 0.400 of a persona's facts, no more than always picking "
        "the 2 most frequent facts (0.400): the code predictor does not read the history, so the "
        "prefix carries no persona of this dialogue (docs/predictor_study.md)"]
