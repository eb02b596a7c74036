"""Persona segmentation (paper Eq. 3) and left truncation of the dialogue history."""

from __future__ import annotations

import re
from collections.abc import Sequence


def split_sentences(text: str, separator: str) -> list[str]:
    """Split `text` on `separator`, strip the pieces and drop empty ones.

    A separator with a digit on *both* sides does not split, so decimal numbers survive
    ("i am 5.5 ft" stays whole) while sentences joined without a space still split
    ("i like dogs.i have a cat" -> two sentences, as in the CLV text format).
    """
    if not separator:
        raise ValueError("separator must be a non-empty string")
    sep = re.escape(separator)
    pieces = re.split(rf"(?<!\d){sep}|{sep}(?!\d)", text)
    return [piece.strip() for piece in pieces if piece.strip()]


def split_persona(persona: Sequence[str] | str, separator: str, num_segments: int) -> list[str]:
    """Split a persona into exactly `num_segments` segments (paper Eq. 3: P -> p_1..p_M).

    Every given sentence is split further with `split_sentences` (separator '.' for English,
    '。' for Chinese; a separator between two digits does not split). A shorter list is padded
    by cycling its own segments in order (["a", "b"], M=5 -> a, b, a, b, a); a longer one is
    truncated to its first `num_segments` segments.

    Raises ValueError when `num_segments` < 1 or the persona has no non-empty segment.
    """
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    segments = persona_segments(persona, separator)
    if not segments:
        sentences = [persona] if isinstance(persona, str) else list(persona)
        raise ValueError(f"empty persona: no non-empty segment in {sentences!r}")
    return [segments[i % len(segments)] for i in range(num_segments)]


def persona_segments(persona: Sequence[str] | str, separator: str) -> list[str]:
    """Every segment of a persona before padding or truncation to M (`split_persona`)."""
    sentences = [persona] if isinstance(persona, str) else list(persona)
    return [seg for sentence in sentences for seg in split_sentences(sentence, separator)]


def truncate_history_left(turn_token_ids: list[list[int]], max_tokens: int) -> list[list[int]]:
    """Keep the most recent whole turns whose total length is at most `max_tokens`.

    Turns are taken from the newest backwards and the first one that does not fit stops the
    scan, so the kept turns are a contiguous suffix, oldest first. If even the newest turn alone
    is longer than `max_tokens`, its last `max_tokens` tokens are kept (the end of the partner's
    turn is what the response answers). The result never holds more than `max_tokens` tokens.
    """
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    kept: list[list[int]] = []
    total = 0
    for turn in reversed(turn_token_ids):
        if total + len(turn) > max_tokens:
            break
        kept.append(list(turn))
        total += len(turn)
    if not kept and turn_token_ids and max_tokens > 0:
        return [list(turn_token_ids[-1][-max_tokens:])]
    kept.reverse()
    return kept
