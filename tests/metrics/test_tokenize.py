"""The metric tokenizer is cl100k (online or the packaged offline copy) and is lossless."""

import pytest

from morpheus_pl.metrics.tokenize import (
    CL100K,
    CL100K_OFFLINE,
    metric_token_ids,
    metric_tokenizer,
    metric_tokens,
)

TEXTS = [
    "I love hiking on weekends.",
    "我喜欢在周末去爬山。",
    "mixed 中英 text <|endoftext|> 42",  # special-token text is encoded as plain text
]


def test_name_is_cl100k_and_cached() -> None:
    encoding, name = metric_tokenizer()
    assert name in (CL100K, CL100K_OFFLINE)
    assert encoding.name == name
    assert metric_tokenizer()[0] is encoding


def test_known_cl100k_ids() -> None:
    assert metric_token_ids("hello world") == (15339, 1917)
    assert metric_tokenizer()[0].n_vocab == 100277


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(text: str) -> None:
    encoding, _ = metric_tokenizer()
    ids = metric_token_ids(text)
    assert ids and encoding.decode(ids) == text
    assert metric_tokens(text) == [str(i) for i in ids]


def test_chinese_is_tokenised_without_spaces() -> None:
    assert len(metric_tokens("我喜欢猫")) > 1
    assert metric_tokens("") == []
