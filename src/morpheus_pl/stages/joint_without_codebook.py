"""Table 4's "w/o PC": the joint stage with the persona codebook removed.

Without a codebook nothing can turn the history into a persona prefix, so VQ, code prediction
and the contrastive loss go with it: the role-aware stage-1 model is trained on L_G from the
history alone, for as many steps as joint training, and generates from the history alone (the
paper: the model "regresses to a basic GPT-2"). It keeps stage 1's persona encoder and
projector unused, so stage-1 checkpoints load into it strictly.
"""

from __future__ import annotations

from torch import Tensor

from morpheus_pl.modules.prefix_lm import prefix_lm_loss
from morpheus_pl.stages.base import PersonaDialogStage


class JointWithoutCodebookStage(PersonaDialogStage):
    """Stage-1 model fine-tuned on history -> response with no prefix."""

    def generation_prefix(self, batch: dict) -> None:
        return None

    def losses(self, batch: dict) -> dict[str, Tensor]:
        return {"gen": prefix_lm_loss(self.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"])}
