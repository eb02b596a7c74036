"""Rank handling outside a Trainer (morpheus_pl.distributed) and the distributed trainer configs."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from morpheus_pl.config_checks import check_strategy
from morpheus_pl.distributed import training_lock


def test_rank_above_zero_waits_until_its_rank_0_owns_the_lock(tmp_path, monkeypatch) -> None:
    path = tmp_path / "stage" / "model.ckpt"
    path.parent.mkdir()
    owner = path.parent / "train.owner"
    owner.write_text("another run")  # e.g. a parallel sweep member training this stage
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    threading.Timer(0.5, lambda: owner.write_text("this run")).start()
    started = time.perf_counter()
    with training_lock(path, "this run"):
        waited = time.perf_counter() - started
    assert waited > 0.4
    assert owner.read_text() == "this run"  # rank > 0 neither takes nor clears the lock


def test_rank_zero_records_and_clears_its_ownership(tmp_path) -> None:
    path = tmp_path / "stage" / "model.ckpt"
    with training_lock(path, "this run"):
        assert (path.parent / "train.owner").read_text() == "this run"
    assert not (path.parent / "train.owner").exists()


def test_ddp_config_builds_a_two_process_cpu_trainer(tiny_compose) -> None:
    cfg = tiny_compose("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")
    trainer = L.Trainer(**cfg.trainer, logger=False)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.world_size == 2 and trainer.strategy.root_device.type == "cpu"


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed installed")
def test_deepspeed_without_the_package_fails_at_once(tiny_compose) -> None:
    with pytest.raises(ImportError, match="pip install deepspeed"):
        check_strategy(tiny_compose("trainer=deepspeed").trainer)


def test_fsdp_on_cpus_fails_at_once(tiny_compose) -> None:
    with pytest.raises(ValueError, match="needs GPUs"):
        check_strategy(tiny_compose("trainer=fsdp", "trainer.accelerator=cpu").trainer)


def test_slurm_preset_sizes_the_job_from_the_trainer() -> None:
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = compose("config", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm_ddp", "trainer=ddp", "trainer.num_nodes=2", "trainer.devices=4"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
