"""Readers for the persona-dialogue file formats (docs/data.md), each returning DialogExamples.

Every bad input raises `DataFormatError` naming the file, the record and what was expected.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from morpheus_pl.data.example import DataFormatError, DialogExample, role_key
from morpheus_pl.data.persona import split_sentences

EOT = "<|endoftext|>"
SEP_LINE = "[SEP]"
REQUIRED_KEYS = ("persona", "context", "response")
OPTIONAL_KEYS = ("role", "fact", "fact_options")
_EXPECTED_KEYS = "persona, context, response and optionally role, fact, fact_options"
_PARLAI_LINE = re.compile(r"(\d+) (.*)")
_PERSONA_PREFIX = "your persona:"
_SEPARATORS_AND_SPACE = re.compile(r"[\s.。]+")
_NO_TURNS = "dialogue has persona lines but no turns (expected 'partner_text<TAB>label' lines)"


def _kind(value: object) -> str:
    """JSON-style name of a value's type, for error messages."""
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "list"
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string"}
    return names.get(type(value), type(value).__name__)


def _read_text(path: str | os.PathLike[str]) -> str:
    """The file's text; a missing file or non-UTF-8 bytes become `DataFormatError`."""
    file = Path(path)
    if not file.is_file():
        raise DataFormatError(f"{path}: file not found (expected an existing data file)")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read file ({exc.strerror})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path}: line {line}, byte offset {exc.start}: expected UTF-8 text, "
            f"got invalid byte 0x{data[exc.start]:02x}"
        ) from exc
    return text.removeprefix("\ufeff")


def _has_text(sentences: Sequence[str]) -> bool:
    """Whether any sentence holds more than whitespace and sentence separators ('.', '。')."""
    return any(_SEPARATORS_AND_SPACE.sub("", sentence) for sentence in sentences)


def _type_error(where: str, field: str, expected: str, value: object) -> DataFormatError:
    return DataFormatError(f"{where}: field '{field}': expected {expected}, got {_kind(value)}")


def _string_list(value: object, where: str, field: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise _type_error(where, field, "a list of strings", value)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _type_error(where, f"{field}[{i}]", "a string", item)
    return tuple(value)


def _record_to_example(record: object, where: str, source: str) -> DialogExample:
    """Validate one paper-JSON / dataset row; optional fields set to null count as absent."""
    if not isinstance(record, Mapping):
        raise DataFormatError(
            f"{where}: expected an object with keys {_EXPECTED_KEYS}, got {_kind(record)}"
        )
    for key in REQUIRED_KEYS:
        if key not in record:
            raise DataFormatError(f"{where}: missing field '{key}' (expected {_EXPECTED_KEYS})")
    for key in record:
        if key not in REQUIRED_KEYS + OPTIONAL_KEYS:
            raise DataFormatError(f"{where}: unexpected field '{key}' (expected {_EXPECTED_KEYS})")
    raw_persona = record["persona"]
    if isinstance(raw_persona, str):
        persona: tuple[str, ...] = (raw_persona,)
    elif isinstance(raw_persona, (list, tuple)):
        persona = _string_list(raw_persona, where, "persona")
    else:
        raise _type_error(where, "persona", "a list of strings or a string", raw_persona)
    if not _has_text(persona):
        raise DataFormatError(f"{where}: empty persona: expected a non-empty persona sentence")
    context = _string_list(record["context"], where, "context")
    response = record["response"]
    if not isinstance(response, str):
        raise _type_error(where, "response", "a string", response)
    if not response.strip():
        raise DataFormatError(f"{where}: empty response: expected a non-empty 'response' string")
    role, fact, options = record.get("role"), record.get("fact"), record.get("fact_options")
    if role is not None and (not isinstance(role, str) or not role.strip()):
        raise DataFormatError(f"{where}: field 'role': expected a non-empty string, got {role!r}")
    if fact is not None and not isinstance(fact, str):
        raise _type_error(where, "fact", "a string", fact)
    fact_options = None if options is None else _string_list(options, where, "fact_options")
    role = role if role is not None else role_key(persona)
    return DialogExample(persona, context, response, role, source, fact, fact_options)


def read_paper_json(path: str | os.PathLike[str]) -> list[DialogExample]:
    """The paper's JSON list of {persona, context, response} (+ optional role, fact, fact_options).

    role = the "role" key if present, else `role_key(persona)`; source = "path:index".
    """
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{path}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"(expected a JSON list of dialogue records)"
        ) from exc
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: expected a JSON list of records, got {_kind(data)}")
    return [_record_to_example(r, f"{path}: record {i}", f"{path}:{i}") for i, r in enumerate(data)]


