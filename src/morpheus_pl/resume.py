"""Exact resumption of an interrupted stage from its last Lightning checkpoint.

Lightning restores weights, optimiser, scheduler and loop counters, but not two things that
decide what the next step computes: where the training data stood inside the epoch (a plain
DataLoader restarts the epoch in a fresh order) and the global random state (dropout, re-seeding
of dead codes). `ResumableDataLoader` and `RandomStateCheckpoint` save and restore those, so a
stage killed after a checkpoint and resumed ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

log = logging.getLogger("morpheus_pl")


class ResumableDataLoader(DataLoader):
    """A DataLoader that Lightning can resume mid-epoch (Lightning saves and restores every
    training loader that has `state_dict`/`load_state_dict`; torch's own has neither).

    Its order comes from its `generator` alone (pass one: shuffling and worker seeds then never
    touch the global random state). The state is the generator's state when the current epoch
    began plus the batches handed out since; restored, the next epoch replays that order and
    skips the batches already trained on (they are loaded and dropped: cheap next to a step).
    Under DDP, Lightning rebuilds this class around a DistributedSampler, whose order depends on
    the epoch only; the generator still seeds the workers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.generator is None:
            raise ValueError("ResumableDataLoader needs a generator= (its order must not come "
                             "from the global random state)")
        self._epoch_start = self.generator.get_state()
        self._served = 0
        self._restored: dict | None = None

    def __iter__(self) -> Iterator:
        skip = 0
        if self._restored is not None:
            self.generator.set_state(self._restored["epoch_start"])
            skip = self._restored["batches"]
            self._restored = None
        self._epoch_start = self.generator.get_state()
        self._served = skip
        batches = super().__iter__()
        for _ in range(skip):
            next(batches)
        return self._counted(batches)

    def _counted(self, batches: Iterator) -> Iterator:
        for batch in batches:
            self._served += 1
            yield batch

    def state_dict(self) -> dict:
        if self._served >= len(self):  # epoch finished: the next one starts where this ended
            return {"epoch_start": self.generator.get_state(), "batches": 0}
        return {"epoch_start": self._epoch_start, "batches": self._served}

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = state_dict


class RandomStateCheckpoint(L.Callback):
    """Keeps the global random states (torch, CUDA, numpy, Python) of every rank in every
    checkpoint and gives each rank its own back on resume. The ranks' states differ: they are
    seeded alike, but dropout on the CPU draws as many numbers as its tensor has elements, and
    the ranks' batches are padded to different lengths (with rank 0's states on every rank, a
    resumed 2-process DDP run left the uninterrupted one at its second step). Lightning's
    `_collect_rng_states` would keep numpy's key as a numpy array, which Lightning's own resume
    loading (`weights_only=True`) refuses, so it is stored as a tensor here."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict) -> None:
        # every rank builds the checkpoint (rank 0 writes it), so the gather reaches them all
        states = [_random_states()]
        if trainer.world_size > 1:
            states = [None] * trainer.world_size
            torch.distributed.all_gather_object(states, _random_states())
        checkpoint["rng_states"] = states

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states is None:
            return
        if isinstance(states, dict):  # checkpoints written before the states were per rank
            states = [states]
        if len(states) != trainer.world_size:
            log.warning("resuming with %d processes from a checkpoint of %d: the random states "
                        "cannot continue exactly; each rank takes rank 0's",
                        trainer.world_size, len(states))
        _set_random_states(states[trainer.global_rank if len(states) == trainer.world_size else 0])


def _random_states() -> dict:
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss),
    }


def _set_random_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    kind, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))


def training_loader(data, batch_size: int, collate_fn, seed: int, num_workers: int = 0
                    ) -> ResumableDataLoader:
    """The shuffled training loader of a stage, its order fixed by `seed`."""
    return ResumableDataLoader(data, batch_size=batch_size, shuffle=True, collate_fn=collate_fn,
                               num_workers=num_workers,
                               generator=torch.Generator().manual_seed(seed))
