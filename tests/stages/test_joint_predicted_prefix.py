"""`loss.predicted_prefix_share`: a share of joint training's L_G through the predicted codes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from morpheus_pl.modules.code_predictor import decode_codes
from morpheus_pl.modules.prefix_lm import prefix_lm_loss
from morpheus_pl.pipeline import build_stage
from morpheus_pl.stages.joint import scheduled_share

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to .self.log")


def _stage(tiny_compose, tok_dir, share: float):
    stage = build_stage(tiny_compose(f"loss.predicted_prefix_share={share}"), "joint", tok_dir)
    for module in stage.modules():  # training mode without dropout: losses are comparable
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return stage.train()


def test_share_one_conditions_l_g_on_the_predicted_codes_prefix(tiny_compose, tiny_data):
    dm, tok_dir = tiny_data
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    stage = _stage(tiny_compose, tok_dir, 1.0)
    gen = stage.losses(batch)["gen"]
    with torch.no_grad():
        picked = decode_codes(stage.code_logits(batch), stage.predictor_cfg["decode"],
                              codebook=stage.codebook.codes)
        kv = stage.projector(stage.codebook.lookup(picked))
        expected = prefix_lm_loss(stage.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"], kv)
    assert float(gen) == pytest.approx(float(expected), abs=1e-5)
    paper = _stage(tiny_compose, tok_dir, 0.0).losses(batch)["gen"]
    assert abs(float(paper) - float(gen)) > 1e-4  # the paper's L_G conditions on z instead


def test_picked_vectors_replace_whole_examples_and_pass_no_gradient_to_the_codebook(
        tiny_compose, tiny_data):
    _, tok_dir = tiny_data
    stage = _stage(tiny_compose, tok_dir, 0.5)
    n, m, d = 400, stage.predictor_cfg["num_slots"], stage.codebook.codes.shape[1]
    z = torch.randn(n, m, d, requires_grad=True)
    picked = stage.codebook.lookup(torch.randint(0, stage.codebook.num_codes, (n, m)))
    torch.manual_seed(0)
    out = stage.with_predicted_prefix(z, picked)
    from_codes = (out == picked).all(-1).all(-1)
    from_z = (out == z).all(-1).all(-1)
    assert bool((from_codes ^ from_z).all())  # each example wholly one or the other
    assert 0.4 < float(from_codes.float().mean()) < 0.6
    out.sum().backward()
    assert stage.codebook.codes.grad is None
    assert torch.equal(z.grad.abs().sum((1, 2)) > 0, from_z)
    stage.eval()  # generation-time evaluation: never replaced
    assert stage.with_predicted_prefix(z, picked) is z


@pytest.mark.parametrize("decode", ["top_m_distinct", "expected"])
def test_predicted_prefix_grad_reaches_the_code_path_with_the_same_forward_value(
        tiny_compose, tiny_data, decode):
    """With `loss.predicted_prefix_grad=true` L_G alone moves the predictor and the codebook
    (the code path); its value is the one of the constant prefix; without it neither moves."""
    dm, tok_dir = tiny_data
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    grads, values = {}, {}
    for grad in (False, True):
        torch.manual_seed(0)
        stage = build_stage(tiny_compose("loss.predicted_prefix_share=1.0", f"predictor.decode={decode}",
                                         f"loss.predicted_prefix_grad={grad}"), "joint", tok_dir).train()
        for module in stage.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        gen = stage.losses(batch)["gen"]
        gen.backward()
        values[grad] = float(gen)
        grads[grad] = [p.grad for p in (stage.predictor.mlp[-1].weight, stage.codebook.codes)]
    assert values[True] == pytest.approx(values[False], abs=1e-5)
    assert all(g is None or float(g.abs().sum()) == 0 for g in grads[False])
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads[True])


def test_the_stage_takes_its_share_from_the_schedule_and_its_trainer(tiny_compose, tiny_data):
    stage = build_stage(tiny_compose("loss.predicted_prefix_share=0.8",
                                     "loss.predicted_prefix_schedule=linear"), "joint", tiny_data[1])
    assert stage.predicted_prefix_share_now() == 0.8  # no trainer: no known total
    stage._trainer = SimpleNamespace(global_step=30, estimated_stepping_batches=120)
    assert stage.predicted_prefix_share_now() == pytest.approx(0.2)


def test_the_linear_schedule_rises_from_zero_to_the_share():
    assert [scheduled_share(0.5, "linear", s, 100) for s in (0, 50, 100, 150)] == [0, 0.25, 0.5, 0.5]
    assert scheduled_share(0.5, "constant", 0, 100) == 0.5
    assert scheduled_share(0.5, "linear", 10, 0) == 0.5  # no known total: the share throughout
    assert scheduled_share(0.5, "linear", 10, float("inf")) == 0.5  # Lightning's endless training
