"""Stage 1, role awareness (Eq. 2): the true persona as a prefix, response NLL; with
`loss.weights.segment > 0` also the segment reconstruction loss (modules/segment_reconstruction.py)."""

from __future__ import annotations

from torch import Tensor

from morpheus_pl.modules.prefix_lm import prefix_lm_loss
from morpheus_pl.modules.segment_reconstruction import segment_reconstruction_loss
from morpheus_pl.stages.base import PersonaDialogStage
from morpheus_pl.stages.persona_gain import IgnoredPrefixWarning, log_persona_gain


class RoleAwarenessStage(PersonaDialogStage):
    """Encode the true persona segments, project them to a prefix, fine-tune the decoder.

    Also the `true_persona` upper-bound system at evaluation (history + true persona prefix).
    """

    def configure_callbacks(self) -> list:
        return [IgnoredPrefixWarning()]

    def generation_prefix(self, batch: dict) -> list[tuple[Tensor, Tensor]] | None:
        """The prefix L_G conditions on (Eq. 2: the true persona's); None: no prefix."""
        return self.projector(self.persona_vectors(batch))

    def losses(self, batch: dict) -> dict[str, Tensor]:
        p = self.persona_vectors(batch)
        kv = self.projector(p)
        out = {"gen": prefix_lm_loss(self.decoder, batch["lm_ids"], batch["lm_mask"],
                                     batch["labels"], kv)}
        if self.loss_cfg.get("weights", {}).get("segment", 0.0) > 0:
            out["segment"] = segment_reconstruction_loss(
                self.decoder, self.projector, p, batch["segment_lm_ids"], batch["segment_lm_mask"])
        return out

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        total = super().validation_step(batch, batch_idx)
        log_persona_gain(self, batch)
        return total
