"""Every load in the package is safe by default: `torch.load` and Lightning resume with
weights_only=True, and every `from_pretrained` with a `trust_remote_code` that comes from the
config (false unless asked)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
)

from morpheus_pl.modules import decoder as decoder_module
from morpheus_pl.modules import persona_encoder as encoder_module

SRC = Path(__file__).resolve().parents[1] / "src" / "morpheus_pl"


def _calls(name: str) -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == name:
                found.append((f"{path.relative_to(SRC)}:{node.lineno}", node))
    return found


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_torch_load_and_resume_use_weights_only():
    loads = _calls("load")
    torch_loads = [(where, c) for where, c in loads
                   if isinstance(c.func.value, ast.Name) and c.func.value.id == "torch"]
    assert torch_loads, "the audit must see the hand-off's torch.load"
    for where, call in torch_loads:
        value = _keyword(call, "weights_only")
        assert isinstance(value, ast.Constant) and value.value is True, where
    resumes = [(where, c) for where, c in _calls("fit") if _keyword(c, "ckpt_path") is not None]
    assert resumes, "the audit must see the pipeline's resumable fits"
    for where, call in resumes:
        value = _keyword(call, "weights_only")
        assert isinstance(value, ast.Constant) and value.value is True, where
    assert not _calls("load_from_checkpoint")


def test_every_from_pretrained_passes_trust_remote_code_from_a_parameter():
    # the project's own bundle loader (JSON and safetensors: no remote code) is not a hub load
    calls = [(where, call) for where, call in _calls("from_pretrained")
             if not (isinstance(call.func.value, ast.Name) and call.func.value.id == "MorpheusModel")]
    assert len(calls) >= 5
    for where, call in calls:
        value = _keyword(call, "trust_remote_code")
        assert isinstance(value, ast.Name) and value.id == "trust_remote_code", where


@pytest.fixture
def recorded(monkeypatch, tiny_tokenizer):
    """from_pretrained of tokenizer, decoder config, causal LM and encoder, recording their
    keyword arguments."""
    calls: dict[str, dict] = {}
    tiny_lm = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2,
                                         vocab_size=len(tiny_tokenizer)))

    def fake(name, result):
        def load(*args, **kwargs):
            calls[name] = kwargs
            return result
        return load

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", fake("tokenizer", tiny_tokenizer))
    monkeypatch.setattr(AutoConfig, "from_pretrained", fake("decoder config", (tiny_lm.config, {})))
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake("decoder", tiny_lm))
    monkeypatch.setattr(AutoModel, "from_pretrained", fake("encoder", tiny_lm.transformer))
    return calls


@pytest.mark.parametrize("trust", [None, False, True])
def test_remote_code_runs_only_when_the_config_asks(recorded, tiny_tokenizer, trust):
    kwargs = {} if trust is None else {"trust_remote_code": trust}
    decoder_module.load_tokenizer("some/hub-model", **kwargs)
    decoder_module.build_decoder("pretrained", tiny_tokenizer, "some/hub-model", **kwargs)
    encoder_module.PretrainedPersonaEncoder("some/hub-encoder", 16, **kwargs)
    expected = bool(trust)
    assert {name: kw["trust_remote_code"] for name, kw in recorded.items()} == {
        "tokenizer": expected, "decoder config": expected, "decoder": expected, "encoder": expected}


def test_stage_takes_trust_remote_code_from_model_and_encoder_config(recorded, tiny_compose,
                                                                     tiny_data):
    from morpheus_pl.pipeline import build_stage

    cfg = tiny_compose("model.source=pretrained", "model.name_or_path=some/hub-model",
                       "encoder=bert", "encoder.name_or_path=some/hub-encoder")
    assert cfg.model.trust_remote_code is False and cfg.encoder.trust_remote_code is False
    build_stage(cfg, "role_awareness", tiny_data[1])
    assert all(kw["trust_remote_code"] is False for kw in recorded.values())
    cfg = tiny_compose("model.source=pretrained", "model.name_or_path=some/hub-model",
                       "model.trust_remote_code=true", "encoder=bert",
                       "encoder.name_or_path=some/hub-encoder", "encoder.trust_remote_code=true")
    build_stage(cfg, "role_awareness", tiny_data[1])
    assert {name: kw["trust_remote_code"] for name, kw in recorded.items()} == {
        "tokenizer": True, "decoder config": True, "decoder": True, "encoder": True}
