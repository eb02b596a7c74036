"""Loggers: W&B goes offline by itself without a key, and its offline run holds the metrics,
the grouping and the tags; CSV stays the default."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from rich.console import Console

from morpheus_pl.loggers import build_loggers, print_config_tree, run_tags, wandb_offline


@pytest.fixture
def no_wandb_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))


def test_offline_auto_follows_key_and_mode(no_wandb_key, monkeypatch) -> None:
    assert wandb_offline("auto") is True
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_offline("auto") is False
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_offline("auto") is True
    assert wandb_offline(False) is False and wandb_offline(True) is True


def test_tags_name_the_settings(tiny_compose) -> None:
    cfg = tiny_compose("logger=wandb", "logger.tags=[ablation-wo-cl]", "codebook.beta=0.25")
    tags = run_tags(cfg, "joint")
    assert {"dataset=synthetic", "stage=joint", "N=8", "beta=0.25", "init=em", "seed=0",
            "ablation-wo-cl"} <= set(tags)


def test_csv_is_the_default(tiny_cfg) -> None:
    (logger,) = build_loggers(tiny_cfg, "joint")
    assert type(logger).__name__ == "CSVLogger"


def test_tensorboard_events_hold_the_losses(tiny_compose, tiny_data, tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from morpheus_pl.pipeline import train_stage

    dm, tok_dir = tiny_data
    out = tmp_path / "run"
    # 4 steps: a stage no other test trains (a trained one would be reused, and log nothing)
    cfg = tiny_compose("logger=tensorboard", "train.no_persona.max_steps=4",
                       "trainer.log_every_n_steps=1", f"paths.output={out}")
    train_stage(cfg, "no_persona", dm, tok_dir)
    (events,) = list((out / "tensorboard" / "no_persona").rglob("events.out.tfevents.*"))
    scalars = EventAccumulator(str(events.parent)).Reload()
    losses = scalars.Scalars("train/loss")
    assert [e.step for e in losses] == [0, 1, 2, 3] and all(e.value > 0 for e in losses)


def wandb_records(path: Path):
    """Records of a .wandb file: a 7-byte header, then LevelDB-log framed protobuf records
    (32 KiB blocks; each chunk: crc32 4 bytes, length 2, type 1 = full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_offline_wandb_run_holds_metrics_group_and_tags(no_wandb_key, tiny_compose, tiny_data,
                                                        tmp_path) -> None:
    from morpheus_pl.loggers import finish_wandb
    from morpheus_pl.pipeline import train_stage

    dm, tok_dir = tiny_data
    out = tmp_path / "run"
    cfg = tiny_compose("logger=wandb", "train.no_persona.max_steps=3", "trainer.log_every_n_steps=1",
                       f"paths.output={out}", "logger.tags=[unit-test]")
    train_stage(cfg, "no_persona", dm, tok_dir)
    finish_wandb()
    (run_file,) = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    second = tiny_compose("logger=wandb", "train.role_awareness.max_steps=2", f"paths.output={out}")
    train_stage(second, "role_awareness", dm, tok_dir)
    finish_wandb()
    assert len(list((out / "wandb").glob("offline-run-*/run-*.wandb"))) == 2  # one run per stage
    history, run = [], None
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                            for i in record.history.item})
        elif kind == "run":
            run = record.run
    losses = [h["train/loss"] for h in history if "train/loss" in h]
    assert len(losses) == 3 and all(v > 0 for v in losses)
    assert run.job_type == "no_persona" and run.run_group == "synthetic/model"
    assert {"stage=no_persona", "unit-test"} <= set(run.tags)
    assert any("train.no_persona" in item.key or item.key == "train" for item in run.config.update)


def test_the_config_tree_shows_every_section_resolved(tiny_compose) -> None:
    cfg = tiny_compose("codebook.N=7")
    console = Console(record=True, width=120)
    print_config_tree(cfg, console)
    text = console.export_text()
    assert all(f"── {key}" in text for key in cfg)
    assert "'N': 7" in text  # YAML quotes N (a boolean in YAML 1.1)
    assert "lr: 0.001" in text  # optim.lr: ${model.lr}, resolved