def _parse_clv_block(path: object, index: int, start: int, lines: list[str]) -> DialogExample:
    """One CLV block: persona line, context line, response line (`start` = its first line)."""
    where = f"{path}: block {index} (line {start})"
    if not lines:
        raise DataFormatError(f"{where}: empty block: expected persona, context and response lines")
    persona = split_sentences(lines[0], "。" if "。" in lines[0] else ".")
    if not persona:
        raise DataFormatError(f"{where}: empty persona: expected sentences joined by '.' or '。'")
    if len(lines) < 3:
        raise DataFormatError(
            f"{where}: CLV block without a response: expected a context line starting with {EOT} "
            f"and a response line ending with {EOT}, got {len(lines)} line(s)"
        )
    if len(lines) > 3:
        raise DataFormatError(
            f"{path}: block {index} (line {start + 3}): expected {SEP_LINE} after the response line"
        )
    context_line, response_line = lines[1].rstrip(), lines[2].rstrip()
    where = f"{path}: block {index} (line {start + 1})"
    if not context_line.startswith(EOT):
        raise DataFormatError(f"{where}: expected the context line to start with {EOT}")
    body = context_line[len(EOT) :]
    if body and not body.endswith(EOT):
        raise DataFormatError(f"{where}: expected every context turn to end with {EOT}")
    context = tuple(body[: -len(EOT)].split(EOT)) if body else ()
    where = f"{path}: block {index} (line {start + 2})"
    if not response_line.endswith(EOT) or EOT in response_line[: -len(EOT)]:
        raise DataFormatError(f"{where}: expected one response turn ending with {EOT}")
    response = response_line[: -len(EOT)]
    if not response.strip():
        raise DataFormatError(f"{where}: empty response: expected a non-empty response turn")
    return DialogExample(tuple(persona), context, response, role_key(persona), f"{path}:{index}")


def read_clv_text(path: str | os.PathLike[str]) -> list[DialogExample]:
    r"""CLV `Person_Dialog_*.txt`: blocks separated by `\n[SEP]\n`, each
    `persona\n<|endoftext|>turn<|endoftext|>...\nresponse<|endoftext|>` (CRLF accepted).

    Persona sentences are split on '。' when the line has one, else on '.'; source = "path:block".
    """
    lines = _read_text(path).replace("\r\n", "\n").split("\n")
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 1
    for number, line in enumerate(lines, 1):
        if line.strip() == SEP_LINE:
            blocks.append((start, current))
            current, start = [], number + 1
        else:
            current.append(line)
    if any(line.strip() for line in current):
        blocks.append((start, current))
    examples = []
    for index, (first, block) in enumerate(blocks):
        while block and not block[-1].strip():
            block.pop()
        examples.append(_parse_clv_block(path, index, first, block))
    return examples


