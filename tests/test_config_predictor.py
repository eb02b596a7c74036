"""The predictor's options in the config: bad values fail before any training, naming the key
and its choices; the keys added for them, at their defaults, move no existing artifact."""

from __future__ import annotations

import pytest
from omegaconf import open_dict

from morpheus_pl.config_checks import check_config
from morpheus_pl.errors import ConfigError
from morpheus_pl.handoff import STAGE_KEYS, fingerprint, run_settings

# added with the order-free predictor options and scheduled train-as-you-infer (issue 17)
NEW_KEYS = {"predictor": ("reads", "expected_top_k", "rescore_samples"),
            "loss": ("predicted_prefix_schedule", "predicted_prefix_grad")}


@pytest.mark.parametrize(("override", "message"), [
    ("predictor.loss=hinge", r"predictor\.loss must be one of \('ce', 'focal', 'set', 'bag'\), got 'hinge'"),
    ("predictor.reads=first", r"predictor\.reads must be one of \('last', 'mean', 'slot_attention'\)"),
    ("predictor.decode=beam", r"predictor\.decode must be one of \('argmax', .*'covering'\), got 'beam'"),
    ("eval.compare_decode=[argmax,beam]", r"eval\.compare_decode must be one of .*got 'beam'"),
    ("predictor.expected_top_k=0", r"predictor\.expected_top_k must be null .* \[1, codebook\.N=8\]"),
    ("predictor.expected_top_k=9", r"predictor\.expected_top_k .* got 9"),
    ("predictor.expected_top_k=2.5", r"predictor\.expected_top_k .* got 2\.5"),
    ("predictor.rescore_samples=0", r"predictor\.rescore_samples must be an int >= 1, got 0"),
    ("loss.predicted_prefix_share=1.5", r"loss\.predicted_prefix_share must be a number in \[0, 1\], got 1\.5"),
    ("loss.predicted_prefix_share=half", r"loss\.predicted_prefix_share .* got 'half'"),
    ("loss.predicted_prefix_schedule=cosine",
     r"loss\.predicted_prefix_schedule must be one of \('constant', 'linear'\), got 'cosine'"),
    ("loss.predicted_prefix_grad=maybe", r"loss\.predicted_prefix_grad must be true or false, got 'maybe'"),
])
@pytest.mark.parametrize("stage", ["pipeline", "joint", "evaluate"])
def test_a_bad_predictor_option_fails_before_training(tiny_compose, override, message, stage):
    with pytest.raises(ConfigError, match=message):
        check_config(tiny_compose(f"stage={stage}", override))


def test_every_option_passes_the_checks(tiny_compose):
    for loss in ("ce", "focal", "set", "bag"):
        for reads in ("last", "mean", "slot_attention"):
            check_config(tiny_compose("stage=pipeline", f"predictor.loss={loss}", f"predictor.reads={reads}"))
    for schedule in ("constant", "linear"):
        check_config(tiny_compose("stage=pipeline", "loss.predicted_prefix_share=1",
                                  f"loss.predicted_prefix_schedule={schedule}",
                                  "loss.predicted_prefix_grad=true"))
    for decode in ("argmax", "top_m_distinct", "sample", "distinct_argmax", "expected", "rescored", "covering"):
        check_config(tiny_compose("stage=pipeline", f"predictor.decode={decode}",
                                  "predictor.expected_top_k=8", f"eval.compare_decode=[{decode}]"))


def test_distinct_argmax_with_fewer_codes_than_slots_fails_before_training(tiny_compose):
    with pytest.raises(ConfigError, match=r"decode=distinct_argmax .* \(N=4, M=5\)"):
        check_config(tiny_compose("stage=pipeline", "codebook.N=4", "predictor.decode=distinct_argmax"))


def test_the_new_keys_at_their_defaults_hash_as_their_absence(tiny_compose):
    """A stage, tokenizer or evaluation made before these keys existed is found again."""
    cfg, before = tiny_compose(), tiny_compose()
    with open_dict(before):
        for group, keys in NEW_KEYS.items():
            for key in keys:
                del before[group][key]
    assert {s: fingerprint(cfg, s) for s in STAGE_KEYS} == {s: fingerprint(before, s) for s in STAGE_KEYS}
    assert run_settings(cfg) == run_settings(before)


@pytest.mark.parametrize("override", ["predictor.reads=mean", "predictor.reads=slot_attention",
                                      "predictor.expected_top_k=3", "predictor.loss=set",
                                      "predictor.loss=bag", "predictor.decode=expected",
                                      "loss.predicted_prefix_schedule=linear",
                                      "loss.predicted_prefix_grad=true"])
def test_a_set_option_trains_its_own_joint_stage_only(tiny_compose, override):
    base, cfg = tiny_compose(), tiny_compose(override)
    changed = {s for s in STAGE_KEYS if fingerprint(cfg, s) != fingerprint(base, s)}
    assert changed == {"joint"}
    assert run_settings(cfg) != run_settings(base)
