"""PEFT (paper §5.3, Tables 6-7): the frozen decoder of MORPHEUS's PEFT mode, the Hugging Face
`peft` baselines (LoRA, prefix tuning, prompt tuning, P-tuning) and the trainable-parameter share.

`peft.baseline` names how the no-persona baseline trains: `full` fine-tunes the decoder, `frozen`
trains nothing (the pretrained decoder as it is), the others wrap it with the `peft` method of
that name, configured by `peft.adapter`. Prefix tuning is applied through the project's own
prefix path (`prefix_kv`), not through `PeftModel.forward`/`generate`: with peft 0.21 and
transformers 5 its `generate` ignores the prefix (docs/design.md, Traps). Prompt tuning and
P-tuning train through `PeftModel.forward` but generate through the base model with their
virtual-token embeddings in front (`virtual_tokens`): peft's `generate` looks for the cache
under its transformers 4 name, finds none at any step, and prepends the virtual tokens again
at every new token.
"""

from __future__ import annotations

import peft
from torch import Tensor, nn
from transformers import PreTrainedModel

from morpheus_pl.errors import ConfigError

PEFT_CONFIGS = {
    "lora": peft.LoraConfig,
    "prefix_tuning": peft.PrefixTuningConfig,
    "prompt_tuning": peft.PromptTuningConfig,
    "p_tuning": peft.PromptEncoderConfig,
}
BASELINES = ("full", "frozen", *PEFT_CONFIGS)


def check_peft_config(cfg: dict) -> None:
    """Fail early, naming the setting, on an unknown baseline or a non-boolean freeze flag."""
    if cfg.get("baseline") not in BASELINES:
        raise ConfigError(f"peft.baseline must be one of {BASELINES}, got {cfg.get('baseline')!r}")
    if not isinstance(cfg.get("freeze_decoder"), bool):
        raise ConfigError(
            f"peft.freeze_decoder must be true or false, got {cfg.get('freeze_decoder')!r}")


def wrap_baseline(decoder: PreTrainedModel, baseline: str, adapter: dict | None) -> nn.Module:
    """The no-persona baseline's decoder: as it is (`full`), frozen, or a `peft.PeftModel`."""
    if baseline == "full":
        return decoder
    if baseline == "frozen":
        return decoder.requires_grad_(False)
    if baseline not in PEFT_CONFIGS:
        raise ConfigError(f"peft.baseline must be one of {BASELINES}, got {baseline!r}")
    config = PEFT_CONFIGS[baseline](task_type="CAUSAL_LM", **(adapter or {}))
    return peft.get_peft_model(decoder, config)


def is_prefix_tuning(decoder: nn.Module) -> bool:
    return isinstance(decoder, peft.PeftModel) and decoder.active_peft_config.peft_type == peft.PeftType.PREFIX_TUNING


def is_virtual_token_tuning(decoder: nn.Module) -> bool:
    """Prompt tuning or P-tuning: learned embeddings of virtual tokens before the input."""
    return isinstance(decoder, peft.PeftModel) and decoder.active_peft_config.peft_type in (
        peft.PeftType.PROMPT_TUNING, peft.PeftType.P_TUNING)


def virtual_tokens(decoder: peft.PeftModel, batch_size: int) -> Tensor:
    """The virtual tokens' input embeddings (B, num_virtual_tokens, d), as peft's forward
    prepends them in training."""
    return decoder.get_prompt(batch_size)


def prefix_kv(decoder: peft.PeftModel, batch_size: int) -> list[tuple[Tensor, Tensor]]:
    """Prefix tuning's per-layer (key, value) prefix, (B, kv_heads, P, head_dim) each, with
    gradient to its prefix encoder, for the project's prefix path (as MORPHEUS's prefix)."""
    cache = decoder.get_prompt(batch_size)
    return [(layer.keys, layer.values) for layer in cache.layers]


def parameter_budget(module: nn.Module) -> dict[str, float]:
    """Trainable and total parameters, and TPS = trainable / total in % (Table 6)."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    total = sum(p.numel() for p in module.parameters())
    return {"trainable": trainable, "total": total, "tps_percent": 100.0 * trainable / max(total, 1)}
