"""Generation for every system on a tiny joint stage built through the real Hydra config."""

import pytest
import torch

from morpheus_pl.generation import GenerationConfig, generate_batch, prefix_for
from morpheus_pl.modules.prefix_projector import prefix_attention, prefix_cache

GREEDY = GenerationConfig(do_sample=False, max_new_tokens=4)


@pytest.fixture
def stage(prefix_stage):
    return prefix_stage


@pytest.fixture
def batch(tiny_test_batch):
    return tiny_test_batch


def _record_generate(monkeypatch, stage):
    outputs = []
    original = stage.decoder.generate

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        outputs.append(out)
        return out

    monkeypatch.setattr(stage.decoder, "generate", recording)
    return outputs


def test_batch_is_left_padded_with_several_lengths(batch):
    mask = batch["history_mask"]
    assert mask[:, -1].all()
    assert len(set(mask.sum(1).tolist())) > 1  # padding really happens in this batch


def test_greedy_first_token_equals_manual_prefixed_argmax(stage, batch, monkeypatch):
    outputs = _record_generate(monkeypatch, stage)
    texts, codes = generate_batch(stage, batch, "morpheus", GREEDY)
    assert len(texts) == batch["history_ids"].shape[0]
    assert codes.shape == (len(texts), stage.predictor_cfg["num_slots"])
    out = outputs[0]
    ids, mask = batch["history_ids"], batch["history_mask"]
    assert torch.equal(out[:, : ids.shape[1]], ids)
    with torch.no_grad():
        kv, codes_again = prefix_for(stage, batch, "morpheus")
        full, positions = prefix_attention(kv[0][0].shape[2], mask)
        logits = stage.decoder(input_ids=ids, attention_mask=full, position_ids=positions,
                               cache=prefix_cache(kv, stage.decoder.config)).logits[:, -1]
        plain = stage.decoder(input_ids=ids, attention_mask=mask,
                              position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -1]
    assert torch.equal(codes, codes_again)
    assert torch.equal(out[:, ids.shape[1]], logits.argmax(-1))
    # the check is sharp: without the prefix the argmax differs for some example
    assert not torch.equal(plain.argmax(-1), logits.argmax(-1))


def test_persona_systems_differ_from_no_persona(stage, batch, monkeypatch):
    outputs = _record_generate(monkeypatch, stage)
    generate_batch(stage, batch, "no_persona", GREEDY)
    generate_batch(stage, batch, "morpheus", GREEDY)
    generate_batch(stage, batch, "true_persona", GREEDY)
    none, morpheus, true = outputs
    assert not torch.equal(morpheus, none)
    assert not torch.equal(true, none)


def test_generate_twice_gives_identical_greedy_output(stage, batch, monkeypatch):
    outputs = _record_generate(monkeypatch, stage)
    first, codes1 = generate_batch(stage, batch, "morpheus", GREEDY)
    second, codes2 = generate_batch(stage, batch, "morpheus", GREEDY)
    assert first == second
    assert torch.equal(codes1, codes2)
    assert torch.equal(outputs[0], outputs[1])
    assert outputs[0].shape[1] == batch["history_ids"].shape[1] + 4


def test_unknown_system(stage, batch):
    with pytest.raises(ValueError, match="system"):
        prefix_for(stage, batch, "oracle")


@pytest.mark.filterwarnings("ignore:You are trying to .self.log")
def test_code_predictor_sees_the_same_inputs_in_training_and_inference(stage, batch, monkeypatch):
    """Known trap: c = Decoder(C) must come without the persona prefix, in training too."""
    seen = []
    original = stage.predictor.forward

    def recording(c):
        seen.append(c.detach().clone())
        return original(c)

    monkeypatch.setattr(stage.predictor, "forward", recording)
    stage.eval()  # no dropout in either pass
    with torch.no_grad():
        train_losses = stage.losses(batch)
        prefix_for(stage, batch, "morpheus")
        other = dict(batch)
        other["segment_ids"] = torch.roll(batch["segment_ids"], shifts=7, dims=0)
        other_losses = stage.losses(other)
    assert len(seen) == 3
    c_train, c_infer, c_other_persona = seen
    assert c_train.shape == (batch["history_ids"].shape[0], stage.hidden_size)
    assert torch.allclose(c_train, c_infer, atol=1e-6)
    assert torch.allclose(c_train, c_other_persona, atol=1e-6)
    # the persona really changed what the generation loss saw
    assert not torch.allclose(train_losses["gen"], other_losses["gen"], atol=1e-5)


def test_oracle_codes_is_morpheus_with_a_perfect_predictor(stage, batch, monkeypatch):
    with torch.no_grad():
        gold = stage.codebook.nearest(stage.persona_vectors(batch))
        predicted = prefix_for(stage, batch, "morpheus")[1]
    assert not torch.equal(predicted, gold)  # the untrained predictor is not perfect
    perfect = torch.nn.functional.one_hot(gold, stage.codebook.num_codes).float()
    monkeypatch.setattr(stage, "code_logits", lambda b: perfect)
    kv_morpheus, codes = prefix_for(stage, batch, "morpheus")
    kv_oracle, oracle_codes = prefix_for(stage, batch, "oracle_codes")
    assert torch.equal(codes, gold) and oracle_codes is None  # oracle codes are no prediction
    for (k_m, v_m), (k_o, v_o) in zip(kv_morpheus, kv_oracle, strict=True):
        assert torch.equal(k_m, k_o) and torch.equal(v_m, v_o)


def test_eval_systems_are_checked_before_training(tiny_compose):
    from morpheus_pl.config_checks import check_systems

    with pytest.raises(ValueError, match=r"unknown system\(s\) \['oracle'\]"):
        check_systems(tiny_compose("eval.systems=[morpheus,oracle]"))
    with pytest.raises(ValueError, match="oracle_codes needs the persona codebook.*no_pc"):
        check_systems(tiny_compose("eval.systems=[oracle_codes]", "ablation=no_pc"))
    check_systems(tiny_compose("eval.systems=[morpheus,oracle_codes]"))


def test_a_distinct_decoding_with_fewer_codes_than_slots_fails_before_training(tiny_compose):
    from morpheus_pl.config_checks import check_decode

    with pytest.raises(ValueError, match=r"predictor\.decode=covering picks M distinct codes and "
                                         r"needs codebook.N >= data.num_segments \(N=4, M=5\)"):
        check_decode(tiny_compose("codebook.N=4"))
    check_decode(tiny_compose("codebook.N=4", "predictor.decode=argmax"))
    check_decode(tiny_compose("codebook.N=4", "ablation=no_pc"))  # no codebook, nothing to pick
    check_decode(tiny_compose("codebook.N=5"))