def read_parlai_self_original(path: str | os.PathLike[str]) -> list[DialogExample]:
    """ParlAI ConvAI2 `*_self_original.txt`; one example per dialogue line, source = "path:line".

    context = the dialogue's earlier turns (partner, self, ...) plus this line's partner text.
    """
    examples: list[DialogExample] = []
    persona: list[str] = []
    history: list[str] = []
    dialogue_start = 0
    for number, line in enumerate(_read_text(path).split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        match = _PARLAI_LINE.fullmatch(line)
        if match is None:
            raise DataFormatError(f"{where}: expected '<turn number> <text>'")
        if match[1] == "1":
            if dialogue_start and not history:
                raise DataFormatError(f"{path}: line {dialogue_start}: {_NO_TURNS}")
            persona, history, dialogue_start = [], [], number
        elif not dialogue_start:
            raise DataFormatError(f"{where}: expected the first line to be numbered 1")
        body = match[2]
        if body.startswith(_PERSONA_PREFIX):
            if history:
                raise DataFormatError(f"{where}: expected persona lines before the first turn")
            persona.append(body[len(_PERSONA_PREFIX) :].strip())
            continue
        fields = body.split("\t")
        if len(fields) < 2:
            raise DataFormatError(
                f"{where}: expected 'partner_text<TAB>label<TAB><TAB>candidates' "
                f"or '{_PERSONA_PREFIX} ...'"
            )
        partner, label = fields[0], fields[1]
        if not label.strip():
            raise DataFormatError(f"{where}: empty response: expected a non-empty label")
        if not _has_text(persona):
            raise DataFormatError(
                f"{where}: empty persona: expected '{_PERSONA_PREFIX}' lines "
                f"at the start of the dialogue (line {dialogue_start})"
            )
        context = (*history, partner)
        source = f"{path}:{number}"
        examples.append(DialogExample(tuple(persona), context, label, role_key(persona), source))
        history += [partner, label]
    if dialogue_start and not history:
        raise DataFormatError(f"{path}: line {dialogue_start}: {_NO_TURNS}")
    return examples


def read_hf_dataset(
    name_or_path: str,
    split: str,
    data_files: str | Sequence[str] | Mapping[str, str] | None = None,
    cache_dir: str | None = None,
) -> list[DialogExample]:
    """Rows of `datasets.load_dataset` (a hub name such as "Toyhom/MORPHEUS_Datasets", or "json"
    with `data_files`), validated like `read_paper_json`; source = "label[split]:index".
    `datasets` gives every row every column (null where a record lacks it): null counts as
    absent. Local JSON that `datasets` cannot load is re-read by `read_paper_json` for the record
    and what was expected (truncated JSON, non-UTF-8 bytes)."""
    import datasets

    files = _split_files(data_files, split)
    local = name_or_path == "json"  # the packaged JSON builder: data_files are local paths
    label = name_or_path if len(files) != 1 else files[0] if local else f"{name_or_path}/{files[0]}"
    try:
        rows = datasets.load_dataset(
            name_or_path, split=split, data_files=data_files, cache_dir=cache_dir
        )
    except Exception as exc:
        for file in files:
            if local and Path(file).suffix.lower() == ".json" and Path(file).is_file():
                read_paper_json(file)  # raises the precise DataFormatError where the file is bad
        cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
        raise DataFormatError(
            f"{label} (split {split!r}): could not load dataset "
            f"(expected persona-dialogue records): {type(exc).__name__}: {exc}{cause}"
        ) from exc
    return [
        _record_to_example({k: v for k, v in row.items() if v is not None},
                           f"{label} split {split!r}: record {i}", f"{label}[{split}]:{i}")
        for i, row in enumerate(rows)
    ]


def _split_files(data_files: str | Sequence[str] | Mapping | None, split: str) -> list[str]:
    """The data files `datasets` reads for `split`, as strings."""
    files = data_files.get(split) if isinstance(data_files, Mapping) else data_files
    if files is None:
        return []
    return [str(files)] if isinstance(files, (str, os.PathLike)) else [str(f) for f in files]


def read_examples(path: str | os.PathLike[str]) -> list[DialogExample]:
    """Read by file name: .json -> paper JSON, *_self_original.txt -> ParlAI, .txt -> CLV."""
    name = Path(path).name.lower()
    if name.endswith(".json"):
        return read_paper_json(path)
    if name.endswith("_self_original.txt"):
        return read_parlai_self_original(path)
    if name.endswith(".txt"):
        return read_clv_text(path)
    raise DataFormatError(
        f"{path}: unknown data format: expected a .json (paper JSON), "
        f"*_self_original.txt (ParlAI ConvAI2) or other .txt (CLV) file"
    )
