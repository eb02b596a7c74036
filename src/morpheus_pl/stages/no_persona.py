"""Baseline: the decoder trained on history -> response, no persona at all: fine-tuned fully
(the paper's GPT-2 baseline), frozen, or through a `peft` method (Tables 6-7)."""

from __future__ import annotations

from torch import Tensor, nn

from morpheus_pl.modules.peft_baselines import (
    is_prefix_tuning,
    is_virtual_token_tuning,
    prefix_kv,
    virtual_tokens,
    wrap_baseline,
)
from morpheus_pl.modules.prefix_lm import prefix_lm_loss
from morpheus_pl.stages.base import PersonaDialogStage


class NoPersonaStage(PersonaDialogStage):
    """Causal-LM training on the response tokens; `peft.baseline` picks what trains."""

    uses_persona = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.decoder = wrap_baseline(self.decoder, self.peft_cfg["baseline"], self.peft_cfg.get("adapter"))

    @property
    def generating_model(self) -> nn.Module:
        """The base decoder under prefix, prompt and P-tuning (their learned parts come from
        `baseline_prefix` and `baseline_prompt`), else the (possibly LoRA-wrapped) decoder."""
        if is_prefix_tuning(self.decoder) or is_virtual_token_tuning(self.decoder):
            return self.decoder.get_base_model()
        return self.decoder

    def baseline_prefix(self, batch_size: int) -> list[tuple[Tensor, Tensor]] | None:
        """Prefix tuning's learned prefix, else None."""
        return prefix_kv(self.decoder, batch_size) if is_prefix_tuning(self.decoder) else None

    def baseline_prompt(self, batch_size: int) -> Tensor | None:
        """Prompt or P-tuning's virtual-token embeddings (B, P, d), else None."""
        return virtual_tokens(self.decoder, batch_size) if is_virtual_token_tuning(self.decoder) else None

    def losses(self, batch: dict) -> dict[str, Tensor]:
        ids, mask, labels = batch["lm_ids"], batch["lm_mask"], batch["labels"]
        if self.peft_cfg["baseline"] in ("full", "frozen", "lora"):
            return {"gen": prefix_lm_loss(self.decoder, ids, mask, labels)}
        if is_prefix_tuning(self.decoder):
            kv = self.baseline_prefix(ids.shape[0])
            return {"gen": prefix_lm_loss(self.generating_model, ids, mask, labels, kv)}
        # prompt tuning / P-tuning: peft prepends the virtual tokens (inputs are right-padded,
        # so positions need no mask-derived ids, which peft's prompt learning would ignore anyway)
        return {"gen": self.decoder(input_ids=ids, attention_mask=mask, labels=labels).loss}
