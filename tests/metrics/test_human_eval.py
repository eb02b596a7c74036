"""Human evaluation: hand-worked scores and Fleiss' kappa, statsmodels as oracle, bad input, CLI."""

import copy
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from morpheus_pl.data.example import DataFormatError
from morpheus_pl.metrics.human_eval import (
    agreement,
    fleiss_kappa,
    load_human_evaluation,
    main,
    system_scores,
)

ORDERS = {  # (example, criterion): one ranking per annotator a1, a2, a3, best first
    ("e1", "coherence"): ["G A B", "G A B", "A G B"],
    ("e2", "coherence"): ["A B G", "B A G", "A B G"],
    ("e1", "readability"): ["G A B"] * 3,
    ("e2", "readability"): ["A G B"] * 3,
}
DOCUMENT = {
    "gold": "G",
    "systems": ["A", "B", "G"],
    "rankings": [
        {"example": example, "criterion": criterion, "annotator": f"a{i + 1}",
         "ranking": order.split()}
        for (example, criterion), orders in ORDERS.items() for i, order in enumerate(orders)
    ],
}


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "rankings.json"
    path.write_text(json.dumps(document))
    return path


def test_hand_worked_scores(tmp_path: Path) -> None:
    evaluation = load_human_evaluation(write(tmp_path, DOCUMENT))
    # rule "position", K = 3: above G -> 1, else (3 - rank) / 2, i.e. rank 1, 2, 3 -> 1, 0.5, 0.
    # coherence, A: e1 0.5, 0.5, 1 (above G for a3); e2 1, 1, 1       -> 5 / 6
    #            B: e1 0, 0, 0;                      e2 1, 1, 1       -> 3 / 6
    #            G: e1 1, 1, 0.5;                    e2 0, 0, 0       -> 2.5 / 6
    # readability, A: e1 0.5 x 3, e2 1 x 3 -> 0.75; B: 0; G: e1 1 x 3, e2 0.5 x 3 -> 0.75
    assert system_scores(evaluation) == {
        "coherence": {"A": 5 / 6, "B": 0.5, "G": 2.5 / 6},
        "readability": {"A": 0.75, "B": 0.0, "G": 0.75},
    }
    # rule "binary": above G -> 1, else 0 (G itself always 0)
    assert system_scores(evaluation, "binary")["coherence"] == {"A": 4 / 6, "B": 0.5, "G": 0.0}


def test_hand_worked_fleiss_kappa(tmp_path: Path) -> None:
    # Subjects (example, candidate), categories rank 1..3, n = 3 annotators.
    # coherence rows (rank 1, 2, 3 counts): e1 A (1,2,0), B (0,0,3), G (2,1,0);
    #                                       e2 A (2,1,0), B (1,2,0), G (0,0,3)
    # P_i = (sum n_ij^2 - 3) / 6: (1,2,0) -> 2/6, (0,0,3) -> 1, (2,1,0) -> 2/6
    # mean P = (4 * 1/3 + 2) / 6 = 5/9; column shares 6/18 each -> P_e = 3 * (1/3)^2 = 1/3
    # kappa = (5/9 - 1/3) / (1 - 1/3) = (2/9) / (2/3) = 1/3
    # readability: every row (3,0,0)-like -> P_i = 1, P_e = 1/3 -> kappa = 1
    # pooled: mean P = (10/3 + 6) / 12 = 7/9, P_e = 1/3 -> kappa = (4/9) / (2/3) = 2/3
    kappa = agreement(load_human_evaluation(write(tmp_path, DOCUMENT)))
    assert kappa == pytest.approx({"coherence": 1 / 3, "readability": 1.0, "all": 2 / 3})
    coherence = [[1, 2, 0], [0, 0, 3], [2, 1, 0], [2, 1, 0], [1, 2, 0], [0, 0, 3]]
    assert statsmodels_fleiss_kappa(coherence) == pytest.approx(1 / 3)
    assert fleiss_kappa(coherence) == pytest.approx(1 / 3)


