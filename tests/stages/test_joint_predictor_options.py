"""The predictor options in the joint stage: `predictor.reads`, `predictor.loss=set|bag`,
`predictor.decode=expected`, each on the tiny joint stage built through the real Hydra config."""

from __future__ import annotations

import json

import pytest
import torch

from morpheus_pl.evaluation_stage import evaluate_stage
from morpheus_pl.generation import GenerationConfig, generate_batch, prefix_for
from morpheus_pl.modules.code_predictor import code_loss
from morpheus_pl.modules.order_free_loss import bag_loss, set_loss
from morpheus_pl.modules.prefix_lm import history_state, prefix_lm_loss
from morpheus_pl.pipeline import build_stage, load_trained, train_stage


@pytest.fixture(scope="module")
def batch(tiny_data):
    dm, _ = tiny_data
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def _stage(tiny_compose, tok_dir, *overrides):
    return build_stage(tiny_compose(*overrides), "joint", tok_dir).eval()


def test_reads_last_gives_the_logits_of_before(tiny_compose, tiny_data, batch):
    """`reads=last` (the default) is the paper's c, bit for bit: the predictor on history_state."""
    stage = _stage(tiny_compose, tiny_data[1])
    with torch.no_grad():
        before = stage.predictor(history_state(stage.decoder, batch["history_ids"], batch["history_mask"]))
        assert torch.equal(stage.code_logits(batch), before)
    assert not any(name.startswith("predictor.reader") for name in stage.state_dict())


def _unpadded(batch, row):
    """Example `row` of the left-padded batch alone, without its padding."""
    real = batch["history_mask"][row].bool()
    return {"history_ids": batch["history_ids"][row, real][None],
            "history_mask": batch["history_mask"][row, real][None]}


@pytest.mark.parametrize("reads", ["mean", "slot_attention"])
def test_mean_and_slot_attention_ignore_the_histories_padding(tiny_compose, tiny_data, batch, reads):
    stage = _stage(tiny_compose, tiny_data[1], f"predictor.reads={reads}")
    lengths = batch["history_mask"].sum(1)
    row = int(lengths.argmin())
    assert lengths[row] < batch["history_mask"].shape[1]  # this example is padded in the batch
    with torch.no_grad():
        in_batch = stage.code_logits(batch)[row]
        alone = stage.code_logits(_unpadded(batch, row))[0]
        last = _stage(tiny_compose, tiny_data[1]).code_logits(batch)[row]
    assert torch.allclose(in_batch, alone, atol=1e-5)
    assert not torch.allclose(in_batch, last, atol=1e-3)  # it reads something else than `last`


def test_slot_attention_trains_without_the_history_pass_gradient(tiny_compose, tiny_data, batch):
    stage = build_stage(tiny_compose("predictor.reads=slot_attention", "predictor.history_grad=false"),
                        "joint", tiny_data[1]).train()
    k = torch.randint(0, stage.codebook.num_codes, (batch["history_ids"].shape[0], 5))
    code_loss(stage.code_logits(batch), k, "set").backward()
    assert stage.predictor.reader.queries.grad.abs().sum() > 0
    assert stage.predictor.reader.keys.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in stage.decoder.parameters())


@pytest.mark.filterwarnings("ignore:You are trying to .self.log")
@pytest.mark.parametrize(("kind", "loss"), [("set", set_loss), ("bag", bag_loss)])
def test_the_joint_stage_trains_l_c_with_the_chosen_loss(tiny_compose, tiny_data, batch, kind, loss):
    stage = _stage(tiny_compose, tiny_data[1], f"predictor.loss={kind}")
    with torch.no_grad():
        k = stage.codebook.nearest(stage.persona_vectors(batch))
        expected = loss(stage.code_logits(batch), k)
        assert float(stage.losses(batch)["code"]) == pytest.approx(float(expected), abs=1e-6)


def test_expected_prefix_is_the_hard_prefix_for_a_one_hot_distribution(tiny_compose, tiny_data,
                                                                       batch, monkeypatch):
    stage = _stage(tiny_compose, tiny_data[1])
    with torch.no_grad():
        hard_codes = stage.code_logits(batch).argmax(-1)
        one_hot = torch.full((*hard_codes.shape, stage.codebook.num_codes), -1e9)
        one_hot.scatter_(-1, hard_codes[..., None], 0.0)
        monkeypatch.setattr(stage, "code_logits", lambda b: one_hot)
        kv_expected, codes = prefix_for(stage, batch, "morpheus", "expected")
        kv_hard, hard = prefix_for(stage, batch, "morpheus", "argmax")
    assert torch.equal(codes, hard) and torch.equal(codes, hard_codes)
    for (k_e, v_e), (k_h, v_h) in zip(kv_expected, kv_hard, strict=True):
        assert torch.equal(k_e, k_h) and torch.equal(v_e, v_h)


