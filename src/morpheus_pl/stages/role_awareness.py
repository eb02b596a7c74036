"""Stage 1, role awareness (Eq. 2): the true persona as a prefix, response NLL; with
`loss.weights.segment > 0` also the segment reconstruction loss (modules/segment_reconstruction.py)."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from morpheus_pl.data.example import role_key
from morpheus_pl.modules.prefix_lm import prefix_lm_loss
from morpheus_pl.modules.segment_reconstruction import segment_reconstruction_loss
from morpheus_pl.stages.base import PersonaDialogStage

log = logging.getLogger("morpheus_pl")
# a heuristic: on the default world stage 1 went from 0.000 to 0.349 once it read the prefix,
# and it stayed at 0.0001-0.0022 on a dataset where it never did (docs/robustness.md)
IGNORED_PREFIX_GAIN = 0.01


class RoleAwarenessStage(PersonaDialogStage):
    """Encode the true persona segments, project them to a prefix, fine-tune the decoder.

    Also the `true_persona` upper-bound system at evaluation (history + true persona prefix).
    """

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

    def on_train_end(self) -> None:
        """Warn when the last validation found the decoder ignoring the prefix (`val/persona_gain`
        below IGNORED_PREFIX_GAIN nats per response token): then no persona reaches the
        response through it, and the codebook stages cannot work."""
        metrics = self._trainer.callback_metrics if self._trainer is not None else {}
        gain = metrics.get("val/persona_gain")
        if gain is not None and self.global_rank == 0 and float(gain) < IGNORED_PREFIX_GAIN:
            log.warning("%s: the decoder ignores its persona prefix: val/persona_gain %.4f nats "
                        "per response token at the last validation (below %g); stage 1's segment "
                        "reconstruction (loss.weights.segment > 0), mean pooling of the persona "
                        "segments (encoder.pooling=mean, where values are not sentence-final), more "
                        "steps (train.<stage>.max_steps) or a larger decoder may help",
                        type(self).__name__,
                        float(gain), IGNORED_PREFIX_GAIN)

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        total = super().validation_step(batch, batch_idx)
        self.log_persona_gain(batch)
        return total

    def log_persona_gain(self, batch: dict) -> None:
        """`val/persona_gain`: the response NLL under another role's prefix minus under the
        example's own (each example gets the prefix of the next example in the batch whose
        persona differs). Clearly > 0: the decoder reads the prefix; about 0: it ignores it,
        and the codebook can carry nothing (on the default world stage 1 starts reading it
        between steps 939 and 1,409; docs/logging.md). Batches of a single role are left
        out; under DDP the logged value is rank 0's (not synchronised: a rank whose batches
        all hold one role would never join the reduction)."""
        other = other_role_index(batch["examples"])
        kv = self.generation_prefix(batch)
        if other is None or kv is None:
            return
        other = other.to(batch["lm_ids"].device)
        inputs = (self.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"])
        own = prefix_lm_loss(*inputs, kv)
        swapped = prefix_lm_loss(*inputs, [(k[other], v[other]) for k, v in kv])
        self.log("val/persona_gain", (swapped - own).detach(), batch_size=len(other))


def other_role_index(examples) -> Tensor | None:
    """For each example, the index of the first example after it (cyclically) whose persona
    differs (`role_key`); None when every example has the same persona."""
    keys = [role_key(ex.persona) for ex in examples]
    n = len(keys)
    index = []
    for i, key in enumerate(keys):
        j = next((j % n for j in range(i + 1, i + n) if keys[j % n] != key), None)
        if j is None:
            return None
        index.append(j)
    return torch.tensor(index)
