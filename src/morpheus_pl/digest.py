"""The one recipe behind every cache key: a short SHA-1 of settings written as sorted JSON.

Stage fingerprints, evaluation folders, tokenizer folders, synthetic worlds and chitchat
conversions are all named by `settings_digest`; it imports nothing of the package, so `data/`
modules use it without pulling torch in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any


def settings_digest(settings: Any, length: int, default: Callable[[Any], Any] | None = None) -> str:
    """The first `length` hex digits of the SHA-1 of `settings` as JSON with sorted keys.

    `default` is `json.dumps`'s: `str` writes any value JSON cannot as its text; None (the
    default) lets such a value raise `TypeError`, as plain JSON settings should never hold one.
    """
    blob = json.dumps(settings, sort_keys=True, default=default)
    return hashlib.sha1(blob.encode()).hexdigest()[:length]
