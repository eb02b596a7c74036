"""Gradient clipping by norm (`trainer.gradient_clip_val`) under every Lightning strategy.

Lightning's FSDP precision plugin clips by value only and stops the run for the norm
(Lightning issue #19235): the norm of sharded gradients must be taken by the FSDP wrapper
itself (`FullyShardedDataParallel.clip_grad_norm_`), which the plugin has no handle on. The
stages clip by norm (the paper's setting, all our trainer configs), so they route it there.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.strategies import FSDPStrategy


class NormClippingModule(L.LightningModule):
    """A LightningModule whose norm clipping also works under `trainer=fsdp`."""

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        by_norm = gradient_clip_algorithm in (None, "norm")
        if gradient_clip_val and by_norm and isinstance(self.trainer.strategy, FSDPStrategy):
            self.trainer.model.clip_grad_norm_(gradient_clip_val)  # the root FSDP wrapper
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
