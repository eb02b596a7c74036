"""One persona-dialogue example, the unit every reader produces and every stage consumes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from morpheus_pl.errors import UserError


class DataFormatError(UserError, ValueError):
    """Bad input data; the message names the file, the record and what was expected."""


@dataclass(frozen=True)
class DialogExample:
    """A role `u` answering the dialogue history `C` with the response `R`, persona `P` known.

    persona:  the persona sentences as given (segmentation into M segments happens later).
    context:  history turns, oldest first; the last turn is the partner's, the role answers it.
    response: the role's reply.
    role:     role id; readers whose format has none derive it from the persona (`role_key`).
    source:   where the record came from, "file:record" (for error messages and reports).
    fact:     synthetic world only: the persona value the gold response expresses.
    fact_options: synthetic world only: every value of that fact's category (for exact scoring).
    """

    persona: tuple[str, ...]
    context: tuple[str, ...]
    response: str
    role: str
    source: str
    fact: str | None = None
    fact_options: tuple[str, ...] | None = None


class BatchExamples:
    """The `DialogExample`s of one collated batch, in batch order.

    Not a list on purpose: Lightning's input conversions walk lists and dataclasses in a batch
    and re-build them field by field, which a frozen `DialogExample` refuses (FSDP's
    `convert_input` failed on an H100); an object of this class is passed through untouched.
    """

    def __init__(self, examples) -> None:
        self._examples = tuple(examples)

    def __len__(self) -> int:
        return len(self._examples)

    def __iter__(self):
        return iter(self._examples)

    def __getitem__(self, index: int) -> DialogExample:
        return self._examples[index]

    def __repr__(self) -> str:
        return f"BatchExamples({len(self._examples)} examples)"


def role_key(persona: tuple[str, ...] | list[str]) -> str:
    """Stable id for a role known only by its persona: order- and case-insensitive."""
    normalised = sorted(" ".join(s.lower().split()).rstrip(".") for s in persona if s.strip())
    return hashlib.sha1("\n".join(normalised).encode("utf-8")).hexdigest()[:16]
