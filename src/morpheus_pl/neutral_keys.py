"""Keys every option of a config group carries so that the options line up (`model=gpt2
model.dtype=bfloat16` composes as `model=smollm2_135m_offline model.dtype=...` does), set in
the options that do not use them to a neutral value: what the code does without the key.

A neutral key at its neutral value is left out of every fingerprint (stage checkpoints,
tokenizers, evaluations) and of the settings results.json records, so lining the groups up moved
no artifact of a configuration that did not have the key (tests/test_config_groups.py). A key
added later at the value that does what the code did without it is registered here too, so that
no existing run's artifacts move (the `predictor` options).
"""

from __future__ import annotations

NEUTRAL = {
    "model.gguf_file": None,                     # no GGUF file: weights as the folder holds them
    "model.dtype": None,                         # float32 (modules/decoder.py)
    "model.config_overrides": None,              # the pretrained config as it is
    "model.tokenizer.name_or_path": None,        # trained on the data (train_vocab_size)
    "model.tokenizer.gguf_file": None,
    "model.tokenizer.train_vocab_size": None,    # loaded from name_or_path
    "scorer.model.trust_remote_code": None,      # false
    "dataset.hub_name": None,                    # read by source=hub only
    "dataset.world": None,                       # source=world only
    "dataset.chitchat": None,                    # source=chitchat only
    "trainer.strategy": None,                    # Lightning's default (auto)
    "trainer.num_nodes": None,                   # Lightning's default (1)
    "trainer.fast_dev_run": False,               # Lightning's default
    "trainer.overfit_batches": 0.0,              # Lightning's default
    "predictor.reads": "last",                   # the paper's c: the history's last state
    "predictor.expected_top_k": None,            # read by predictor.decode=expected only
    "predictor.rescore_samples": 4,              # read by predictor.decode=rescored only
    "loss.predicted_prefix_schedule": "constant",  # the share from the first step
    "loss.predicted_prefix_grad": False,         # the predicted prefix is a constant to L_G
    "train.role_awareness.max_minutes": None,    # no wall-time cap
    "train.joint.max_minutes": None,
    "train.no_persona.max_minutes": None,
}


def is_neutral(path: str, value, absent: object = None) -> bool:
    """Whether the key at dotted `path` is a neutral key holding its neutral value (or the
    `absent` marker: a neutral key that is not there at all)."""
    if path not in NEUTRAL:
        return False
    return (absent is not None and value is absent) or _same(value, NEUTRAL[path])


def without_neutral(value, at: str):
    """`value`, the plain (resolved) config at dotted path `at`, without the neutral keys that
    hold their neutral value, at any depth; any other value is returned as it is."""
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        path = f"{at}.{key}"
        if is_neutral(path, item):
            continue
        kept[key] = without_neutral(item, path)
    return kept


def _same(value, neutral) -> bool:
    if neutral is None or value is None:
        return value is neutral
    return type(value) in (bool, int, float, str) and value == neutral
