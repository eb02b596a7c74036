"""Shared fixtures: tiny decoders (GPT-2 and grouped-query LLaMA), a tiny tokenizer, and a tiny
MORPHEUS configuration composed through the real Hydra config with its prepared data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"

# conf/debug/tiny.yaml (2-layer GPT-2 at width 32, N=8, a 40/5/8-role world, a few steps per
# stage), at batch size 4
TINY_OVERRIDES = ("debug=tiny", "data.batch_size=4")
# debug=tiny's GPT-2 sizes, removed when a test picks another model (it brings its own sizes)
TINY_GPT2_SIZES = ("n_layer", "n_embd", "n_head")

SENTENCES = [
    "i enjoy hiking in the mountains.",
    "i work as a bank teller.",
    "my favourite food is pizza and pasta.",
    "hi , how are you today ?",
    "i am doing well , thanks for asking .",
    "do you have any pets at home ?",
    "yes , i have two cats and a dog .",
]


def compose_tiny(root: str | Path, *extra: str):
    """The project's config shrunk to a tiny model and world, artifacts under `root`. Another
    `model=` in `extra` drops the tiny GPT-2's sizes (it brings its own)."""
    from hydra import compose, initialize_config_dir

    other_model = any(e.startswith("model=") for e in extra)
    drop = [f"~model.architecture.{key}" for key in TINY_GPT2_SIZES] if other_model else []
    overrides = [*TINY_OVERRIDES, f"paths.root={root}", f"paths.output={Path(root) / 'out'}",
                 *extra, *drop]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("morpheus_tiny")


@pytest.fixture(scope="session")
def tiny_compose(tiny_root):
    """`tiny_compose(*overrides)`: `tiny_cfg` with extra Hydra overrides (same artifacts root)."""
    return lambda *extra: compose_tiny(tiny_root, *extra)


@pytest.fixture(scope="session")
def tiny_cfg(tiny_root):
    """Composed Hydra config: 2-layer GPT-2 (n_embd 32), N=8, a 40/5/8-role synthetic world."""
    return compose_tiny(tiny_root)


@pytest.fixture(scope="session")
def tiny_data(tiny_cfg):
    """(datamodule, tokenizer_dir) from `morpheus_pl.data.prepare.prepare_data` on `tiny_cfg`."""
    from morpheus_pl.data.prepare import prepare_data

    return prepare_data(tiny_cfg)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A small byte-level BPE tokenizer trained on a few sentences."""
    from morpheus_pl.modules.decoder import train_tokenizer

    return train_tokenizer(SENTENCES, vocab_size=300, out_dir=tmp_path_factory.mktemp("tok"))


def _gpt2_config(vocab_size: int):
    from transformers import GPT2Config

    return GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=128, vocab_size=vocab_size,
                      bos_token_id=0, eos_token_id=0, pad_token_id=1)


def _llama_config(vocab_size: int):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=64, num_hidden_layers=2, max_position_embeddings=128,
                       vocab_size=vocab_size, bos_token_id=0, eos_token_id=0, pad_token_id=1)


TINY_ARCHS = {"gpt2": _gpt2_config, "llama_gqa": _llama_config}


@pytest.fixture(params=sorted(TINY_ARCHS))
def tiny_decoder(request, tiny_tokenizer):
    """A random-weight 2-layer decoder (GPT-2, or LLaMA with 4 heads / 2 KV heads), eval mode."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = TINY_ARCHS[request.param](len(tiny_tokenizer))
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="session")
def tiny_joint(tiny_compose, tiny_data):
    """(cfg, datamodule, tokenizer_dir) of `tiny_cfg` with its joint stage trained (and the
    stages it builds on): a tiny trained MORPHEUS."""
    from morpheus_pl.pipeline import train_stage

    cfg = tiny_compose()
    dm, tok_dir = tiny_data
    train_stage(cfg, "joint", dm, tok_dir)
    return cfg, dm, tok_dir


@pytest.fixture(scope="session")
def tiny_bundle(tiny_joint, tiny_compose, tmp_path_factory) -> Path:
    """The model bundle of `tiny_joint` (stage=export's function)."""
    from morpheus_pl.export import export_bundle

    _, dm, tok_dir = tiny_joint
    out = tmp_path_factory.mktemp("bundle") / "model"
    return export_bundle(tiny_compose(f"export.dir={out}"), dm, tok_dir)


@pytest.fixture
def prefix_stage(tiny_cfg, tiny_data):
    """A fresh tiny JointTrainingStage (random weights, seeded), in eval mode, its projector's
    output layer scaled up so that the prefix clearly matters for the random tiny decoder's
    greedy choices."""
    from morpheus_pl.pipeline import build_stage

    module = build_stage(tiny_cfg, "joint", tiny_data[1]).eval()
    with torch.no_grad():
        module.projector.mlp[-1].weight.mul_(20.0)
        module.projector.mlp[-1].bias.mul_(20.0)
    return module


@pytest.fixture
def tiny_test_batch(tiny_data):
    """The first batch of the tiny data's test split."""
    return next(iter(tiny_data[0].test_dataloader()))
