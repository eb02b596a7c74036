"""Every option of a config group has the same keys, so an override valid with one option is
valid with the others (`model=gpt2 model.dtype=bfloat16` composes); an option that does not use
a key sets it to its neutral value (morpheus_pl/neutral_keys.py), which behaves, and hashes,
exactly as the key's absence did."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from morpheus_pl.data.prepare import tokenizer_dir
from morpheus_pl.handoff import STAGE_KEYS, fingerprint, run_settings
from morpheus_pl.neutral_keys import NEUTRAL
from morpheus_pl.pipeline import trainer_kwargs

from conftest import CONF_DIR

# Groups that are not alternatives for the same keys: `experiment`, `debug` and `hparams_search`
# override keys anywhere in the config (@package _global_), each its own; hydra/launcher
# configures Hydra.
NOT_ALIKE = {"experiment", "debug", "hparams_search", "hydra"}
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in NOT_ALIKE)
# Nodes compared by presence only, not by their inner keys (the exceptions):
OPAQUE = {
    # keyword arguments of the model type's transformers config class (AutoConfig.for_model):
    # GPT-2 names its sizes n_layer/n_embd, LLaMA num_hidden_layers/hidden_size; null: pretrained
    "model.architecture", "scorer.model.architecture",
    # keyword arguments of the baseline's peft config class (LoRA's r, prefix tuning's tokens)
    "peft.adapter",
    # one source's own settings (WorldConfig, ChitchatConfig), null in the other datasets
    "dataset.world", "dataset.chitchat",
}


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=["paths.root=/nonexistent/morpheus",
                                                        "paths.output=/nonexistent/out", *overrides])


def _keys(node, at: str) -> set[str]:
    keys = set()
    for key, value in node.items():
        path = f"{at}.{key}"
        keys.add(path)
        if isinstance(value, dict) and path not in OPAQUE:
            keys |= _keys(value, path)
    return keys


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_a_group_has_the_same_keys(group):
    # ablation configs are global (they also set e.g. codebook.init): their own node is compared
    keys = {option: _keys(OmegaConf.to_container(_compose(f"{group}={option}")[group]), group)
            for option in _options(group)}
    union = set().union(*keys.values())
    assert {option: sorted(union - k) for option, k in keys.items() if union - k} == {}


def test_a_key_of_one_option_can_be_overridden_with_any_other():
    assert _compose("model=gpt2", "model.dtype=bfloat16").model.dtype == "bfloat16"
    assert _compose("model=tiny", "model.gguf_file=x.gguf").model.gguf_file == "x.gguf"
    assert _compose("trainer=cpu", "trainer.strategy=ddp").trainer.strategy == "ddp"
    assert _compose("scorer=tiny", "scorer.model.trust_remote_code=false").scorer.model.trust_remote_code is False
    assert _compose("dataset=convai2", "dataset.hub_name=x/y").dataset.hub_name == "x/y"


def _neutral_in(cfg) -> list[str]:
    return [path for path, value in NEUTRAL.items()
            if OmegaConf.select(cfg, path, default="absent") == value]


def test_every_neutral_key_is_in_every_option_of_its_group():
    for path in NEUTRAL:
        group = path.split(".")[0]
        for option in _options(group):
            cfg = _compose(f"{group}={option}")
            assert OmegaConf.select(cfg, path, default="absent") != "absent", (path, option)


@pytest.mark.parametrize("overrides", [(), ("model=tiny_llama",), ("model=gpt2",),
                                       ("dataset=convai2", "dataset.root=/x"), ("trainer=gpu",)])
def test_a_neutral_key_hashes_as_its_absence(overrides):
    """Fingerprints, the evaluation's settings and the tokenizer folder with every neutral key
    at its neutral value are those of the configuration without these keys (before they were
    added), so no stage, tokenizer or evaluation already made is left behind."""
    cfg = _compose(*overrides)
    neutral = _neutral_in(cfg)
    assert neutral
    absent = _compose(*overrides)
    with open_dict(absent):
        for path in neutral:
            parent, _, key = path.rpartition(".")
            del OmegaConf.select(absent, parent)[key]
    assert {s: fingerprint(cfg, s) for s in STAGE_KEYS} == {s: fingerprint(absent, s) for s in STAGE_KEYS}
    assert run_settings(cfg) == run_settings(absent)
    assert tokenizer_dir(cfg) == tokenizer_dir(absent)


def test_a_set_neutral_key_changes_the_fingerprint():
    base = _compose()
    assert fingerprint(_compose("model.dtype=bfloat16"), "joint") != fingerprint(base, "joint")
    for debug in ("debug=fast_dev_run", "debug=overfit"):  # never reused by a real run
        cfg = _compose(debug)
        assert all(fingerprint(cfg, s) != fingerprint(base, s) for s in STAGE_KEYS), debug
        assert run_settings(cfg) != run_settings(base)


def test_null_trainer_keys_are_lightnings_defaults():
    kwargs = trainer_kwargs(_compose("trainer=cpu"))
    assert "strategy" not in kwargs and "num_nodes" not in kwargs
    assert kwargs["fast_dev_run"] is False and kwargs["overfit_batches"] == 0.0
    assert trainer_kwargs(_compose("trainer=ddp"))["strategy"] == "ddp"
