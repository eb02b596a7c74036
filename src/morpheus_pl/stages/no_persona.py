"""Baseline: the decoder fine-tuned on history -> response, no persona at all."""

from __future__ import annotations

from torch import Tensor

from morpheus_pl.modules.prefix_lm import prefix_lm_loss
from morpheus_pl.stages.base import PersonaDialogStage


class NoPersonaStage(PersonaDialogStage):
    """Plain causal-LM fine-tuning on the response tokens (the paper's GPT-2 baseline)."""

    uses_persona = False

    def losses(self, batch: dict) -> dict[str, Tensor]:
        return {"gen": prefix_lm_loss(self.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"])}