def test_expected_prefix_mixes_the_codes_and_top_k_one_is_the_hard_prefix(tiny_compose, tiny_data,
                                                                          batch):
    stage = _stage(tiny_compose, tiny_data[1])
    with torch.no_grad():
        logits = stage.code_logits(batch)
        soft = prefix_for(stage, batch, "morpheus", "expected")[0][0][0]
        hard = prefix_for(stage, batch, "morpheus", "argmax")[0][0][0]
        stage.predictor_cfg["expected_top_k"] = 1
        top_one = prefix_for(stage, batch, "morpheus", "expected")[0][0][0]
        vectors = stage.predicted_vectors(logits, "expected")[1]
    assert not torch.allclose(soft, hard, atol=1e-4)  # the untrained predictor is far from one-hot
    assert torch.equal(top_one, hard)
    assert torch.equal(vectors, stage.codebook.lookup(logits.argmax(-1)))


def test_pipeline_with_the_set_loss_slot_attention_and_the_expected_prefix(tiny_compose, tiny_data,
                                                                           tmp_path):
    """End to end: joint training with loss=set, slot attention and train-as-you-infer through
    the expected prefix, then an evaluation decoding with expected, distinct_argmax and rescored."""
    dm, tok_dir = tiny_data
    cfg = tiny_compose("stage=pipeline", "predictor.loss=set", "predictor.reads=slot_attention",
                       "predictor.decode=expected", "predictor.expected_top_k=3",
                       "loss.predicted_prefix_share=0.5", "eval.systems=[morpheus]",
                       "eval.compare_decode=[distinct_argmax,rescored]", "eval.skip_existing=false")
    evaluate_stage(cfg, dm, tok_dir, tmp_path, {})
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert {r["system"] for r in rows} == {"morpheus", "morpheus/distinct_argmax", "morpheus/rescored"}
    distinct = [r["predicted_codes"] for r in rows if r["system"] == "morpheus/distinct_argmax"]
    assert all(len(set(codes)) == len(codes) == 5 for codes in distinct)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["predictor"]["decode"] == "expected"
    assert {"morpheus", "morpheus/distinct_argmax", "morpheus/rescored"} <= set(results)
    assert all(results[name]["generate_s_per_example"] > 0
               for name in ("morpheus", "morpheus/distinct_argmax", "morpheus/rescored"))
    rescored = [r["predicted_codes"] for r in rows if r["system"] == "morpheus/rescored"]
    assert len(rescored) == len(distinct) and all(len(codes) == 5 for codes in rescored)
    module = load_trained(cfg, "joint", tok_dir, train_stage(cfg, "joint", dm, tok_dir))  # reused
    assert module.predictor.reader.reads == "slot_attention"
    test_batch = next(iter(dm.test_dataloader()))
    texts, codes = generate_batch(module, test_batch, "morpheus", GenerationConfig(max_new_tokens=3),
                                  "expected")
    with torch.no_grad():
        assert torch.equal(codes, module.code_logits(test_batch).argmax(-1))
    assert len(texts) == test_batch["history_ids"].shape[0]


@pytest.mark.filterwarnings("ignore:You are trying to .self.log")
def test_train_as_you_infer_conditions_on_the_expected_prefix(tiny_compose, tiny_data, batch):
    """`loss.predicted_prefix_share` with decode=expected: L_G sees the prefix generation will."""
    stage = build_stage(tiny_compose("loss.predicted_prefix_share=1.0", "predictor.decode=expected"),
                        "joint", tiny_data[1]).train()
    for module in stage.modules():  # training mode without dropout: losses are comparable
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    gen = stage.losses(batch)["gen"]
    with torch.no_grad():
        kv = prefix_for(stage, batch, "morpheus", "expected")[0]
        expected = prefix_lm_loss(stage.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"], kv)
    assert float(gen) == pytest.approx(float(expected), abs=1e-5)


def test_distinct_compare_rows_are_skipped_with_a_warning_when_n_is_below_m(tiny_compose, tiny_data,
                                                                           tmp_path, caplog):
    """codebook.N=4 < M=5 with predictor.decode=argmax (what the N >= M error advises): the
    default compare rows' top_m_distinct is skipped, named in a warning; argmax is evaluated."""
    import logging

    dm, tok_dir = tiny_data
    cfg = tiny_compose("stage=pipeline", "codebook.N=4", "predictor.decode=argmax",
                       "eval.systems=[morpheus]", "eval.skip_existing=false")
    assert list(cfg.eval.compare_decode) == ["top_m_distinct", "argmax"]
    with caplog.at_level(logging.WARNING, logger="morpheus_pl"):
        evaluate_stage(cfg, dm, tok_dir, tmp_path, {})
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert {r["system"] for r in rows} == {"morpheus", "morpheus/argmax"}
    assert any(r.getMessage() == "eval.compare_decode: top_m_distinct needs N >= M, skipped (N=4, M=5)"
               for r in caplog.records)
