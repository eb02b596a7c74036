"""The chitchat-dataset conversion: speakers as roles, personas from other conversations only,
disjoint role splits, every skip counted; on a hand-made package file and on the real one."""

import importlib.util
import json

import pytest

from morpheus_pl.data.chitchat import ChitchatConfig, self_disclosures, write_chitchat_splits
from morpheus_pl.data.example import DataFormatError
from morpheus_pl.data.formats import read_examples


def _message(sender: str, *texts: str) -> list[dict]:
    return [{"text": t, "sender": sender, "timestamp": "2018-05-02T19:38:15Z"} for t in texts]


CONVERSATIONS = {
    "c1": {"messages": [_message("ann", "Hi there"), _message("bob", "I love my two old dogs."),
                        _message("ann", "I work at a busy bakery downtown.", "do you?"),
                        _message("ann", "My sister lives in a big city.")]},
    "c2": {"messages": [_message("bob", "hello"), _message("ann", "I play the violin every day."),
                        _message("bob", "I am a night shift nurse. Are you?")]},
    "c3": {"messages": [_message("cat", "I only talk to myself here.")]},
    "c4": {"messages": [_message("bob", "I grow tomatoes in my small garden."),
                        _message("ann", "")]},
}


@pytest.fixture
def package_file(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(CONVERSATIONS))
    return path


def _convert(tmp_path, package_file, **overrides):
    cfg = ChitchatConfig(package_file=f"pypi:x/{package_file.name}", persona_sentences=2,
                         min_persona_sentences=1, val_roles=0.0, test_roles=0.0, **overrides)
    return write_chitchat_splits(tmp_path / "out", cfg)


def test_self_disclosures_keep_first_person_statements_only():
    text = "Hi. I love my two old dogs. Do you? I work nights. My sister lives in a big city!"
    assert self_disclosures(text) == ["I love my two old dogs.", "My sister lives in a big city."]


def test_personas_come_from_other_conversations_and_skips_are_counted(tmp_path, package_file,
                                                                      monkeypatch):
    monkeypatch.setattr("morpheus_pl.data.chitchat.resolve_model_path", lambda folder: str(tmp_path))
    stats = _convert(tmp_path, package_file, max_context_turns=2)
    rows = json.loads((tmp_path / "out" / "train_datas_en.json").read_text())
    by_response = {r["response"]: r for r in rows}
    # c1 turn 1 (bob): bob's sentences from c2 and c4, longest first; none from c1 itself
    assert by_response["I love my two old dogs."]["persona"] == [
        "I grow tomatoes in my small garden.", "I am a night shift nurse."]
    # ann's consecutive messages are one turn; her persona excludes c1, the history keeps 2 turns
    merged = by_response["I work at a busy bakery downtown. do you? My sister lives in a big city."]
    assert merged["persona"] == ["I play the violin every day."]
    assert merged["context"] == ["Hi there", "I love my two old dogs."] and merged["role"] == "ann"
    # c2 turn 1 (ann): her persona is from c1 only
    assert by_response["I play the violin every day."]["persona"] == [
        "I work at a busy bakery downtown.", "My sister lives in a big city."]
    assert stats["skipped"] == {"single_speaker_conversations": 1, "empty_response": 1,
                                "too_few_persona_sentences": 0}
    assert stats["splits"]["train"]["examples"] == len(rows) == 4
    assert len(read_examples(tmp_path / "out" / "train_datas_en.json")) == 4


def test_missing_package_file_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr("morpheus_pl.data.chitchat.resolve_model_path", lambda folder: str(tmp_path))
    with pytest.raises(DataFormatError, match="nothere.json: file not found"):
        write_chitchat_splits(tmp_path / "out", ChitchatConfig(package_file="pypi:x/nothere.json"))


def test_bad_message_names_the_conversation(tmp_path, monkeypatch):
    monkeypatch.setattr("morpheus_pl.data.chitchat.resolve_model_path", lambda folder: str(tmp_path))
    (tmp_path / "bad.json").write_text(json.dumps({"cX": {"messages": [[{"text": "hi"}]]}}))
    with pytest.raises(DataFormatError, match="conversation cX: message 0"):
        write_chitchat_splits(tmp_path / "out", ChitchatConfig(package_file="pypi:x/bad.json"))


@pytest.mark.skipif(importlib.util.find_spec("chitchat_dataset") is None,
                    reason="chitchat-dataset not installed")
def test_real_package_splits_are_role_disjoint(tmp_path):
    stats = write_chitchat_splits(tmp_path, ChitchatConfig(max_examples={"train": 300, "val": 50,
                                                                          "test": 100}))
    assert (stats["conversations"], stats["speakers"]) == (7168, 1315)  # the package's own numbers
    roles = {}
    for split in ("train", "val", "test"):
        examples = read_examples(tmp_path / f"{split}_datas_en.json")
        assert len(examples) == stats["splits"][split]["examples"]
        roles[split] = {e.role for e in examples}
        assert all(3 <= len(e.persona) <= 5 and e.response for e in examples)
    assert not roles["train"] & roles["test"] and not roles["train"] & roles["val"]
    assert stats["splits"]["test"]["examples"] == 100
