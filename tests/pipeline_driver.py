"""`python pipeline_driver.py OVERRIDES...`: morpheus_pl.run with two test probes, each on when
its environment variable is set:

  CODEBOOK_DUMP=DIR     every rank writes its codebook (codes, usage) to DIR/<stage>-rank<r>.pt
                        when a stage is saved (test_distributed.py)
  KILL_AT=STAGE:STEP    the process SIGKILLs itself after training step STEP of STAGE, as a
                        crash or a pre-empted job would end it (test_resume.py)

A script, not `python -m`, so that Lightning's DDP launcher re-runs it, probes included, for
every further rank.
"""

import os
import signal
from pathlib import Path

import hydra
import lightning as L
import torch

from morpheus_pl import pipeline, run

_save, _trainer = pipeline._save, pipeline._trainer

# The tiny joint-stage run both subprocess tests start from; each adds its sizes and steps.
TINY_JOINT = [
    "stage=joint", "model.architecture.n_layer=2", "model.architecture.n_embd=32",
    "model.architecture.n_head=2", "model.tokenizer.train_vocab_size=400", "codebook.N=8",
    "dataset.world.val_roles=5", "dataset.world.test_roles=8", "codebook.usage_decay=0.5",
    "codebook.reseed_below=0.6", "trainer.log_every_n_steps=1",
]


def _dumping_save(trainer, module, path, stage, cfg, provenance=None):
    dump = Path(os.environ["CODEBOOK_DUMP"])
    dump.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()
             if k.startswith("codebook.")}
    torch.save(state, dump / f"{stage}-rank{trainer.global_rank}.pt")
    _save(trainer, module, path, stage, cfg, provenance)


class _KillAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _killing_trainer(cfg, stage, work_dir, max_steps, callbacks=()):
    kill_stage, step = os.environ["KILL_AT"].split(":")
    extra = [_KillAt(int(step))] if stage == kill_stage else []
    return _trainer(cfg, stage, work_dir, max_steps, [*extra, *callbacks])


if __name__ == "__main__":
    if "CODEBOOK_DUMP" in os.environ:
        pipeline._save = _dumping_save
    if "KILL_AT" in os.environ:
        pipeline._trainer = _killing_trainer
    hydra.main(version_base="1.3", config_path=run.CONFIG_DIR, config_name="config")(run.run)()
