"""Dialogues to reply to (stage=predict): the paper's JSON list with the persona (and the response)
optional, or JSON Lines, one object per line with `context` and an optional `persona`. Records
are checked by the training data's rules (data/formats.py); every error names the file, the
record and what was expected, and no record is skipped."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from morpheus_pl.data.example import DataFormatError, DialogExample
from morpheus_pl.data.formats import _kind, _read_text, _record_to_example

NO_PERSONA = ("(no persona given)",)  # the persona field of an example that has none
_NO_RESPONSE = "(no response given)"
_EXPECTED = "context (a list of turns) and optionally persona, response, role, fact, fact_options"


@dataclass(frozen=True)
class PredictionInput:
    """One dialogue: the example (persona NO_PERSONA when none was given) and what it holds."""

    example: DialogExample
    has_persona: bool
    has_response: bool


def read_prediction_inputs(path: str | os.PathLike[str]) -> list[PredictionInput]:
    """Every record of a .json (paper JSON) or .jsonl file, in order."""
    name = Path(path).name.lower()
    if name.endswith(".jsonl"):
        records = _json_lines(path)
    elif name.endswith(".json"):
        records = _json_list(path)
    else:
        raise DataFormatError(f"{path}: unknown input format: expected a .json file (the paper's "
                              f"JSON list) or a .jsonl file (one dialogue object per line)")
    if not records:
        raise DataFormatError(f"{path}: no records: expected at least one dialogue")
    return [_prediction_input(record, where, source) for where, source, record in records]


def _json_list(path) -> list[tuple[str, str, object]]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: invalid JSON: {exc.msg} at line {exc.lineno} column "
                              f"{exc.colno} (expected a JSON list of dialogue records)") from exc
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: expected a JSON list of records, got {_kind(data)}")
    return [(f"{path}: record {i}", f"{path}:{i}", record) for i, record in enumerate(data)]


def _json_lines(path) -> list[tuple[str, str, object]]:
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}: line {number}: invalid JSON: {exc.msg} at column "
                                  f"{exc.colno} (expected one JSON object per line)") from exc
        records.append((f"{path}: line {number}", f"{path}:{number}", record))
    return records


def _prediction_input(record: object, where: str, source: str) -> PredictionInput:
    """A record checked as training data is, with a placeholder for a missing persona or
    response (null counts as missing)."""
    if not isinstance(record, Mapping):
        raise DataFormatError(f"{where}: expected an object with {_EXPECTED}, got {_kind(record)}")
    if "context" not in record:
        raise DataFormatError(f"{where}: missing field 'context' (expected {_EXPECTED})")
    has_persona = record.get("persona") is not None
    has_response = record.get("response") is not None
    filled = {**record, "persona": record["persona"] if has_persona else list(NO_PERSONA),
              "response": record["response"] if has_response else _NO_RESPONSE}
    example = _record_to_example(filled, where, source)
    if not example.context:
        raise DataFormatError(f"{where}: field 'context': empty: expected at least the "
                              f"partner's turn")
    return PredictionInput(example, has_persona, has_response)
