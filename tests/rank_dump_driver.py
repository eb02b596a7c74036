"""`python rank_dump_driver.py OVERRIDES...`: morpheus_pl.run, with every rank writing its
codebook (codes, usage) to $CODEBOOK_DUMP/<stage>-rank<r>.pt when a stage is saved.

A script, not `python -m`, so that Lightning's DDP launcher re-runs it (with the patch) for
every further rank. Used by test_distributed.py.
"""

import os
from pathlib import Path

import hydra
import torch

from morpheus_pl import pipeline, run

_save = pipeline._save


def _dumping_save(trainer, module, path, stage, cfg, provenance=None):
    dump = Path(os.environ["CODEBOOK_DUMP"])
    dump.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()
             if k.startswith("codebook.")}
    torch.save(state, dump / f"{stage}-rank{trainer.global_rank}.pt")
    _save(trainer, module, path, stage, cfg, provenance)


if __name__ == "__main__":
    pipeline._save = _dumping_save
    hydra.main(version_base="1.3", config_path=run.CONFIG_DIR, config_name="config")(run.run)()
