"""`model.config_overrides` change a pretrained decoder's config: fewer layers keep the
first layers' weights; a key its config does not have is an error that names it."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from morpheus_pl.errors import ConfigError
from morpheus_pl.modules.decoder import build_decoder


@pytest.fixture
def saved_llama(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64)
    model = LlamaForCausalLM(config)
    model.save_pretrained(tmp_path / "llama")
    return model, str(tmp_path / "llama")


def test_fewer_layers_keep_the_first_layers_weights(saved_llama, tiny_tokenizer):
    full, path = saved_llama
    cut = build_decoder("pretrained", tiny_tokenizer, path,
                        config_overrides={"num_hidden_layers": 2})
    assert cut.config.num_hidden_layers == 2 and len(cut.model.layers) == 2
    for i in range(2):
        for name, weight in full.model.layers[i].state_dict().items():
            assert torch.equal(cut.model.layers[i].state_dict()[name], weight), (i, name)
    assert torch.equal(cut.model.norm.weight, full.model.norm.weight)
    whole = build_decoder("pretrained", tiny_tokenizer, path)
    assert len(whole.model.layers) == 3


def test_an_unknown_architecture_key_names_itself(saved_llama, tiny_tokenizer):
    _, path = saved_llama
    with pytest.raises(ConfigError, match=r"\['num_hidden_layer'\] are not fields of its config "
                                          r"\(LlamaConfig\)"):
        build_decoder("pretrained", tiny_tokenizer, path, config_overrides={"num_hidden_layer": 2})


def test_config_overrides_on_a_decoder_built_from_config_are_an_error(tiny_tokenizer):
    arch = {"model_type": "gpt2", "n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 64}
    with pytest.raises(ConfigError, match=r"model.config_overrides \{'n_layer': 1\} change a "
                                          r"pretrained decoder's config"):
        build_decoder("config", tiny_tokenizer, architecture=arch, config_overrides={"n_layer": 1})
