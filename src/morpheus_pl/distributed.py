"""What the processes of one distributed run agree on, in and out of a Trainer.

Lightning launches the ranks (DDP re-runs this script with LOCAL_RANK set; SLURM or torchrun
start them all at once) and owns the collectives; code here only uses them. Outside a Trainer
there is no process group yet, so the ranks coordinate through the shared file system: rank 0
prepares shared files and takes the stage locks, the other ranks wait for what it decided.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import lightning as L
import torch
from filelock import FileLock, Timeout
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig
from torch import Tensor

log = logging.getLogger("morpheus_pl")
POLL_SECONDS = 1.0


def global_rank() -> int:
    """This process's rank: set by the Trainer once one ran, else read by Lightning from the
    launcher's environment (RANK, LOCAL_RANK, SLURM_PROCID)."""
    return int(rank_zero_only.rank)


def run_id(cfg: DictConfig) -> str:
    """The same string on every rank of one run, different between runs: the output folder and
    the launcher's job id (SLURM, torchrun), or an id that rank 0 puts into the environment,
    which Lightning copies to the ranks it launches."""
    job = (os.environ.get("SLURM_JOB_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
           or os.environ.setdefault("MORPHEUS_RUN_ID", uuid.uuid4().hex))
    return f"{Path(cfg.paths.output).resolve()}|{job}"


def wait_for(ready, what: str) -> None:
    """Poll `ready()` until it is true (a rank > 0 waiting for a file rank 0 writes)."""
    if ready():
        return
    log.info("rank %d: waiting for %s", global_rank(), what)
    while not ready():
        time.sleep(POLL_SECONDS)


@contextmanager
def training_lock(path: Path, run: str) -> Iterator[None]:
    """One run at a time trains the checkpoint `path`: parallel sweep members that need the same
    stage wait for it and then reuse it.

    Rank 0 takes a file lock and records its run in `train.owner`; the other ranks of the same
    run take no lock (rank 0 holds it for them) but wait until `path` exists or their own rank 0
    owns it, so that every rank then makes the same train-or-reuse decision.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = path.parent / "train.owner"
    if global_rank() > 0:
        wait_for(lambda: path.exists() or (owner.exists() and owner.read_text() == run),
                 f"rank 0 to take the lock of {path}")
        yield
        return
    lock = FileLock(str(path.parent / "train.lock"))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        log.info("waiting for another process that trains %s", path)
        lock.acquire()
    try:
        owner.write_text(run)
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def gather_in_dataset_order(module: L.LightningModule, index: Tensor, *rows: Tensor
                            ) -> tuple[Tensor, ...]:
    """Rows that each rank computed for its shard of a dataset, gathered from every rank (with
    the module's strategy: `LightningModule.all_gather`) and put back into dataset order.

    `index` (n,) holds each row's position in the dataset. Ranks may hold different numbers of
    rows (Lightning's predict sampler does not repeat samples) and a DistributedSampler repeats
    some to even out the shards; all_gather needs equal shapes, so the shards are padded to the
    longest first, and a repeated index keeps its first row. The result is identical on every
    rank and equals what one process computes over the whole dataset.
    """
    count = torch.tensor([index.shape[0]], device=index.device)
    longest = int(module.all_gather(count).max())

    def padded(t: Tensor) -> Tensor:
        fill = t.new_zeros((longest - t.shape[0], *t.shape[1:]))
        return module.all_gather(torch.cat([t, fill])).reshape(-1, *t.shape[1:])

    valid = padded(torch.ones_like(index)) > 0
    index = padded(index)
    order = torch.argsort(torch.where(valid, index, index.max() + 1), stable=True)
    index, valid = index[order], valid[order]
    first = valid & torch.cat([valid[:1], index[1:] != index[:-1]])
    keep = order[first]
    return (index[first], *(padded(t)[keep] for t in rows))


def whole_parameters(trainer: L.Trainer | None) -> AbstractContextManager:
    """Inside: the module's parameters whole on every rank, written back to the shards on exit.

    Under FSDP each rank holds a flat shard of every parameter outside a forward pass (after
    `trainer.predict` too), so a parameter set by hand must be set inside FSDP's
    `summon_full_params`. Other strategies keep parameters whole: nothing to do.
    """
    if trainer is None or not isinstance(trainer.strategy, FSDPStrategy):
        return nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(trainer.strategy.model, writeback=True)
