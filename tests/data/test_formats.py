"""Readers of the persona-dialogue formats: exact parsed values and precise errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from morpheus_pl.data.example import DataFormatError, DialogExample, role_key
from morpheus_pl.data.formats import (
    read_clv_text,
    read_examples,
    read_hf_dataset,
    read_paper_json,
    read_parlai_self_original,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EOT = "<|endoftext|>"
NURSE = ("i have two cats", "i work as a nurse", "my favorite food is pizza")
PAINTER = ("我喜欢画画", "我有一只猫")


def test_paper_json_english_exact_values() -> None:
    path = FIXTURES / "paper_en.json"
    examples = read_paper_json(path)
    assert examples == [
        DialogExample(NURSE, (), "hi ! i just got home from the hospital .",
                      role_key(NURSE), f"{path}:0"),
        DialogExample(
            ("i am 5.5 ft tall", "i love hiking. i live in denver"),
            ("hello , how are you ?", "good , just back from a hike .", "where do you hike ?"),
            "mostly in the rockies near denver .",
            role_key(["i am 5.5 ft tall", "i love hiking. i live in denver"]),
            f"{path}:1",
        ),
        DialogExample(("my favorite color is blue",), ("what color do you like ?",),
                      "blue , like the sky .", "synthetic-007", f"{path}:2",
                      fact="blue", fact_options=("red", "green", "blue")),
    ]


def test_paper_json_chinese_exact_values() -> None:
    path = FIXTURES / "paper_zh.json"
    first, second = read_paper_json(path)
    assert first.persona == PAINTER
    assert first.context == ("你好，你平时喜欢做什么？",)
    assert first.response == "我喜欢画画，尤其是画我的猫。"
    assert second.persona == ("我在上海工作。我喜欢喝咖啡",)
    assert second.context == ("早上好！", "早上好，你吃早饭了吗？", "还没有，你呢？")
    assert second.response == "我只喝了一杯咖啡。"
    assert (first.source, second.source) == (f"{path}:0", f"{path}:1")
    assert first.fact is None and first.fact_options is None


def test_paper_json_accepts_persona_string_and_role_is_order_and_case_insensitive(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.json"
    records = [
        {"persona": "i like tea", "context": ["hi"], "response": "hello"},
        {"persona": ["I work as a nurse.", "i have two cats"], "context": [], "response": "yo"},
        {"persona": ["i have two cats", "i work as a nurse"], "context": [], "response": "hey"},
    ]
    path.write_text(json.dumps(records), encoding="utf-8")
    tea, nurse_a, nurse_b = read_paper_json(path)
    assert tea.persona == ("i like tea",)
    assert tea.role == role_key(["i like tea"])
    assert nurse_a.role == nurse_b.role
    assert nurse_a.role != tea.role
    assert len(nurse_a.role) == 16


def test_clv_english_exact_values_with_crlf() -> None:
    path = FIXTURES / "Person_Dialog_EN.txt"
    assert b"\r\n" in path.read_bytes()
    first, second, third = read_clv_text(path)
    assert first == DialogExample(NURSE, (), "Hi! how was your day?", role_key(NURSE), f"{path}:0")
    assert second.persona == ("i am 5.5 ft tall", "i love hiking")
    assert second.context == ("hello, how are you?", "good, just back from a hike.")
    assert second.response == "where do you hike?"
    assert second.source == f"{path}:1"
    assert third.context == ("Hi! how was your day?", "long, i worked a double shift.")
    assert third.response == "that sounds tiring, get some rest!"
    assert third.role == first.role != second.role


def test_clv_chinese_exact_values() -> None:
    path = FIXTURES / "Person_Dialog_ZH.txt"
    first, second = read_clv_text(path)
    assert first.persona == ("我在上海工作", "我喜欢喝咖啡")
    assert first.context == ("早上好！",)
    assert first.response == "早上好，你吃早饭了吗？"
    assert second.persona == PAINTER
    assert second.context == ("你好，你平时喜欢做什么？", "我喜欢画画。")
    assert second.response == "画什么呢？"


def test_role_ids_agree_across_formats() -> None:
    assert read_clv_text(FIXTURES / "Person_Dialog_EN.txt")[0].role == \
        read_paper_json(FIXTURES / "paper_en.json")[0].role
    assert read_clv_text(FIXTURES / "Person_Dialog_ZH.txt")[1].role == \
        read_paper_json(FIXTURES / "paper_zh.json")[0].role


def test_parlai_self_original_exact_values() -> None:
    path = FIXTURES / "train_self_original.txt"
    examples = read_parlai_self_original(path)
    ski = ("i like to ski.", "i have a dog named max.")
    jazz = ("i am a teacher.", "i love jazz.")
    assert examples == [
        DialogExample(ski, ("hi , how are you ?",), "i am great , just back from skiing .",
                      role_key(ski), f"{path}:3"),
        DialogExample(ski, ("hi , how are you ?", "i am great , just back from skiing .",
                            "do you ski often ?"),
                      "every weekend in winter .", role_key(ski), f"{path}:4"),
        DialogExample(jazz, ("__SILENCE__",), "hello ! do you like music ?",
                      role_key(jazz), f"{path}:7"),
        DialogExample(jazz, ("__SILENCE__", "hello ! do you like music ?", "yes , rock mostly ."),
                      "i prefer jazz myself .", role_key(jazz), f"{path}:8"),
    ]


@pytest.mark.parametrize(
    ("name", "reader"),
    [
        ("paper_en.json", read_paper_json),
        ("paper_zh.json", read_paper_json),
        ("Person_Dialog_EN.txt", read_clv_text),
        ("Person_Dialog_ZH.txt", read_clv_text),
        ("train_self_original.txt", read_parlai_self_original),
    ],
)
def test_read_examples_dispatches_by_name(name: str, reader) -> None:
    assert read_examples(FIXTURES / name) == reader(FIXTURES / name)


def test_read_hf_dataset_matches_json_reader(tmp_path: Path) -> None:
    path = FIXTURES / "paper_en.json"
    rows = read_hf_dataset("json", "train", data_files=str(path), cache_dir=str(tmp_path))
    expected = read_paper_json(path)
    assert [replace(row, source=e.source) for row, e in zip(rows, expected)] == expected
    assert len(rows) == len(expected) == 3
    assert rows[2].source == f"{path}[train]:2"


def test_read_hf_dataset_errors(tmp_path: Path) -> None:
    bad = tmp_path / "no_response.json"
    bad.write_text(json.dumps([{"persona": ["a"], "context": ["b"]}]), encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_hf_dataset("json", "train", data_files=str(bad), cache_dir=str(tmp_path / "c"))
    assert type(info.value) is DataFormatError
    assert all(s in str(info.value) for s in ("no_response.json", "record 0", "'response'"))
    missing = tmp_path / "missing.json"
    with pytest.raises(DataFormatError, match="missing.json"):
        read_hf_dataset("json", "train", data_files=str(missing), cache_dir=str(tmp_path / "c"))


def _record(drop: str = "", **overrides: object) -> dict:
    record: dict = {"persona": ["i like tea"], "context": ["hi"], "response": "hello"}
    record.update(overrides)
    record.pop(drop, None)
    return record


GOOD = json.dumps(_record())
JSON_CASES = {
    "truncated": ('[\n  {"persona": ["a"],\n  "context": [], "resp',
                  ["invalid JSON", "at line 3 column"]),
    "top_level_object": (GOOD, ["expected a JSON list", "got object"]),
    "record_not_object": (f"[{GOOD}, 7]", ["record 1", "expected an object", "got number"]),
    "missing_response": (json.dumps([_record(), _record(drop="response")]),
                         ["record 1", "missing field 'response'"]),
    "context_not_list": (json.dumps([_record(context="hi")]),
                         ["record 0", "field 'context'", "expected a list of strings"]),
    "persona_item_type": (json.dumps([_record(persona=["a", 3])]),
                          ["record 0", "field 'persona[1]'", "expected a string"]),
    "empty_persona": (json.dumps([_record(), _record(persona=[])]), ["record 1", "empty persona"]),
    "blank_persona": (json.dumps([_record(persona=["  "])]), ["record 0", "empty persona"]),
    "empty_response": (json.dumps([_record(response=" ")]), ["record 0", "empty response"]),
    "response_type": (json.dumps([_record(response=["x"])]), ["record 0", "expected a string"]),
    "unknown_field": (json.dumps([_record(speaker="x")]),
                      ["record 0", "unexpected field 'speaker'"]),
    "empty_role": (json.dumps([_record(role="")]), ["record 0", "field 'role'"]),
    "fact_options_type": (json.dumps([_record(fact_options="red")]),
                          ["record 0", "field 'fact_options'", "expected a list of strings"]),
}


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_paper_json_errors(tmp_path: Path, case: str) -> None:
    text, expected = JSON_CASES[case]
    path = tmp_path / f"bad_{case}.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_paper_json(path)
    assert type(info.value) is DataFormatError
    for fragment in [path.name, *expected]:
        assert fragment in str(info.value)


CLV_CASES = {
    "no_response": (f"a.b.\n{EOT}\nr{EOT}\n[SEP]\np.q.\n{EOT}x{EOT}\n",
                    ["block 1 (line 5)", "CLV block without a response"]),
    "persona_only": ("a.b.\n", ["block 0 (line 1)", "CLV block without a response"]),
    "empty_response": (f"a.\n{EOT}x{EOT}\n{EOT}\n", ["block 0 (line 3)", "empty response"]),
    "response_unterminated": (f"a.\n{EOT}x{EOT}\nreply\n", ["line 3", f"ending with {EOT}"]),
    "context_no_lead": (f"a.\nx{EOT}\nr{EOT}\n", ["line 2", f"start with {EOT}"]),
    "context_unterminated": (f"a.\n{EOT}x\nr{EOT}\n", ["line 2", f"end with {EOT}"]),
    "extra_line": (f"a.\n{EOT}\nr{EOT}\nmore{EOT}\n", ["block 0 (line 4)", "expected [SEP]"]),
    "empty_block": (f"a.\n{EOT}\nr{EOT}\n[SEP]\n[SEP]\nb.\n{EOT}\nr{EOT}\n",
                    ["block 1 (line 5)", "empty block"]),
    "empty_persona": (f" . \n{EOT}\nr{EOT}\n", ["block 0 (line 1)", "empty persona"]),
}


@pytest.mark.parametrize("case", sorted(CLV_CASES))
def test_clv_errors(tmp_path: Path, case: str) -> None:
    text, expected = CLV_CASES[case]
    path = tmp_path / f"Person_Dialog_{case}.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_clv_text(path)
    assert type(info.value) is DataFormatError
    for fragment in [path.name, *expected]:
        assert fragment in str(info.value)


PARLAI_CASES = {
    "no_number": ("1 your persona: i ski.\nhello\tthere\n", ["line 2", "'<turn number> <text>'"]),
    "first_not_one": ("2 your persona: i ski.\n", ["line 1", "numbered 1"]),
    "no_tab": ("1 your persona: i ski.\n2 hello there\n", ["line 2", "partner_text<TAB>label"]),
    "empty_label": ("1 your persona: i ski.\n2 hello\t \t\tx|y\n", ["line 2", "empty response"]),
    "no_persona": ("1 hello\thi\t\thi|yo\n", ["line 1", "empty persona"]),
    "persona_late": ("1 your persona: i ski.\n2 hi\tyo\n3 your persona: i swim.\n",
                     ["line 3", "persona lines before the first turn"]),
    "no_turns": ("1 your persona: i ski.\n1 your persona: i swim.\n2 hi\tyo\n",
                 ["line 1", "no turns"]),
}


@pytest.mark.parametrize("case", sorted(PARLAI_CASES))
def test_parlai_errors(tmp_path: Path, case: str) -> None:
    text, expected = PARLAI_CASES[case]
    path = tmp_path / f"{case}_self_original.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_parlai_self_original(path)
    assert type(info.value) is DataFormatError
    for fragment in [path.name, *expected]:
        assert fragment in str(info.value)


@pytest.mark.parametrize("name", ["bad.json", "Person_Dialog_bad.txt", "bad_self_original.txt"])
def test_non_utf8_bytes_name_the_offset(tmp_path: Path, name: str) -> None:
    prefix = b"1 your persona: caf" if "self" in name else b'[{"persona": ["caf'
    path = tmp_path / name
    path.write_bytes(b"\n" + prefix + b"\xe9 au lait\n")
    with pytest.raises(DataFormatError) as info:
        read_examples(path)
    assert type(info.value) is DataFormatError
    message = str(info.value)
    assert name in message
    assert f"byte offset {1 + len(prefix)}" in message
    assert "line 2" in message and "expected UTF-8" in message


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    for name in ("absent.json", "Person_Dialog_absent.txt", "absent_self_original.txt"):
        with pytest.raises(DataFormatError, match=f"{name}: file not found"):
            read_examples(tmp_path / name)
    unknown = tmp_path / "dialogues.csv"
    unknown.write_text("persona,context,response\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"dialogues\.csv: unknown data format: expected"):
        read_examples(unknown)
