"""Progress lines in the run log (morpheus_pl.progress)."""

from __future__ import annotations

import logging
import re

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from morpheus_pl.progress import ProgressLog, duration


class _Regression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path, callback: ProgressLog, max_steps: int, accumulate: int = 1,
         extra=()) -> None:
    data = TensorDataset(torch.randn(64, 2), torch.randn(64, 1))
    trainer = L.Trainer(max_steps=max_steps, accumulate_grad_batches=accumulate, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path),
                        callbacks=[callback, *extra])
    trainer.fit(_Regression(), DataLoader(data, batch_size=4))


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "morpheus_pl"]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_one_line_every_n_optimiser_steps_and_one_at_the_end(tmp_path, caplog, accumulate):
    with caplog.at_level(logging.INFO, logger="morpheus_pl"):
        _fit(tmp_path, ProgressLog("role_awareness", every_n_steps=3), max_steps=9,
             accumulate=accumulate)
    lines = _lines(caplog)
    steps = [int(m.group(1)) for line in lines if (m := re.search(r"step (\d+)/9,", line))]
    assert steps == [3, 6]  # once per optimiser step, also when batches are accumulated; the
    # last step (9) gets the closing line instead
    assert re.fullmatch(r"role_awareness: step 3/9, train/loss \d+\.\d{4}, \d+\.\d\d steps/s, "
                        r"about \d+ s left", lines[0])
    assert lines[-1].startswith("role_awareness: trained 9 steps in ")


def test_zero_turns_it_off_and_negative_is_refused(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="morpheus_pl"):
        _fit(tmp_path, ProgressLog("joint", every_n_steps=0), max_steps=4)
    assert _lines(caplog) == []
    with pytest.raises(ValueError, match="train.progress_every_n_steps must be >= 0, got -1"):
        ProgressLog("joint", every_n_steps=-1)


def test_duration_units():
    assert [duration(s) for s in (42, 450, 8280)] == ["42 s", "7.5 min", "2.3 h"]


def test_time_left_comes_from_the_steps_since_the_previous_line(tmp_path, caplog, monkeypatch):
    """A clock that gives 10 s per step up to step 3, then 1 s: the estimate at step 6 is 3 steps
    at 1 s (a mean since the start would say 5.5 s per step: 16 s)."""
    clock = iter([0.0, 30.0, 33.0] + [34.0] * 10)
    monkeypatch.setattr("morpheus_pl.progress.time.monotonic", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="morpheus_pl"):
        _fit(tmp_path, ProgressLog("joint", every_n_steps=3), max_steps=9)
    lines = _lines(caplog)
    assert "0.10 steps/s, about 1.0 min left" in lines[0]
    assert "1.00 steps/s, about 3 s left" in lines[1]


def test_with_early_stopping_the_time_left_is_an_upper_bound(tmp_path, caplog):
    from lightning.pytorch.callbacks import EarlyStopping

    with caplog.at_level(logging.INFO, logger="morpheus_pl"):
        _fit(tmp_path, ProgressLog("joint", every_n_steps=3), max_steps=9,
             extra=[EarlyStopping(monitor="train/loss", patience=2)])
    assert re.search(r"at most \d+ s left \(early stopping\)$", _lines(caplog)[0])


def test_a_wall_time_cap_nearer_than_the_last_step_gives_the_time_left(tmp_path, caplog):
    """Steps of >= 50 ms, 1,000 of them (>= 50 s) under a 1 s cap: the time left is the cap's."""
    import time
    from datetime import timedelta

    class _Slow(_Regression):
        def training_step(self, batch, batch_idx):
            time.sleep(0.05)
            return super().training_step(batch, batch_idx)

    data = TensorDataset(torch.randn(64, 2), torch.randn(64, 1))
    trainer = L.Trainer(max_steps=1000, max_time=timedelta(seconds=1), logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path),
                        callbacks=[ProgressLog("joint", every_n_steps=3)])
    with caplog.at_level(logging.INFO, logger="morpheus_pl"):
        trainer.fit(_Slow(), DataLoader(data, batch_size=4))
    assert trainer.global_step < 1000
    assert re.search(r", about [01] s left \(wall-time cap\)$", _lines(caplog)[0])
