"""Degenerate codebook initialisation: more codes than vectors, identical vectors, dead codes.

Every init method gives finite codes, logs each degenerate case as a warning on the
`morpheus_pl` logger, and keeps dead codes (codes that are the nearest code of no vector).
"""

from __future__ import annotations

import logging
import re

import pytest
import torch

from morpheus_pl.modules.codebook_init import INIT_METHODS, init_codebook, nearest_code_counts

POINT = torch.tensor([1.5, -2.0, 3.0, 0.25])  # exact in binary: chunk means of copies are exact


def _vectors(case: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    if case == "fewer_vectors_than_codes":
        return torch.randn(5, 4, generator=g)
    if case == "single_vector":
        return POINT[None]
    if case == "all_identical":
        return POINT.repeat(40, 1)
    if case == "far_from_random_codes":
        return 10.0 + torch.randn(60, 4, generator=g)
    raise ValueError(case)


# case -> (N, {method: fragments the warnings must contain}, fewest dead codes per method)
CASES = {
    "fewer_vectors_than_codes": (12, {
        "em": ["12 components but only 5 distinct points"],
        "mean": ["init_codebook(mean): 12 codes but only 5 distinct persona vectors (of 5)",
                 "5 vectors for 12 codes; cycling them"],
        "sequential": ["init_codebook(sequential): 12 codes but only 5 distinct persona vectors",
                       "5 vectors for 12 codes; cycling them"],
        "random": ["init_codebook(random): 12 codes but only 5 distinct persona vectors"],
    }, {"em": 7, "mean": 7, "sequential": 7, "random": 7}),
    "single_vector": (4, {
        "em": ["4 components but only 1 distinct points"],
        "mean": ["4 codes but only 1 distinct persona vectors (of 1)", "1 vectors for 4 codes"],
        "sequential": ["4 codes but only 1 distinct persona vectors (of 1)"],
        "random": ["4 codes but only 1 distinct persona vectors (of 1)"],
    }, {method: 3 for method in INIT_METHODS}),
    "all_identical": (6, {
        "em": ["6 components but only 1 distinct points"],
        "mean": ["6 codes but only 1 distinct persona vectors (of 40)"],
        "sequential": ["6 codes but only 1 distinct persona vectors (of 40)"],
        "random": ["6 codes but only 1 distinct persona vectors (of 40)"],
    }, {method: 5 for method in INIT_METHODS}),
    "far_from_random_codes": (8, {"random": []}, {"random": 1}),
}
TABLE = [(case, method) for case, (_, expected, _) in CASES.items() for method in expected]


@pytest.mark.parametrize(("case", "method"), TABLE)
def test_degenerate_init_is_finite_and_warns(caplog, case: str, method: str) -> None:
    num_codes, expected, fewest_dead = CASES[case]
    x = _vectors(case)
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        codes = init_codebook(x, num_codes, method, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (num_codes, x.shape[1])
    assert torch.isfinite(codes).all()
    for fragment in expected[method]:
        assert fragment in caplog.text
    dead = int((nearest_code_counts(x, codes) == 0).sum())
    assert dead >= fewest_dead[method]
    reported = re.search(rf"init_codebook\({method}\): (\d+) of {num_codes} codes are the nearest "
                         r"code of no persona vector \(dead codes\); kept", caplog.text)
    assert reported is not None and int(reported[1]) == dead


@pytest.mark.parametrize("method", INIT_METHODS)
def test_identical_vectors_give_codes_on_the_point_or_in_the_random_range(method: str) -> None:
    codes = init_codebook(POINT.repeat(40, 1), 6, method,
                          generator=torch.Generator().manual_seed(0))
    if method == "random":
        assert codes.abs().max() <= 1 / 6  # dead codes are kept, not moved onto the data
    else:
        torch.testing.assert_close(codes, POINT.repeat(6, 1))


def test_em_reseeds_a_far_component_so_no_code_is_dead(caplog) -> None:
    """EM's own rule: a component with (almost) no responsibility is re-seeded on the data."""
    g = torch.Generator().manual_seed(4)
    centres = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    x = centres.repeat_interleave(50, 0) + 0.3 * torch.randn(150, 2, generator=g)
    start = centres.clone()
    start[2] = 1e3  # no vector near it: its responsibilities underflow to 0
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        codes = init_codebook(x, 3, "em", em_kwargs={"init_means": start})
    assert "dead codes" not in caplog.text
    assert (nearest_code_counts(x, codes) > 0).all()
    assert codes.abs().max() < 20


@pytest.mark.parametrize("method", INIT_METHODS)
def test_distinct_vectors_no_warning(caplog, method: str) -> None:
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(5))
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        codes = init_codebook(x, 4 if method != "random" else 1, method,
                              generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(codes).all()
    if method in ("em", "sequential"):
        assert caplog.text == ""


@pytest.mark.parametrize("method", INIT_METHODS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_vectors_raise_naming_the_row(method: str, bad: float) -> None:
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(6))
    x[7, 2] = bad
    expected = r"1 persona vector\(s\) contain NaN or Inf \(first: row 7\)"
    with pytest.raises(ValueError, match=expected):
        init_codebook(x, 3, method)


def test_nearest_code_counts_in_chunks_equal_one_pass() -> None:
    g = torch.Generator().manual_seed(7)
    x, codes = torch.randn(1000, 6, generator=g), torch.randn(9, 6, generator=g)
    counts = nearest_code_counts(x, codes, chunk=64)
    assert counts.sum() == 1000
    assert torch.equal(counts, torch.bincount(torch.cdist(x, codes).argmin(1), minlength=9))
