"""Progress lines in the run log, for runs without a terminal (SLURM, nohup, CI).

Lightning's progress bars draw on a terminal: Rich's draws nothing into a file and tqdm's writes
carriage-return frames, so a cluster job's log said nothing between a stage's start and its
end. `ProgressLog` writes one line through the `morpheus_pl` logger (stderr and the run's
run.log) every `every_n_steps` optimiser steps, from rank 0: step, training loss, speed and an
estimate of the time left; and one line when the stage's training ends. Speed and time left come
from the steps since the previous line, so a machine that was busy earlier does not skew them.
"""

from __future__ import annotations

import logging
import math
import time

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping

from morpheus_pl.convergence import wall_timer
from morpheus_pl.errors import ConfigError

log = logging.getLogger("morpheus_pl")


def duration(seconds: float) -> str:
    """'42 s', '7.5 min' or '2.3 h'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressLog(L.Callback):
    """Log `stage: step k/K, train/loss x, r steps/s, about t left` every `every_n_steps`
    optimiser steps (0: never); `at most t left` when early stopping may end the stage sooner;
    the time left is the wall-time cap's when that comes first.
    Speed counts the steps of this process since its previous line (a resumed stage's estimate
    is not inflated by the steps restored from its checkpoint)."""

    def __init__(self, stage: str, every_n_steps: int) -> None:
        if every_n_steps < 0:
            raise ConfigError(f"train.progress_every_n_steps must be >= 0, got {every_n_steps}")
        self.stage, self.every_n_steps = stage, every_n_steps
        self._start_time = self._last_time = 0.0
        self._start_step = self._last_logged = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_time = self._last_time = time.monotonic()
        self._start_step = self._last_logged = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        step = trainer.global_step  # optimiser steps: the same for every accumulated batch
        if (not self.every_n_steps or not trainer.is_global_zero or step == self._last_logged
                or step % self.every_n_steps or step == trainer.max_steps):
            return  # the last step gets the line of `on_train_end`
        now = time.monotonic()
        rate = (step - self._last_logged) / max(now - self._last_time, 1e-9)
        self._last_logged, self._last_time = step, now
        parts = [f"step {step}/{trainer.max_steps}" if trainer.max_steps > 0 else f"step {step}"]
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None and math.isfinite(float(loss)):
            parts.append(f"train/loss {float(loss):.4f}")
        parts.append(f"{rate:.2f} steps/s")
        if trainer.max_steps > 0:
            early = any(isinstance(cb, EarlyStopping) for cb in trainer.callbacks)
            seconds = (trainer.max_steps - step) / rate
            timer = wall_timer(trainer)
            capped = timer.time_remaining() if timer is not None else None
            if capped is not None and capped < seconds:
                parts.append(f"about {duration(max(capped, 0.0))} left (wall-time cap)")
            else:
                left = duration(seconds)
                parts.append(f"at most {left} left (early stopping)" if early else f"about {left} left")
        log.info("%s: %s", self.stage, ", ".join(parts))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_steps and trainer.is_global_zero:
            log.info("%s: trained %d steps in %s", self.stage, trainer.global_step - self._start_step,
                     duration(time.monotonic() - self._start_time))
