"""A stage killed mid-run (SIGKILL after its last checkpoint, mid-epoch) and run again resumes
from `resume/last.ckpt` and ends with exactly the weights, codebook and logged losses of a run
that was never interrupted (fixed seed, CPU; one process, and two under DDP and FSDP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline_driver import TINY_JOINT

DRIVER = Path(__file__).with_name("pipeline_driver.py")
# 40 training examples (batch 8 in one process, 4 on each of two: 5 steps an epoch);
# checkpoints at steps 3 and 6
TINY = [*TINY_JOINT, "dataset.world.train_roles=40", "train.role_awareness.max_steps=2",
        "train.joint.max_steps=8", "train.checkpoint_every_n_steps=3"]


def _run(root: Path, out: str, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MORPHEUS_HOME": str(root), **env}
    cmd = [sys.executable, str(DRIVER), *TINY, *overrides, f"hydra.run.dir={root / out}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, timeout=300)


def _losses(root: Path, out: str) -> dict[int, float]:
    """train/loss per step from the CSV logger of the joint stage."""
    lines = next((root / out / "logs" / "joint").glob("*/metrics.csv")).read_text().splitlines()
    header = lines[0].split(",")
    step, loss = header.index("step"), header.index("train/loss")
    rows = [line.split(",") for line in lines[1:]]
    return {int(r[step]): float(r[loss]) for r in rows if r[loss]}


def _assert_resume_is_exact(root: Path, *overrides: str, **env: str) -> None:
    assert _run(root, "out_whole", *overrides, **env).returncode == 0  # stages 1-3 unbroken
    whole = next((root / "artifacts" / "stages" / "joint").glob("*/model.ckpt"))
    killed = root / "killed_joint" / "model.ckpt"  # the same stages 1-2, stage 3 anew here
    proc = _run(root, "out_killed", *overrides, f"checkpoints.joint={killed}", KILL_AT="joint:5",
                **env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]  # after step 5 of 8
    resume = killed.parent / "resume" / "last.ckpt"
    assert torch.load(resume, weights_only=False)["global_step"] == 3  # mid-epoch 0
    assert [p.name for p in resume.parent.iterdir()] == ["last.ckpt"]  # no second copy
    assert not killed.exists()

    proc = _run(root, "out_resumed", *overrides, f"checkpoints.joint={killed}", **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Restored all states from the checkpoint" in proc.stderr + proc.stdout

    expected = torch.load(whole, weights_only=True)["state_dict"]
    resumed = torch.load(killed, weights_only=True)["state_dict"]
    assert resumed.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(resumed[name], value), name
    after = _losses(root, "out_resumed")
    assert min(after) == 3  # steps 4..8, logged at 0-based steps 3..7
    reference = _losses(root, "out_whole")
    assert after == {step: reference[step] for step in after}


@pytest.mark.slow
def test_killed_joint_stage_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    _assert_resume_is_exact(tmp_path, "data.batch_size=8")


@pytest.mark.slow
def test_killed_ddp_joint_stage_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """Two processes (gloo), 20 examples each. Both ranks kill themselves
    after step 5; each must get back its own random state (dropout on the CPU draws as many
    numbers as its tensor has elements, and the ranks pad their batches differently)."""
    _assert_resume_is_exact(tmp_path, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                            "data.batch_size=4")


@pytest.mark.slow
def test_killed_fsdp_joint_stage_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """The same under FSDP on two CPU processes (`CPU_FSDP` in pipeline_driver.py): the resume
    checkpoint holds the gathered weights and optimiser state, and loading re-shards them."""
    _assert_resume_is_exact(tmp_path, "data.batch_size=4", CPU_FSDP="2")
