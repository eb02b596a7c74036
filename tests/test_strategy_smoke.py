"""`experiments/strategy_smoke.sh` on the CPU: DDP (gloo, one process) trains stages 1 -> 2 -> 3
and the script reports it; FSDP, which needs GPUs, fails clearly (a user error, exit status 2)
and makes the script fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline_driver import TINY_JOINT

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "strategy_smoke.sh"
TINY = [o for o in TINY_JOINT if not o.startswith("stage=")] + [
    "train.role_awareness.max_steps=3", "train.joint.max_steps=3", "trainer.accelerator=cpu",
    "trainer.devices=1"]


def _smoke(tmp_path: Path, strategies: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PY": sys.executable, "STRATEGIES": strategies,
           "SMOKE_DIR": str(tmp_path)}
    return subprocess.run(["bash", str(SCRIPT), *TINY], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)


def test_smoke_script_trains_every_stage_under_ddp_and_flags_a_failing_strategy(tmp_path):
    proc = _smoke(tmp_path, "ddp fsdp")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ddp: exit 0")
    stages = {Path(line.strip()).parts[-3] for line in lines if line.strip().endswith("model.ckpt")}
    assert stages == {"role_awareness", "codebook_init", "joint"}
    fsdp = next(line for line in lines if line.startswith("fsdp:"))
    assert fsdp.startswith("fsdp: exit 2")  # a user error: one line, exit status 2
    assert "trainer=fsdp needs GPUs" in proc.stdout
