"""Role leakage check: held-out splits must not share roles with the training split."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from morpheus_pl.data.example import DataFormatError, DialogExample
from morpheus_pl.errors import ConfigError

logger = logging.getLogger("morpheus_pl")

MAX_SHOWN_ROLES = 3


class RoleLeakageError(DataFormatError):
    """A held-out split shares roles with the training split."""


def _describe(split: str, leaked: dict[str, DialogExample], total: int) -> str:
    shown = []
    for role, example in list(leaked.items())[:MAX_SHOWN_ROLES]:
        sentence = next((s for s in example.persona if s.strip()), "")
        shown.append(f"{role} ({sentence!r}, {example.source})")
    return (
        f"split '{split}' shares {len(leaked)} of its {total} roles with train, "
        f"e.g. {'; '.join(shown)}"
    )


def check_role_leakage(
    train: Sequence[DialogExample],
    held_out: Mapping[str, Sequence[DialogExample]],
    on_leak: str = "error",
) -> dict[str, int]:
    """Count, per held-out split, its roles that also occur in `train`.

    on_leak="error" raises `RoleLeakageError` when any count is non-zero (the message names each
    leaking split, its count and up to 3 role ids with one persona sentence each);
    on_leak="warn" logs the same text as a warning on the `morpheus_pl` logger and returns.
    """
    if on_leak not in ("error", "warn"):
        raise ConfigError(f"on_leak must be 'error' or 'warn', got {on_leak!r}")
    train_roles = {example.role for example in train}
    counts: dict[str, int] = {}
    problems: list[str] = []
    for split, examples in held_out.items():
        first_by_role: dict[str, DialogExample] = {}
        for example in examples:
            first_by_role.setdefault(example.role, example)
        leaked = {role: ex for role, ex in first_by_role.items() if role in train_roles}
        counts[split] = len(leaked)
        if leaked:
            problems.append(_describe(split, leaked, len(first_by_role)))
    if problems:
        message = "role leakage: " + " | ".join(problems)
        if on_leak == "error":
            raise RoleLeakageError(
                f"{message}. Held-out roles must be unseen in training; use role-disjoint splits, "
                f"or set dataset.on_role_leak=warn to turn this error into a warning."
            )
        logger.warning("%s (dataset.on_role_leak=warn)", message)
    return counts
