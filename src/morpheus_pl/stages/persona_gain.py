"""`val/persona_gain`: does the decoder read its persona prefix?

The response NLL under another role's prefix minus under the example's own, in nats per response
token, logged at every validation batch of a stage with a persona prefix (its module's
`generation_prefix`: stage 1's true persona, joint training's nearest codes). Clearly > 0: the
decoder reads the prefix; about 0: it ignores it, and the codebook can carry nothing (on the
default world stage 1 starts reading it between steps 939 and 1,409; docs/logging.md).

The stages call `log_persona_gain` from their `validation_step`: its extra forward pass must run
inside the strategy's step (under FSDP a callback hook sees only parameter shards). The warning
at the end of training is a callback, `IgnoredPrefixWarning`, which those stages attach.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch import Tensor

from morpheus_pl.data.example import role_key
from morpheus_pl.modules.prefix_lm import prefix_lm_loss

log = logging.getLogger("morpheus_pl")
# a heuristic: on the default world stage 1 went from 0.000 to 0.349 once it read the prefix,
# and it stayed at 0.0001-0.0022 on a dataset where it never did (docs/robustness.md)
IGNORED_PREFIX_GAIN = 0.01


class IgnoredPrefixWarning(L.Callback):
    """Warns at the end of training when the last `val/persona_gain` is below
    IGNORED_PREFIX_GAIN: the decoder ignores the prefix."""

    def on_train_end(self, trainer, pl_module) -> None:
        gain = trainer.callback_metrics.get("val/persona_gain")
        if gain is not None and trainer.global_rank == 0 and float(gain) < IGNORED_PREFIX_GAIN:
            log.warning("%s: the decoder ignores its persona prefix: val/persona_gain %.4f nats "
                        "per response token at the last validation (below %g); stage 1's segment "
                        "reconstruction (loss.weights.segment > 0), another pooling of the persona "
                        "segments (encoder.pooling), more steps (train.<stage>.max_steps) or a "
                        "larger decoder may help", type(pl_module).__name__, float(gain),
                        IGNORED_PREFIX_GAIN)


@torch.no_grad()
def log_persona_gain(module: L.LightningModule, batch: dict) -> None:
    """Each example gets the prefix of the next example in the batch whose persona differs.
    Batches of a single role are left out; under DDP the logged value is rank 0's (not
    synchronised: a rank whose batches all hold one role would never join the reduction)."""
    other = other_role_index(batch["examples"])
    kv = module.generation_prefix(batch)
    if other is None or kv is None:
        return
    other = other.to(batch["lm_ids"].device)
    inputs = (module.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"])
    own = prefix_lm_loss(*inputs, kv)
    swapped = prefix_lm_loss(*inputs, [(k[other], v[other]) for k, v in kv])
    module.log("val/persona_gain", (swapped - own).detach(), batch_size=len(other))


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
