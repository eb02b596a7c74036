"""Cache keys: `settings_digest` is the recipe every key used before it existed, byte for byte,
and the tiny config's stage fingerprints and folders are the ones computed before the helper
(by the code of commit c08752d), so no cached stage, evaluation, tokenizer or world goes stale."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from morpheus_pl.data.chitchat import ChitchatConfig, chitchat_dir
from morpheus_pl.data.prepare import tokenizer_dir
from morpheus_pl.data.sources import world_dir
from morpheus_pl.digest import settings_digest
from morpheus_pl.handoff import evaluation_dir, fingerprint

from conftest import compose_tiny

# a root that is never created: the scorer checkpoint under it does not exist
ROOT = "/nonexistent/morpheus_digest_pin"
SETTINGS = [
    {"b": 1, "a": [1, 2.5, None], "c": {"z": True, "y": "text"}},
    ["one", {"k": 2}],
    {"N": 8, "beta": 0.25, "path": "/tmp/x", "unicode": "naïve"},
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("length", [10, 12])
def test_the_helper_is_the_old_recipe(settings, length) -> None:
    old_strict = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:length]
    old_str = hashlib.sha1(
        json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:length]
    assert settings_digest(settings, length) == old_strict
    assert settings_digest(settings, length, default=str) == old_str


def test_pinned_digests() -> None:
    """Values the old recipe gave (computed once with hashlib and json alone)."""
    assert settings_digest(SETTINGS[0], 12) == "df2d0f4fab29"
    assert settings_digest(SETTINGS[2], 10, default=str) == "7945b1e1c0"


def test_default_str_writes_what_json_cannot_and_strict_refuses_it() -> None:
    settings = {"path": Path("/a/b")}
    old = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert settings_digest(settings, 12, default=str) == old
    with pytest.raises(TypeError):
        settings_digest(settings, 10)


def test_the_tiny_configs_keys_are_unchanged() -> None:
    # the pooling of commit c08752d's default: encoder.pooling=sif, the default since, is new;
    # so are the wall-time caps (null: none, hashed as their absence), the covering decoding and
    # the compare rows that came with it
    cfg = compose_tiny(ROOT, "encoder.pooling=last", "predictor.decode=top_m_distinct",
                       "eval.compare_decode=[argmax,sample]",
                       *(f"train.{stage}.max_minutes=null"
                         for stage in ("role_awareness", "joint", "no_persona")))
    assert {stage: fingerprint(cfg, stage) for stage in
            ("role_awareness", "codebook_init", "joint", "no_persona", "scorer")} == {
        "role_awareness": "6d91a164dcd0", "codebook_init": "8e60c3ec3ccf",
        "joint": "27d3108987f7", "no_persona": "c9ede6d992e7", "scorer": "3e61edea1960"}
    artifacts = Path(ROOT) / "artifacts"
    assert evaluation_dir(cfg) == artifacts / "evaluations" / "d6363707f952"
    assert tokenizer_dir(cfg) == artifacts / "tokenizers" / "6cdbe224c8d2"
    world = OmegaConf.to_container(cfg.dataset.world)
    assert world_dir(ROOT, world) == Path(ROOT) / "world-c59f27c971"
    chitchat = dataclasses.asdict(ChitchatConfig())
    assert chitchat_dir(ROOT, chitchat) == Path(ROOT) / "chitchat-a3bc32bec5"
