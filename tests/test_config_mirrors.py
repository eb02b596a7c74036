"""Defaults live in conf/: code that restates a YAML section's defaults (a dataclass built from
it, keyword defaults of a class built with `**section`) for use without Hydra restates them
exactly. WorldConfig's archetype strength had drifted to 0.8 against the YAML's 0.9 (what every
Hydra run, `make run` included, generates)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from morpheus_pl.data.chitchat import ChitchatConfig
from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.data.synthetic_world import WorldConfig
from morpheus_pl.generation import GenerationConfig
from morpheus_pl.modules.prefix_projector import PrefixProjector

from conftest import CONF_DIR


def _yaml(section: str, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(OmegaConf.select(cfg, section))


def _dataclass_defaults(cls) -> dict:
    return {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)}


def _keyword_defaults(cls) -> dict:
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize(("cls", "section", "overrides"), [
    (WorldConfig, "dataset.world", ("dataset=synthetic",)),
    (ChitchatConfig, "dataset.chitchat", ("dataset=chitchat",)),
    (GenerationConfig, "generation", ()),
])
def test_dataclass_defaults_are_the_yaml_defaults(cls, section, overrides):
    """Every field has the YAML's default (and the YAML has no key the dataclass lacks)."""
    assert _dataclass_defaults(cls) == _yaml(section, *overrides)


@pytest.mark.parametrize(("cls", "section"), [
    (PersonaDialogDataModule, "data"),
    (PrefixProjector, "projector"),
])
def test_keyword_defaults_are_the_yaml_defaults(cls, section):
    """Classes built with `**cfg.<section>`: each keyword of the section defaults to its value."""
    yaml = _yaml(section)
    defaults = _keyword_defaults(cls)
    assert set(yaml) <= set(defaults), set(yaml) - set(defaults)
    restated = {key: list(value) if isinstance(value, tuple) else value
                for key, value in defaults.items() if key in yaml}
    assert restated == yaml


def test_the_standalone_world_is_the_world_hydra_runs():
    assert WorldConfig() == WorldConfig(**_yaml("dataset.world", "dataset=synthetic"))
    assert WorldConfig().archetype_strength == 0.9
