"""The records an experiment's collect makes, merged from several sources: folders of runs and
records files an earlier collect wrote. A machine's run folders do not outlive it; a records
file kept in docs/ does, so seeds measured on another machine join the tables of new runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def merged_records(sources: list[Path], collect: Callable[[Path], list[dict]], key: tuple[str, ...],
                   fields: set[str]) -> list[dict]:
    """The records of every source, `collect(folder)` for a folder, `records_file` for a file:
    one per `key`. The same one from two sources is kept once where the numbers both have agree
    (a number one lacks or holds as None, e.g. a column added since a records file was written,
    comes from the other) and is an error where they differ."""
    merged: dict[tuple, tuple[dict, Path]] = {}
    for source in sources:
        if source.is_dir():
            records = collect(source)
        elif source.is_file():
            records = records_file(source, fields | set(key))
        else:
            raise SystemExit(f"{source}: no such folder of runs or records file")
        for record in records:
            at = tuple(record[k] for k in key)
            if at not in merged:
                merged[at] = (record, source)
                continue
            kept, first = merged[at]
            known, new = numbers(kept), numbers(record)
            if any(known[k] != new[k] for k in known.keys() & new.keys()
                   if known[k] is not None and new[k] is not None):
                named = ", ".join(f"{k} {v}" for k, v in zip(key, at))
                raise SystemExit(f"{named}: different numbers in {first} and {source}; collect one of them")
            filled = {k: v for k, v in new.items() if known.get(k) is None and v is not None}
            merged[at] = ({**kept, **filled}, first)
    return [record for record, _ in merged.values()]


def records_file(path: Path, fields: set[str]) -> list[dict]:
    """The records a collect wrote, each checked for `fields`."""
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SystemExit(f"{path}: not a records file (JSON a collect wrote): {error}") from None
    if not isinstance(records, list):
        raise SystemExit(f"{path}: expected a list of records, found {type(records).__name__}")
    for i, record in enumerate(records):
        missing = sorted(fields - set(record)) if isinstance(record, dict) else ["(not an object)"]
        if missing:
            raise SystemExit(f"{path}: record {i} lacks {', '.join(missing)}")
    return records


def numbers(record: dict) -> dict:
    """A record without where it came from."""
    return {k: v for k, v in record.items() if k != "source"}


def sources_and_out(collect: list[Path] | None, out: Path | None, default: Path) -> tuple[list[Path], Path]:
    """What a run of an experiment script collects and where it writes: with `--collect`, its
    sources, into `--out` or else its first folder; without, the runs folder (`--out` or
    `default`) into itself."""
    if not collect:
        out = (out or default).resolve()
        return [out], out
    folders = [source for source in collect if source.is_dir()]
    if out is None and not folders:
        raise SystemExit("--out is needed when every --collect source is a records file")
    return list(collect), (out or folders[0]).resolve()
