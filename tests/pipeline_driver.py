"""`python pipeline_driver.py OVERRIDES...`: morpheus_pl.run with test probes, each on when its
environment variable is set:

  CODEBOOK_DUMP=DIR     every rank writes its codebook (codes, usage) to DIR/<stage>-rank<r>.pt
                        when a stage is saved (test_distributed.py)
  KILL_AT=STAGE:STEP    the process SIGKILLs itself after training step STEP of STAGE, as a
                        crash or a pre-empted job would end it (test_resume.py)
  CPU_FSDP=N            every stage trains under Lightning's FSDPStrategy with N CPU processes
                        (gloo) instead of `trainer.strategy` (test_distributed.py)

A script, not `python -m`, so that Lightning's DDP and FSDP launchers re-run it, probes included, for
every further rank.
"""

import os
import signal
from pathlib import Path

import hydra
import lightning as L
import lightning.pytorch.strategies.fsdp as lightning_fsdp
import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel, StateDictType
from torch.distributed.fsdp.api import FullOptimStateDictConfig

from morpheus_pl import pipeline, run
from morpheus_pl.distributed import whole_parameters

_save = pipeline._save

# The tiny joint-stage run the subprocess tests start from (conf/debug/tiny.yaml, with codebook
# re-seeding switched on); each adds its sizes and steps.
TINY_JOINT = [
    "debug=tiny", "stage=joint", "model.tokenizer.train_vocab_size=400", "codebook.usage_decay=0.5",
    "codebook.reseed_below=0.6", "trainer.log_every_n_steps=1",
]


def _dumping_save(trainer, module, path, stage, cfg, provenance=None, best=None):
    dump = Path(os.environ["CODEBOOK_DUMP"])
    dump.mkdir(parents=True, exist_ok=True)
    with whole_parameters(trainer):  # FSDP keeps only a shard of `codes` on each rank
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()
                 if k.startswith("codebook.")}
    torch.save(state, dump / f"{stage}-rank{trainer.global_rank}.pt")
    _save(trainer, module, path, stage, cfg, provenance, best=best)


class _KillAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _killing_trainer(cfg, stage, work_dir, max_steps, callbacks=()):
    kill_stage, step = os.environ["KILL_AT"].split(":")
    extra = [_KillAt(int(step))] if stage == kill_stage else []
    return _unkilled_trainer(cfg, stage, work_dir, max_steps, [*extra, *callbacks])


class _CpuFSDPStrategy(FSDPStrategy):
    """Lightning's FSDP with the CPU as FSDP's device. torch's FSDP shards, gathers and clips on
    CPUs with gloo, but Lightning refuses `strategy="fsdp"` without GPUs and gives FSDP no
    device there; this wraps the model as the parent does, with `device_id` the CPU."""

    def _setup_model(self, model):
        return FullyShardedDataParallel(module=model, cpu_offload=self.cpu_offload,
                                        mixed_precision=self.mixed_precision_config,
                                        sharding_strategy=self.sharding_strategy,
                                        device_id=torch.device("cpu"), **self.kwargs)


def _full_state_dict_in_place(module, world_size, rank0_only=True):
    """Lightning's full-state-dict context without `offload_to_cpu`, which on CPU devices
    segfaulted in FSDP's clone of the gathered tensors (torch 2.13)."""
    return FullyShardedDataParallel.state_dict_type(
        module=module, state_dict_type=StateDictType.FULL_STATE_DICT,
        state_dict_config=FullStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
        optim_state_dict_config=FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only))


def _fsdp_trainer(cfg, stage, work_dir, max_steps, callbacks=()):
    trainer_cfg = {**pipeline.trainer_kwargs(cfg), "accelerator": "cpu",
                   "devices": int(os.environ["CPU_FSDP"]), "strategy": _CpuFSDPStrategy()}
    return L.Trainer(max_steps=max_steps, default_root_dir=str(work_dir),
                     logger=pipeline.build_loggers(cfg, stage), callbacks=list(callbacks),
                     **trainer_cfg)


if __name__ == "__main__":
    if "CODEBOOK_DUMP" in os.environ:
        pipeline._save = _dumping_save
    if "CPU_FSDP" in os.environ:
        pipeline._trainer = _fsdp_trainer
        lightning_fsdp._get_full_state_dict_context = _full_state_dict_in_place
    if "KILL_AT" in os.environ:
        _unkilled_trainer = pipeline._trainer
        pipeline._trainer = _killing_trainer
    hydra.main(version_base="1.3", config_path=run.CONFIG_DIR, config_name="config")(run.run)()
