"""The pipeline in one table: every training stage, the LightningModule that trains it, the stage
it starts from, the parameters it adds, the settings its fingerprint hashes and the evaluated
systems that use its checkpoint. pipeline.py (build, train, hand on), handoff.py (fingerprints)
and evaluation_stage.py (systems) read it; adding a stage is one row and one class
(docs/design.md, "Where to change things").

Table 4's ablations act on it through two switches: `ablation.<switch>=false` removes the stage
`REMOVED_BY[switch]` from the chain (a stage that started from it starts from where it started),
and a row's `replaced_when_off` swaps its module (w/o PC: joint training without a codebook).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lightning import LightningModule
from omegaconf import DictConfig

from morpheus_pl.stages.codebook_init import CodebookInitStage
from morpheus_pl.stages.joint import JointTrainingStage
from morpheus_pl.stages.joint_without_codebook import JointWithoutCodebookStage
from morpheus_pl.stages.no_persona import NoPersonaStage
from morpheus_pl.stages.role_awareness import RoleAwarenessStage

# Lightning's debugging switches (conf/debug/) change what a stage trains on: hashed when set
# (neutral_keys.py leaves them out when off), so a real run never reuses a debug run's stage
DEBUG_SETTINGS = ("trainer.fast_dev_run", "trainer.overfit_batches")
_SHARED = ("dataset", "model", "data", "optim", "seed", "peft.lr", "train.val_every_n_steps",
           "train.early_stopping", *DEBUG_SETTINGS)
_PERSONA = (*_SHARED, "encoder", "projector", "peft.freeze_decoder")
_ROLE_AWARENESS = (*_PERSONA, "loss.weights.segment", "train.role_awareness")
_AFTER_RA = (*_ROLE_AWARENESS, "ablation.role_awareness")


@dataclass(frozen=True)
class StageRow:
    """One training stage. `settings`: the config keys its fingerprint hashes (as a rule those
    of the stage it starts from plus its own; an ablation's label is not one, only what changes
    the training is). `new_parts`: parameter-name prefixes its starting checkpoint lacks."""

    module: type[LightningModule]
    starts_from: str | None
    settings: tuple[str, ...]
    new_parts: tuple[str, ...] = ()
    systems: tuple[str, ...] = ()
    replaced_when_off: dict[str, type[LightningModule]] = field(default_factory=dict)


STAGES: dict[str, StageRow] = {
    "role_awareness": StageRow(RoleAwarenessStage, None, _ROLE_AWARENESS,
                               systems=("true_persona",)),
    "codebook_init": StageRow(CodebookInitStage, "role_awareness", (*_AFTER_RA, "codebook"),
                              new_parts=("codebook.",)),
    "joint": StageRow(JointTrainingStage, "codebook_init",
                      (*_AFTER_RA, "codebook", "ablation.persona_codebook", "predictor", "loss",
                       "train.joint"),
                      new_parts=("predictor.",), systems=("morpheus", "oracle_codes"),
                      replaced_when_off={"persona_codebook": JointWithoutCodebookStage}),
    "no_persona": StageRow(NoPersonaStage, None,
                           (*_SHARED, "peft.baseline", "peft.adapter", "train.no_persona"),
                           systems=("no_persona",)),
}
# ablation.<switch>=false: the stage it removes from the chain
REMOVED_BY = {"role_awareness": "role_awareness", "persona_codebook": "codebook_init"}
SCORER_SETTINGS = ("dataset", "scorer", "seed", *DEBUG_SETTINGS)
SYSTEM_STAGES = {system: name for name, row in STAGES.items() for system in row.systems}


def _removed(cfg: DictConfig) -> set[str]:
    return {stage for switch, stage in REMOVED_BY.items() if not cfg.ablation[switch]}


def starts_from(cfg: DictConfig, stage: str) -> str | None:
    """The stage whose checkpoint `stage` starts from (None: from the un-trained decoder).

    role awareness -> codebook init -> joint; w/o RA starts the codebook init from the
    un-role-aware decoder, w/o PC starts joint training from stage 1 (no codebook to initialise).
    """
    removed = _removed(cfg)
    previous = STAGES[stage].starts_from
    while previous in removed:
        previous = STAGES[previous].starts_from
    return previous


def stage_module(cfg: DictConfig, stage: str) -> type[LightningModule]:
    """The LightningModule class that trains `stage` under the configured ablation."""
    row = STAGES[stage]
    for switch, module in row.replaced_when_off.items():
        if not cfg.ablation[switch]:
            return module
    return row.module
