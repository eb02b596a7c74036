"""PersonaDialogDataModule: the batch views every stage uses, left truncation, role leakage."""

import json
import logging

import pytest
import torch

from morpheus_pl.data.datamodule import SPEAKERS, PersonaDialogDataModule
from morpheus_pl.data.example import DialogExample
from morpheus_pl.data.leakage import RoleLeakageError
from morpheus_pl.data.persona import split_persona
from morpheus_pl.modules.decoder import load_tokenizer


@pytest.fixture(scope="module")
def items(tiny_data):
    dm, _ = tiny_data
    chosen = dm.encoded["train"][:6]
    return chosen, dm.collate(chosen)


def test_labels_only_on_response_tokens_ending_with_eos(tiny_data, items):
    dm, _ = tiny_data
    chosen, batch = items
    eos = dm.tokenizer.eos_token_id
    for i, item in enumerate(chosen):
        h, r = len(item["history"]), len(item["response"])
        labels = batch["labels"][i]
        assert labels[:h].eq(-100).all()
        assert labels[h + r:].eq(-100).all()
        assert labels[h:h + r].tolist() == item["response"]
        assert batch["lm_ids"][i, h:h + r].tolist() == item["response"]
        assert item["response"][-1] == eos and r > 1
        assert int(batch["lm_mask"][i].sum()) == h + r
        assert batch["lm_mask"][i, :h + r].all()  # right padding for the LM view
    assert (batch["labels"] != -100).sum() == sum(len(it["response"]) for it in chosen)


def test_response_text_round_trips(tiny_data, items):
    dm, _ = tiny_data
    chosen, _ = items
    for item in chosen:
        text = dm.tokenizer.decode(item["response"], skip_special_tokens=True)
        assert text.strip() == item["example"].response.strip()


def test_history_is_left_padded_copy_of_lm_history(tiny_data, items):
    dm, _ = tiny_data
    chosen, batch = items
    pad = dm.tokenizer.pad_token_id
    partner, self_tag = dm.tokenizer.convert_tokens_to_ids(list(SPEAKERS))
    lengths = [len(it["history"]) for it in chosen]
    assert len(set(lengths)) > 1, "the test needs rows of different history lengths"
    width = batch["history_ids"].shape[1]
    assert width == max(lengths)
    for i, item in enumerate(chosen):
        h = len(item["history"])
        mask = batch["history_mask"][i]
        assert mask.tolist() == [0] * (width - h) + [1] * h
        assert batch["history_ids"][i, : width - h].eq(pad).all()
        assert batch["history_ids"][i, width - h:].tolist() == batch["lm_ids"][i, :h].tolist()
        assert item["history"][-1] == self_tag  # the role speaks next
        if item["example"].context:
            assert item["history"][0] in (partner, self_tag)


def test_segments_have_b_times_m_rows(tiny_data, items):
    dm, _ = tiny_data
    chosen, batch = items
    m = dm.num_segments
    assert batch["segment_ids"].shape[0] == len(chosen) * m
    assert batch["segment_mask"].shape == batch["segment_ids"].shape
    eos = dm.tokenizer.eos_token_id
    for i, item in enumerate(chosen):
        segments = split_persona(item["example"].persona, dm.dataset["separator"], m)
        for j, text in enumerate(segments):
            row, mask = batch["segment_ids"][i * m + j], batch["segment_mask"][i * m + j]
            ids = row[mask.bool()].tolist()
            assert ids[-1] == eos
            assert dm.tokenizer.decode(ids, skip_special_tokens=True).strip() == text


def _files_dataset(root, on_leak="error") -> dict:
    return {
        "name": "tmp",
        "source": "files",
        "root": str(root),
        "separator": ".",
        "on_role_leak": on_leak,
        "files": {"train": "train.json", "val": "val.json", "test": "test.json"},
    }


def test_long_history_truncated_from_left_keeping_whole_turns(tiny_data, tmp_path):
    _, tok_dir = tiny_data
    tok = load_tokenizer(tok_dir)
    context = (
        "hi , how are you today ? i hope all is well with you and your family .",
        "fine thanks .",
        "what do you do for work these days ?",
        "i work as a nurse at the hospital .",
        "oh nice . where do you live ?",
    )
    probe = PersonaDialogDataModule(_files_dataset(tmp_path), max_history_tokens=10_000, num_segments=5)
    probe.set_tokenizers(tok)
    partner, self_tag = tok.convert_tokens_to_ids(list(SPEAKERS))
    turn_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in context]
    turns = [[partner if (len(context) - 1 - i) % 2 == 0 else self_tag, *ids, tok.eos_token_id]
             for i, ids in enumerate(turn_ids)]
    ex = DialogExample(("i am a nurse.",), context, "i live in denver .", "r1", "mem:0")
    full = probe.encode(ex)["history"]
    assert full == [t for turn in turns for t in turn] + [self_tag]

    # room for the last three turns (+ the trailing speaker tag) but not for the fourth
    budget = sum(len(t) for t in turns[-3:]) + 1 + len(turns[-4]) - 1
    dm = PersonaDialogDataModule(_files_dataset(tmp_path), max_history_tokens=budget, num_segments=5)
    dm.set_tokenizers(tok)
    history = dm.encode(ex)["history"]
    assert history == [t for turn in turns[-3:] for t in turn] + [self_tag]
    assert len(history) <= budget
    assert history[0] == turns[-3][0]  # starts at a turn boundary (speaker tag)


