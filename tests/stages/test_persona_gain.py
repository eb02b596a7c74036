"""`val/persona_gain`: response NLL under another role's prefix minus under the example's own."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from morpheus_pl.data.example import DialogExample
from morpheus_pl.modules.prefix_lm import prefix_lm_loss
from morpheus_pl.pipeline import build_stage
from morpheus_pl.stages.persona_gain import (
    IgnoredPrefixWarning,
    log_persona_gain,
    other_role_index,
)


def _example(*persona: str) -> DialogExample:
    return DialogExample(persona=tuple(persona), context=(), response="hi", role="r", source="t:0")


def test_other_role_index_skips_examples_of_the_same_role():
    a, b = ("i like tea",), ("i have a dog", "i run")
    same_a = ("I like tea.",)  # role_key ignores case and the final full stop
    examples = [_example(*a), _example(*same_a), _example(*b), _example(*b)]
    assert other_role_index(examples).tolist() == [2, 2, 0, 0]
    assert other_role_index([_example(*a), _example(*same_a)]) is None


@pytest.mark.parametrize("stage_name", ["role_awareness", "joint"])
def test_persona_gain_is_the_swapped_minus_the_own_prefix_loss(tiny_compose, tiny_data, stage_name,
                                                               monkeypatch):
    dm, tok_dir = tiny_data
    dm.setup("fit")
    stage = build_stage(tiny_compose(), stage_name, tok_dir).eval()
    batch = next(iter(dm.val_dataloader()))
    logged = {}
    monkeypatch.setattr(stage, "log", lambda name, value, **kw: logged.update({name: value}))
    with torch.no_grad():
        log_persona_gain(stage, batch)
        other = other_role_index(batch["examples"])
        kv = stage.generation_prefix(batch)
        inputs = (stage.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"])
        expected = (prefix_lm_loss(*inputs, [(k[other], v[other]) for k, v in kv])
                    - prefix_lm_loss(*inputs, kv))
    assert other is not None and not torch.equal(other, torch.arange(len(other)))
    assert float(logged["val/persona_gain"]) == pytest.approx(float(expected), abs=1e-6)
    assert float(expected) != 0.0  # the prefix changes the loss even untrained


def test_no_prefix_no_gain(tiny_compose, tiny_data, monkeypatch):
    dm, tok_dir = tiny_data
    dm.setup("fit")
    stage = build_stage(tiny_compose("ablation=no_pc"), "joint", tok_dir).eval()
    logged = {}
    monkeypatch.setattr(stage, "log", lambda name, value, **kw: logged.update({name: value}))
    log_persona_gain(stage, next(iter(dm.val_dataloader())))
    assert logged == {}


@pytest.mark.parametrize("stage_name", ["role_awareness", "joint"])
@pytest.mark.parametrize("gain, warns", [(0.002, True), (0.35, False), (None, False)])
def test_a_prefix_the_decoder_ignores_is_flagged_at_the_end(tiny_compose, tiny_data, caplog,
                                                            stage_name, gain, warns):
    _, tok_dir = tiny_data
    stage = build_stage(tiny_compose(), stage_name, tok_dir)
    metrics = {} if gain is None else {"val/persona_gain": torch.tensor(gain)}
    trainer = SimpleNamespace(callback_metrics=metrics, global_rank=0, loggers=[])
    (callback,) = stage.configure_callbacks()
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        callback.on_train_end(trainer, stage)
    assert ("the decoder ignores its persona prefix" in caplog.text) == warns


def test_the_stages_with_a_persona_prefix_attach_the_warning(tiny_compose, tiny_data):
    _, tok_dir = tiny_data
    for stage_name, overrides, expected in (("role_awareness", (), [IgnoredPrefixWarning]),
                                            ("joint", (), [IgnoredPrefixWarning]),
                                            ("joint", ("ablation=no_pc",), []),
                                            ("codebook_init", (), []), ("no_persona", (), [])):
        stage = build_stage(tiny_compose(*overrides), stage_name, tok_dir)
        assert [type(c) for c in stage.configure_callbacks()] == expected, (stage_name, overrides)


@pytest.mark.parametrize("weight, expected", [(0.0, {"gen"}), (0.5, {"gen", "segment"})])
def test_stage_one_adds_segment_reconstruction_by_its_weight(tiny_compose, tiny_data, weight,
                                                             expected, monkeypatch):
    """`loss.weights.segment=0` is the paper's stage 1 (L_G alone); a positive weight adds the
    segment reconstruction of the batch's own segments, and the step weights it."""
    from morpheus_pl.modules.segment_reconstruction import segment_reconstruction_loss

    dm, tok_dir = tiny_data
    dm.setup("fit")
    stage = build_stage(tiny_compose(f"loss.weights.segment={weight}"), "role_awareness",
                        tok_dir).eval()
    monkeypatch.setattr(stage, "log", lambda *a, **kw: None)
    monkeypatch.setattr(stage, "log_dict", lambda *a, **kw: None)
    batch = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        losses = stage.losses(batch)
        assert set(losses) == expected
        if weight:
            p = stage.persona_vectors(batch)
            own = segment_reconstruction_loss(stage.decoder, stage.projector, p,
                                              batch["segment_ids"], batch["segment_mask"])
            assert float(losses["segment"]) == pytest.approx(float(own), abs=1e-6)
            total = stage._step(batch, "val")
            assert float(total) == pytest.approx(float(losses["gen"] + weight * own), abs=1e-5)


def test_training_logs_the_gain_at_every_validation(tiny_compose, tiny_data, tmp_path):
    from morpheus_pl.pipeline import train_stage

    dm, tok_dir = tiny_data
    cfg = tiny_compose("train.val_every_n_steps=3", "seed=31", f"paths.output={tmp_path}")
    train_stage(cfg, "role_awareness", dm, tok_dir)
    lines = next((tmp_path / "logs" / "role_awareness").glob("*/metrics.csv")).read_text().splitlines()
    column = lines[0].split(",").index("val/persona_gain")
    steps = [row.split(",")[lines[0].split(",").index("step")] for row in lines[1:]
             if row.split(",")[column]]
    assert steps == ["2", "5"]  # validations after steps 3 and 6 (0-based step of the log)
