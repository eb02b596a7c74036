"""Stage 1, role awareness (Eq. 2): the true persona as a prefix, response NLL."""

from __future__ import annotations

from torch import Tensor

from morpheus_pl.modules.prefix_lm import prefix_lm_loss
from morpheus_pl.stages.base import PersonaDialogStage


class RoleAwarenessStage(PersonaDialogStage):
    """Encode the true persona segments, project them to a prefix, fine-tune the decoder.

    Also the `true_persona` upper-bound system at evaluation (history + true persona prefix).
    """

    def losses(self, batch: dict) -> dict[str, Tensor]:
        kv = self.projector(self.persona_vectors(batch))
        return {"gen": prefix_lm_loss(self.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"], kv)}