def test_kappa_matches_statsmodels_on_random_rankings(tmp_path: Path) -> None:
    rng = random.Random(0)
    systems = ["morpheus", "clv", "msp", "dhap", "pkt", "ground_truth"]
    rankings = []
    for example in range(30):
        base = systems[:]
        rng.shuffle(base)
        for criterion in ("readability", "diversity", "consistency", "coherence"):
            for annotator in ("a", "b", "c"):
                order = base[:]  # agree with a shared order up to two random swaps
                for _ in range(2):
                    i, j = rng.randrange(6), rng.randrange(6)
                    order[i], order[j] = order[j], order[i]
                rankings.append({"example": example, "criterion": criterion,
                                 "annotator": annotator, "ranking": order})
    document = {"systems": systems, "rankings": rankings}
    kappa = agreement(load_human_evaluation(write(tmp_path, document)))
    for criterion in ("readability", "diversity", "consistency", "coherence", "all"):
        counts = Counter(
            (r["example"], r["criterion"], name, position)
            for r in rankings if criterion in ("all", r["criterion"])
            for position, name in enumerate(r["ranking"])
        )
        subjects = sorted({key[:3] for key in counts})
        table = [[counts[(*subject, position)] for position in range(6)] for subject in subjects]
        assert kappa[criterion] == pytest.approx(statsmodels_fleiss_kappa(table), rel=1e-12)
    assert 0.2 < kappa["all"] < 0.8


def test_all_in_one_category_is_nan() -> None:
    with pytest.warns(RuntimeWarning):
        assert str(statsmodels_fleiss_kappa([[3, 0], [3, 0]])) == "nan"
    assert str(fleiss_kappa([[3, 0], [3, 0]])) == "nan"


def broken(change: str) -> dict:
    document = copy.deepcopy(DOCUMENT)
    record = document["rankings"][4]  # e2, coherence, a2: B A G
    if change == "unknown system":
        record["ranking"] = ["B", "X", "G"]
    elif change == "repeat":
        record["ranking"] = ["B", "B", "G"]
    elif change == "other candidates":
        document["systems"].append("C")
        record["ranking"] = ["B", "C", "G"]
    elif change == "no gold":
        record["ranking"] = ["B", "A"]
    elif change == "same annotator":
        record["annotator"] = "a1"
    elif change == "annotator missing":
        del document["rankings"][4]
    elif change == "field":
        del record["criterion"]
    return document


@pytest.mark.parametrize(("change", "message"), [
    ("unknown system", r"rankings\[4\] \(example 'e2', criterion 'coherence', annotator 'a2'\): "
                       r"unknown system 'X' in 'ranking'; expected one of \['A', 'B', 'G'\]"),
    ("repeat", r"rankings\[4\] .*'ranking' is not a permutation: \['B'\] listed more than once"),
    ("other candidates", r"rankings\[4\] \(example 'e2', criterion 'coherence'\): annotator 'a2' "
                         r"ranks \['B', 'C', 'G'\] but annotator 'a1' in rankings\[3\] ranks "
                         r"\['A', 'B', 'G'\]; expected the same candidates"),
    ("no gold", r"rankings\[4\] .*must hold the ground truth 'G'"),
    ("same annotator", r"rankings\[4\] .*annotator 'a1' already ranked it in rankings\[3\]"),
    ("annotator missing", r"example 'e2', criterion 'coherence' has 2 annotators, but example "
                          r"'e1', criterion 'coherence' has 3"),
    ("field", r"rankings\[4\]: missing field 'criterion'"),
])
def test_bad_input_names_file_record_and_expectation(
    tmp_path: Path, change: str, message: str
) -> None:
    path = write(tmp_path, broken(change))
    with pytest.raises(DataFormatError, match=f"^{path}: .*{message}"):
        load_human_evaluation(path)


def test_cli_prints_scores_and_kappa(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(write(tmp_path, DOCUMENT))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["system", "coherence", "readability"]
    assert lines[1].split() == ["A", "0.833", "0.750"]
    assert lines[3].split() == ["G", "0.417", "0.750"]
    assert lines[4].split() == ["Fleiss'", "kappa", "0.333", "1.000"]
    assert lines[5].startswith("kappa over all criteria: 0.667; 2 examples, 3 annotators")
    bad = write(tmp_path, broken("repeat"))
    run = subprocess.run([sys.executable, "-m", "morpheus_pl.metrics.human_eval", str(bad)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2 and run.stderr.startswith(f"error: {bad}: rankings[4]")
