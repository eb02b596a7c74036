"""Where a dataset's splits come from: the synthetic world, local files, or the Hugging Face hub."""

from __future__ import annotations

from pathlib import Path

from morpheus_pl.data.chitchat import ChitchatConfig, chitchat_dir, write_chitchat_splits
from morpheus_pl.data.example import DataFormatError, DialogExample
from morpheus_pl.data.formats import read_examples, read_hf_dataset
from morpheus_pl.data.synthetic_world import PersonaWorld, WorldConfig, check_world_dataset
from morpheus_pl.digest import settings_digest
from morpheus_pl.errors import ConfigError


def world_dir(root: str | Path, world: dict) -> Path:
    """The folder of one synthetic world: its knobs' fingerprint names it."""
    return Path(root) / f"world-{settings_digest(world, 10)}"


def load_split(dataset: dict, split: str) -> list[DialogExample]:
    """Read one split as configured.

    source=world: generate the synthetic world under `root` (once) and read its JSON files.
    source=chitchat: convert the chitchat-dataset package under `root` (once), read the same way.
    source=files or hub with `root` set: read `root/files[split]` (paper JSON, CLV, ParlAI).
    source=hub without root: `datasets.load_dataset(hub_name, data_files=files)`.
    """
    name, source, root = dataset["name"], dataset["source"], dataset.get("root")
    files = dataset["files"]
    if split not in files:
        raise ConfigError(
            f"dataset {name!r} has no file for split {split!r} (dataset.files: {files})")
    if source == "world":
        if not root:
            raise ConfigError(f"dataset {name!r}: source=world needs dataset.root")
        check_world_dataset(dataset)
        folder = world_dir(root, dataset["world"])
        if not (folder / "world.json").exists():
            PersonaWorld(WorldConfig(**dataset["world"])).write(folder)
        where, examples = folder / files[split], read_examples(folder / files[split])
    elif source == "chitchat":
        if not root:
            raise ConfigError(f"dataset {name!r}: source=chitchat needs dataset.root")
        folder = chitchat_dir(root, dataset["chitchat"])
        if not (folder / "stats.json").exists():
            write_chitchat_splits(folder, ChitchatConfig(**dataset["chitchat"]))
        where, examples = folder / files[split], read_examples(folder / files[split])
    elif source in ("files", "hub") and root:
        where, examples = Path(root) / files[split], read_examples(Path(root) / files[split])
    elif source == "hub":
        where = f"{dataset['hub_name']} ({files[split]})"
        examples = read_hf_dataset(dataset["hub_name"], split, data_files={split: files[split]})
    else:
        raise ConfigError(f"dataset {name!r}: source must be 'world', 'chitchat', 'files' (with "
                          f"dataset.root) or 'hub', got {source!r}")
    if not examples:
        raise DataFormatError(f"{where}: no records in split {split!r} of dataset {name!r} "
                              f"(expected at least one dialogue record)")
    return examples
