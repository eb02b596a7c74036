"""The bundle with a pretrained decoder (untrained modules, no training): in PEFT mode it holds
only what trains and reloads the frozen decoder from its source; fully fine-tuned, it holds the
whole decoder and rebuilds it from its own config. Either way the loaded model generates what
the module it was written from generates; buffers travel with the weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, GPT2Config

from morpheus_pl.bundle import MorpheusModel
from morpheus_pl.bundle_files import ENCODER_TOKENIZER, WEIGHTS, write_bundle
from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.errors import ConfigError
from morpheus_pl.export import bundle_config
from morpheus_pl.generation import GenerationConfig, generate_batch
from morpheus_pl.modules.decoder import load_tokenizer
from morpheus_pl.modules.persona_encoder import DecoderPersonaEncoder
from morpheus_pl.pipeline import build_stage

GREEDY = {"do_sample": False, "max_new_tokens": 8}


@pytest.fixture(scope="module")
def pretrained_dir(tiny_data, tmp_path_factory):
    """A tiny GPT-2 saved as a pretrained model (the tiny run's vocabulary)."""
    dm, _ = tiny_data
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=256,
                        vocab_size=len(dm.tokenizer), eos_token_id=dm.tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("gpt2_tiny")
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def _written_and_loaded(tiny_compose, tiny_data, folder, tmp_path, *overrides):
    dm, tok_dir = tiny_data
    cfg = tiny_compose("model.source=pretrained", f"model.name_or_path={folder}", *overrides)
    module = build_stage(cfg, "joint", tok_dir).eval()
    module.codebook.load_codes(torch.randn_like(module.codebook.codes))
    module.codebook.usage.copy_(torch.rand(module.codebook.num_codes))
    out = write_bundle(module, tmp_path / "model", bundle_config(cfg, module, tmp_path, {}))
    return module, MorpheusModel.from_pretrained(out), out


def _same_greedy_replies(module, model, dm) -> None:
    batch = next(iter(dm.test_dataloader()))
    texts, _ = generate_batch(module, batch, "morpheus", GenerationConfig(**GREEDY), "top_m_distinct")
    examples = list(batch["examples"])
    replies = model.respond_batch([ex.context for ex in examples], **GREEDY)
    assert [r.text for r in replies] == texts


def test_peft_mode_bundles_only_what_trains(tiny_compose, tiny_data, pretrained_dir, tmp_path):
    module, model, out = _written_and_loaded(tiny_compose, tiny_data, pretrained_dir, tmp_path,
                                             "peft=morpheus")
    with safe_open(str(out / WEIGHTS), "pt") as weights:
        stored = set(weights.keys())
    counted = {"persona_encoder.token_weights", "persona_encoder.token_weights_fitted"}  # data
    assert stored and not any(k.startswith(("decoder.", "persona_encoder.")) for k in stored - counted)
    assert {"projector.mlp.0.weight", "predictor.slots.weight", "codebook.usage"} <= stored
    assert model.config["decoder"] == {"source": "pretrained", "name_or_path": str(pretrained_dir),
                                       "gguf_file": None, "frozen": True, "model_type": "gpt2"}
    original, loaded = module.state_dict(), model.stage.state_dict()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    _same_greedy_replies(module, model, tiny_data[0])


def test_a_fine_tuned_pretrained_decoder_is_rebuilt_from_the_bundle(tiny_compose, tiny_data,
                                                                      pretrained_dir, tmp_path):
    module, model, out = _written_and_loaded(tiny_compose, tiny_data, pretrained_dir, tmp_path)
    arguments = model.config["stage_arguments"]["model"]
    assert arguments["source"] == "config" and arguments["trained_from"] == str(pretrained_dir)
    original, loaded = module.state_dict(), model.stage.state_dict()
    assert original.keys() == loaded.keys()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    _same_greedy_replies(module, model, tiny_data[0])


def test_an_encoder_buffer_travels_with_the_weights(tiny_compose, tiny_data, tmp_path, monkeypatch):
    """A persona encoder that registers a buffer (as token-weighted pooling does): its values
    are in the bundle, described in config.json, and loaded back."""
    built = DecoderPersonaEncoder.__init__

    def with_buffer(self, *args, **kwargs):
        built(self, *args, **kwargs)
        self.register_buffer("token_weights", torch.ones(7))

    monkeypatch.setattr(DecoderPersonaEncoder, "__init__", with_buffer)
    dm, tok_dir = tiny_data
    cfg = tiny_compose()
    module = build_stage(cfg, "joint", tok_dir).eval()
    module.persona_encoder.token_weights.copy_(torch.rand(7))
    out = write_bundle(module, tmp_path / "model", bundle_config(cfg, module, tmp_path, {}))
    described = json.loads((out / "config.json").read_text())["buffers"]
    assert described["persona_encoder.token_weights"]["shape"] == [7]
    assert described["persona_encoder.token_weights"]["meaning"].startswith("DecoderPersonaEncoder")
    loaded = MorpheusModel.from_pretrained(out).stage.persona_encoder.token_weights
    assert torch.equal(loaded, module.persona_encoder.token_weights)


def test_export_never_overwrites_a_folder_that_is_not_a_bundle(tiny_compose, tiny_data, tmp_path):
    _, tok_dir = tiny_data
    cfg = tiny_compose()
    module = build_stage(cfg, "joint", tok_dir)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not a model bundle"):
        write_bundle(module, tmp_path, bundle_config(cfg, module, tmp_path, {}))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_separate_persona_encoder_keeps_its_tokenizer(tiny_compose, tiny_data, tmp_path):
    """encoder=minilm_offline: the encoder's tokenizer travels in encoder_tokenizer/, and the
    true-persona replies are those of the module the bundle was written from."""
    dm, tok_dir = tiny_data
    cfg = tiny_compose("encoder=minilm_offline")
    segment_tokenizer = load_tokenizer(cfg.encoder.name_or_path)
    module = build_stage(cfg, "joint", tok_dir).eval()
    out = write_bundle(module, tmp_path / "model", bundle_config(cfg, module, tmp_path, {}),
                       segment_tokenizer)
    model = MorpheusModel.from_pretrained(out)
    assert (out / ENCODER_TOKENIZER / "tokenizer.json").is_file()
    assert model.data.segment_tokenizer.vocab == segment_tokenizer.vocab
    framework = PersonaDialogDataModule(dataset=dm.dataset, num_segments=5)
    framework.set_tokenizers(dm.tokenizer, segment_tokenizer)
    examples = dm.read("test")[:4]
    batch = framework.collate([framework.encode(ex) for ex in examples])
    texts, _ = generate_batch(module, batch, "true_persona", GenerationConfig(**GREEDY))
    replies = model.respond_batch([ex.context for ex in examples], [ex.persona for ex in examples],
                                  system="true_persona", **GREEDY)
    assert [r.text for r in replies] == texts
