"""Bad and extreme input through every reader and the DataModule (issue 7).

Complements test_formats.py (per-reader syntax errors): here the Hugging Face `datasets` path on
corrupted local files, personas made only of separators, empty splits, and a 10,000-turn
history end to end through the DataModule's collate.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from morpheus_pl.data.datamodule import SPEAKERS, PersonaDialogDataModule
from morpheus_pl.data.example import DataFormatError, DialogExample
from morpheus_pl.data.formats import read_hf_dataset, read_paper_json, read_parlai_self_original
from morpheus_pl.data.persona import truncate_history_left
from morpheus_pl.data.sources import load_split
from morpheus_pl.modules.decoder import load_tokenizer

EOT = "<|endoftext|>"
GOOD = {"persona": ["i like tea."], "context": ["hi , how are you ?"], "response": "fine ."}
LONG_TURNS = 10_000


def _records(*bad: dict) -> str:
    return json.dumps([GOOD, *bad])


HF_CASES = {
    "truncated": ('[\n {"persona": ["a"],\n "context": [], "resp',
                  ["invalid JSON", "at line 3 column", "expected a JSON list"]),
    "non_utf8": (b'[{"persona": ["caf\xe9"], "context": [], "response": "x"}]',
                 ["line 1, byte offset 18", "expected UTF-8 text", "0xe9"]),
    "missing_response": (_records({"persona": ["b."], "context": []}),
                         ["split 'train': record 1", "missing field 'response'"]),
    "null_response": (_records(dict(GOOD, response=None)),
                      ["split 'train': record 1", "missing field 'response'"]),
    "unexpected_field_in_later_record": (_records(dict(GOOD, speaker="x")),
                                         ["split 'train': record 1", "unexpected field 'speaker'"]),
    "empty_persona": (_records(dict(GOOD, persona=[])), ["record 1", "empty persona"]),
    "separator_only_persona": (_records(dict(GOOD, persona=[" . ", "。"])),
                               ["record 1", "empty persona"]),
    "empty_response": (_records(dict(GOOD, response="  ")), ["record 1", "empty response"]),
    "context_not_list": (_records(dict(GOOD, context="hi")),
                         ["record 1", "field 'context'", "expected a list of strings, got string"]),
    "no_records": ("[]", ["could not load dataset", "corresponds to no data"]),
}


@pytest.mark.parametrize("case", sorted(HF_CASES))
def test_hf_dataset_path_errors_name_file_record_and_field(tmp_path: Path, case: str) -> None:
    content, expected = HF_CASES[case]
    path = tmp_path / f"hf_{case}.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataFormatError) as info:
        read_hf_dataset("json", "train", data_files={"train": str(path)},
                        cache_dir=str(tmp_path / "cache"))
    assert type(info.value) is DataFormatError
    for fragment in [path.name, *expected]:
        assert fragment in str(info.value)


def test_hf_null_optional_columns_of_other_records_are_absent(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    path.write_text(_records(dict(GOOD, role="r7", fact="tea")))
    plain, with_role = read_hf_dataset("json", "train", data_files={"train": str(path)},
                                       cache_dir=str(tmp_path / "cache"))
    assert (plain.role, plain.fact) == (read_paper_json(path)[0].role, None)
    assert (with_role.role, with_role.fact) == ("r7", "tea")


def test_separator_only_persona_is_empty_in_json_and_parlai(tmp_path: Path) -> None:
    path = tmp_path / "dots.json"
    path.write_text(_records(dict(GOOD, persona=["...", " 。 "])))
    with pytest.raises(DataFormatError, match=r"dots\.json: record 1: empty persona"):
        read_paper_json(path)
    path = tmp_path / "dots_self_original.txt"
    path.write_text("1 your persona: .\n2 hi\tyo\n")
    with pytest.raises(DataFormatError, match=r"dots_self_original\.txt: line 2: empty persona"):
        read_parlai_self_original(path)


def test_persona_without_segments_under_the_dataset_separator_names_the_record(tiny_data,
                                                                               tmp_path) -> None:
    dm = PersonaDialogDataModule(dict(_dataset(tmp_path, "files", "json"), separator="|"), num_segments=5)
    dm.set_tokenizers(load_tokenizer(tiny_data[1]))
    bad = DialogExample((" | ",), ("hi",), "yo", "r1", "train.json:4")
    with pytest.raises(DataFormatError) as info:
        dm.encode(bad)
    message = str(info.value)
    assert "record train.json:4: field 'persona': empty persona" in message
    assert "separated by '|'" in message


@pytest.mark.parametrize(("name", "content"), [
    ("train.json", "[]"),
    ("Person_Dialog_train.txt", "\n\n"),
    ("train_self_original.txt", ""),
])
def test_empty_split_is_an_error_naming_file_and_split(tmp_path: Path, name: str,
                                                      content: str) -> None:
    (tmp_path / name).write_text(content)
    dataset = {"name": "tmp", "source": "files", "root": str(tmp_path), "files": {"train": name}}
    with pytest.raises(DataFormatError) as info:
        load_split(dataset, "train")
    assert f"{name}: no records in split 'train' of dataset 'tmp'" in str(info.value)


def _turn(i: int) -> str:
    return f"turn {i} : i would like to say thing number {i} ."


def _write(root: Path, fmt: str, split: str, persona: str, turns: int) -> str:
    """A split of two records: a short one, then one with `turns` history turns."""
    context = [_turn(i) for i in range(turns)]
    short = f"i am the {split} short role."
    if fmt == "clv":
        name = f"Person_Dialog_{split}.txt"
        long = f"{persona}\n{EOT}{''.join(t + EOT for t in context)}\nmy answer .{EOT}"
        (root / name).write_text(f"{short}\n{EOT}\nfine .{EOT}\n[SEP]\n{long}\n", encoding="utf-8")
    else:
        name = f"{split}.json"
        records = [dict(GOOD, persona=[short], context=[]),
                   {"persona": [persona], "context": context, "response": "my answer ."}]
        (root / name).write_text(json.dumps(records), encoding="utf-8")
    return name


def _dataset(root: Path, source: str, fmt: str) -> dict:
    files = {}
    for split, persona, turns in (("train", "i fly planes.", LONG_TURNS),
                                  ("val", "i grow roses.", 3), ("test", "i swim daily.", 3)):
        name = _write(root, fmt, split, persona, turns)
        files[split] = str(root / name) if source == "hub" else name
    base = {"name": "long", "source": source, "separator": ".", "on_role_leak": "error",
            "files": files}
    return {**base, "hub_name": "json"} if source == "hub" else {**base, "root": str(root)}


@pytest.mark.parametrize(("source", "fmt"), [("files", "json"), ("files", "clv"), ("hub", "json")])
def test_10000_turn_history_is_left_truncated_through_collate(tiny_data, tmp_path, monkeypatch,
                                                              source: str, fmt: str) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    tok = load_tokenizer(tiny_data[1])
    budget = 64
    dm = PersonaDialogDataModule(_dataset(tmp_path, source, fmt), max_history_tokens=budget,
                                 max_response_tokens=16, num_segments=2, batch_size=2)
    dm.set_tokenizers(tok)
    tokenised = []
    real_ids = dm._ids
    monkeypatch.setattr(dm, "_ids", lambda text: tokenised.append(text) or real_ids(text))
    tracemalloc.start()
    dm.setup()
    batch = dm.collate(dm.encoded["train"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert [len(ex.context) for ex in dm.read("train")] == [0, LONG_TURNS]  # no record lost
    turn_texts = {_turn(i) for i in range(LONG_TURNS)}
    assert sum(text in turn_texts for text in tokenised) <= budget // 3 + 1  # newest turns only
    assert peak < 20 * 2**20  # bytes: nothing proportional to turns x budget

    partner, self_tag = tok.convert_tokens_to_ids(list(SPEAKERS))
    every_turn = [[partner if (LONG_TURNS - 1 - i) % 2 == 0 else self_tag,
                   *real_ids(_turn(i)), tok.eos_token_id] for i in range(LONG_TURNS)]
    expected = [t for turn in truncate_history_left(every_turn, budget - 1) for t in turn]
    history = dm.encoded["train"][1]["history"]
    assert history == expected + [self_tag]
    assert len(expected) > budget // 2 and history[0] == partner  # whole turns, newest last
    assert batch["history_ids"].shape == (2, len(history))
    assert batch["lm_ids"].shape[1] <= budget + 16
    h = len(history)
    assert batch["labels"][1, :h].eq(-100).all() and batch["labels"][1, h:].ne(-100).any()