def _write_split(path, personas):
    rows = [{"persona": persona, "context": ["hi , how are you ?"], "response": "i am fine ."}
            for persona in personas]
    path.write_text(json.dumps(rows))


def test_role_leakage_between_train_and_val_raises(tiny_data, tmp_path):
    _, tok_dir = tiny_data
    train = [["i like tea.", "i am a nurse."], ["i have a dog."]]
    _write_split(tmp_path / "train.json", train)
    _write_split(tmp_path / "val.json", [["i am a nurse.", "I like tea."]])  # same role as train[0]
    _write_split(tmp_path / "test.json", [["i fly planes."]])
    dm = PersonaDialogDataModule(_files_dataset(tmp_path))
    dm.set_tokenizers(load_tokenizer(tok_dir))
    with pytest.raises(RoleLeakageError, match="val"):
        dm.setup()


def test_disjoint_roles_set_up(tiny_data, tmp_path):
    _, tok_dir = tiny_data
    _write_split(tmp_path / "train.json", [["i like tea."], ["i have a dog."]])
    _write_split(tmp_path / "val.json", [["i sing opera."]])
    _write_split(tmp_path / "test.json", [["i fly planes."], ["i grow roses."], ["i swim."]])
    dm = PersonaDialogDataModule(_files_dataset(tmp_path), num_segments=2)
    dm.set_tokenizers(load_tokenizer(tok_dir))
    dm.setup()
    assert {k: len(v) for k, v in dm.encoded.items()} == {"train": 2, "val": 1, "test": 3}
    batch = next(iter(dm.test_dataloader()))
    assert batch["segment_ids"].shape[0] == 3 * 2


def test_personas_longer_than_m_are_counted_in_a_warning(tiny_data, tmp_path, caplog):
    _, tok_dir = tiny_data
    _write_split(tmp_path / "train.json", [["i like tea.", "i sing.", "i swim."], ["i have a dog."]])
    _write_split(tmp_path / "val.json", [["i sing opera. i ski."]])  # two segments in one sentence
    _write_split(tmp_path / "test.json", [["i fly planes."]])
    dm = PersonaDialogDataModule(_files_dataset(tmp_path), num_segments=2)
    dm.set_tokenizers(load_tokenizer(tok_dir))
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        dm.setup()
    warnings = [r.getMessage() for r in caplog.records if r.name == "morpheus_pl"]
    assert len(warnings) == 1  # val's two segments fit M=2; test's one is padded, not cut
    assert "/train: 1 of 2 personas have more than data.num_segments=2 segments" in warnings[0]


def test_setup_needs_tokenizers(tmp_path):
    with pytest.raises(RuntimeError, match="set_tokenizers"):
        PersonaDialogDataModule(_files_dataset(tmp_path)).setup()


def test_segments_in_the_decoder_vocabulary_beside_a_separate_encoders(tiny_data, tiny_tokenizer,
                                                                       tmp_path):
    """With a persona encoder of its own tokenizer, `segment_ids` are in its vocabulary and
    `segment_lm_ids` (what the decoder reconstructs) in the decoder's; without one they are the
    same tensors."""
    _, tok_dir = tiny_data
    _write_split(tmp_path / "train.json", [["i like tea. i have a dog."]])
    _write_split(tmp_path / "val.json", [["i sing opera."]])
    _write_split(tmp_path / "test.json", [["i fly planes. i grow roses."]])
    decoder_tok = load_tokenizer(tok_dir)
    dm = PersonaDialogDataModule(_files_dataset(tmp_path), num_segments=2)
    dm.set_tokenizers(decoder_tok, segment_tokenizer=tiny_tokenizer)
    dm.setup()
    batch = next(iter(dm.test_dataloader()))
    texts = ["i fly planes", "i grow roses"]
    for row, text in enumerate(texts):
        enc = batch["segment_ids"][row][batch["segment_mask"][row].bool()].tolist()
        dec = batch["segment_lm_ids"][row][batch["segment_lm_mask"][row].bool()].tolist()
        assert tiny_tokenizer.decode(enc, skip_special_tokens=True).strip() == text
        assert dec[-1] == decoder_tok.eos_token_id
        assert decoder_tok.decode(dec, skip_special_tokens=True).strip() == text
    assert batch["segment_lm_ids"].shape != batch["segment_ids"].shape or not torch.equal(
        batch["segment_lm_ids"], batch["segment_ids"])
    same = PersonaDialogDataModule(_files_dataset(tmp_path), num_segments=2)
    same.set_tokenizers(load_tokenizer(tok_dir))
    same.setup()
    batch = next(iter(same.test_dataloader()))
    assert batch["segment_lm_ids"] is batch["segment_ids"]


def test_auto_num_segments_is_the_longest_training_persona(tiny_root, tiny_data):
    from morpheus_pl.data.prepare import record_num_segments
    from morpheus_pl.handoff import fingerprint

    from conftest import compose_tiny

    dm, _ = tiny_data
    longest = max(len(ex.persona) for ex in dm.read("train"))
    auto_dm = PersonaDialogDataModule(dm.dataset, num_segments="auto")
    assert auto_dm.resolve_num_segments() == longest
    auto = compose_tiny(tiny_root, "data.num_segments=auto")
    assert record_num_segments(auto, auto_dm) == longest == auto.data.num_segments
    assert auto.predictor.num_slots == longest
    fixed = compose_tiny(tiny_root, f"data.num_segments={longest}")
    assert fingerprint(auto, "joint") == fingerprint(fixed, "joint")  # the same checkpoints
    assert PersonaDialogDataModule(dm.dataset, num_segments=3).resolve_num_segments() == 3
