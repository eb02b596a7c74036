"""What Lightning's GPU strategies and precisions ask of a stage, checked on the CPU (the first
three failed on an H100; the weight-decay split was found by reading): mixed precision with
gradient clipping needs an optimiser that does not unscale gradients itself, FSDP/DeepSpeed
walk every batch, FSDP clips by norm only through its wrapper and hands the optimiser flat
shards."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision.deepspeed import DeepSpeedPrecision
from lightning.pytorch.plugins.precision.fsdp import FSDPPrecision
from lightning.pytorch.strategies import FSDPStrategy
from torch import nn

from morpheus_pl.data.example import BatchExamples, DialogExample
from morpheus_pl.pipeline import build_stage
from morpheus_pl.stages.base import adamw


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_stage_trains_with_gradient_clipping_at_any_precision(precision, tiny_cfg, tiny_data):
    dm, tok_dir = tiny_data
    stage = build_stage(tiny_cfg, "no_persona", tok_dir)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", precision=precision, gradient_clip_val=1.0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(stage, train_dataloaders=dm.train_dataloader())
    assert trainer.global_step == 2
    # the fused kernel at full precision only: Lightning refuses to clip its gradients under AMP
    assert trainer.optimizers[0].defaults["fused"] is (precision == "32-true")


@pytest.mark.parametrize("plugin", [FSDPPrecision("bf16-mixed"), FSDPPrecision("bf16-true"),
                                    DeepSpeedPrecision("bf16-mixed")], ids=type)
def test_strategy_input_conversion_passes_a_batch_through(plugin, tiny_data):
    dm, _ = tiny_data
    batch = next(iter(dm.val_dataloader()))
    converted = plugin.convert_input(batch)
    assert converted.keys() == batch.keys()
    assert isinstance(converted["examples"], BatchExamples)
    assert list(converted["examples"]) == list(batch["examples"])
    assert all(isinstance(ex, DialogExample) for ex in converted["examples"])
    assert (converted["history_ids"] == batch["history_ids"]).all()


class _FSDPRoot:
    """Stands in for the FullyShardedDataParallel root (FSDP needs GPUs): records the call."""

    def __init__(self) -> None:
        self.max_norms = []

    def clip_grad_norm_(self, max_norm):
        self.max_norms.append(max_norm)


def test_norm_clipping_under_fsdp_goes_through_the_fsdp_wrapper(tiny_cfg, tiny_data):
    _, tok_dir = tiny_data
    stage = build_stage(tiny_cfg, "no_persona", tok_dir)
    root = _FSDPRoot()
    stage.trainer = SimpleNamespace(strategy=FSDPStrategy(), model=root)
    stage.configure_gradient_clipping(None, 1.0, "norm")
    stage.configure_gradient_clipping(None, 0.5, None)
    assert root.max_norms == [1.0, 0.5]
    # other strategies: Lightning's own clipping, which clips the module's gradients in place
    param = next(p for p in stage.parameters() if p.requires_grad)
    param.grad = torch.full_like(param, 100.0)
    stage.trainer = SimpleNamespace(strategy=None, model=root, gradient_clip_val=1.0,
                                    gradient_clip_algorithm=None,
                                    precision_plugin=L.pytorch.plugins.precision.Precision())
    stage.configure_gradient_clipping(torch.optim.SGD([param], lr=0.1), 1.0, "norm")
    assert root.max_norms == [1.0, 0.5]
    assert torch.linalg.vector_norm(param.grad) == pytest.approx(1.0, rel=1e-4)


def _weight_decay_groups(optimizer) -> tuple[set, set]:
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    exempt = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    return decayed, exempt


def test_weight_decay_split_holds_for_flattened_shards(tiny_cfg, tiny_data):
    """Biases and LayerNorm weights get no decay, matrices do; also when every parameter is a
    1-D view, as FSDP (use_orig_params) hands them to `configure_optimizers`."""
    _, tok_dir = tiny_data
    stage = build_stage(tiny_cfg, "joint", tok_dir)
    optim = {"lr": 1e-3, "weight_decay": 0.01}
    names = {id(p): n for n, p in stage.named_parameters()}
    decayed, exempt = _weight_decay_groups(adamw(stage, optim))
    # oracle: GPT-2's and the new parts' biases and LayerNorm weights are exactly its 1-D tensors
    trainable = {n: p for n, p in stage.named_parameters() if p.requires_grad}
    assert {names[i] for i in exempt} == {n for n, p in trainable.items() if p.ndim == 1}
    assert {names[i] for i in decayed} == {n for n, p in trainable.items() if p.ndim >= 2}
    assert any(".ln_" in names[i] for i in exempt) and any("codebook" in names[i] for i in decayed)
    expected = ({names[i] for i in decayed}, {names[i] for i in exempt})
    flat = {}  # one flat view per parameter, so tied weights (GPT-2's LM head) stay tied
    with torch.no_grad():
        for mod in list(stage.modules()):
            for name, param in list(mod.named_parameters(recurse=False)):
                if id(param) not in flat:
                    flat[id(param)] = nn.Parameter(param.detach().reshape(-1),
                                                   requires_grad=param.requires_grad)
                setattr(mod, name, flat[id(param)])
    assert all(p.ndim == 1 for p in stage.parameters())
    names = {id(p): n for n, p in stage.named_parameters()}
    decayed, exempt = _weight_decay_groups(adamw(stage, optim))
    assert ({names[i] for i in decayed}, {names[i] for i in exempt}) == expected
