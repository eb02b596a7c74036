"""The shared LightningModule: decoder + persona encoder + prefix projector, one weighted-loss
step for every stage, AdamW with linear warm-up. Each stage only adds its `losses(batch)`.

PEFT mode (paper §5.3): with `peft.freeze_decoder` the MORPHEUS stages keep the decoder (and the
persona encoder when it is the decoder) frozen; only the projector, codebook, predictor and a
separate encoder train."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import Tensor, nn
from transformers import get_linear_schedule_with_warmup

from morpheus_pl.errors import ConfigError
from morpheus_pl.modules.decoder import build_decoder, load_tokenizer
from morpheus_pl.modules.peft_baselines import check_peft_config, parameter_budget
from morpheus_pl.modules.persona_encoder import DecoderPersonaEncoder, PretrainedPersonaEncoder
from morpheus_pl.modules.prefix_projector import PrefixProjector, kv_layout
from morpheus_pl.stages.gradient_clipping import NormClippingModule


class PersonaDialogStage(NormClippingModule):
    """Base of every stage and baseline. `uses_persona=False` builds the decoder alone."""

    uses_persona = True
    extra_config_groups: tuple[str, ...] = ()  # config groups passed as keywords beyond the base's

    def __init__(
        self,
        tokenizer_dir: str,
        model: dict,
        encoder: dict,
        projector: dict,
        optim: dict,
        loss: dict,
        peft: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.peft_cfg = peft or {"baseline": "full", "freeze_decoder": False}
        check_peft_config(self.peft_cfg)
        trust_decoder_code = model.get("trust_remote_code", False)
        self.tokenizer = load_tokenizer(tokenizer_dir, trust_remote_code=trust_decoder_code)
        self.decoder = build_decoder(
            model["source"], self.tokenizer, model.get("name_or_path"), model.get("architecture"),
            model.get("gguf_file"), model.get("dtype"), trust_decoder_code,
            model.get("config_overrides"),
        )
        self.hidden_size = self.decoder.config.get_text_config(decoder=True).hidden_size
        self.optim = optim
        self.loss_cfg = loss
        if self.uses_persona:
            if encoder["kind"] == "decoder":
                self.persona_encoder = DecoderPersonaEncoder(self.decoder, encoder["pooling"])
            elif encoder["kind"] == "pretrained":
                if encoder["pooling"] != "mean":
                    raise ConfigError(
                        "a pretrained persona encoder is mean-pooled: set encoder.pooling=mean")
                self.persona_encoder = PretrainedPersonaEncoder(
                    encoder["name_or_path"], self.hidden_size,
                    encoder.get("trust_remote_code", False))
            else:
                raise ConfigError(
                    f"encoder.kind must be 'decoder' or 'pretrained', got {encoder['kind']!r}")
            self.projector = PrefixProjector(self.hidden_size, kv_layout(self.decoder.config), **projector)
            if self.peft_cfg["freeze_decoder"]:
                self.decoder.requires_grad_(False)

    def parameter_budget(self) -> dict[str, float]:
        """Trainable / total parameters and their share in % (TPS, Table 6)."""
        return parameter_budget(self)

    def reloadable_keys(self) -> set[str]:
        """State-dict keys of a pretrained decoder's frozen parameters: stage checkpoints leave
        them out, since every stage reloads them unchanged from the model source."""
        if self.hparams.model["source"] != "pretrained":
            return set()
        frozen = {id(p) for p in self.decoder.parameters() if not p.requires_grad}
        return {name for name, p in self.named_parameters(remove_duplicate=False) if id(p) in frozen}

    def setup(self, stage: str) -> None:
        """Log the parameter budget before training, and before a sharding strategy wraps the
        model: FSDP's flat shards would count only this rank's part."""
        if stage == "fit":
            budget = self.parameter_budget()
            for logger in self.loggers:
                logger.log_hyperparams({f"params/{k}": v for k, v in budget.items()})

    def count_persona_tokens(self, datamodule) -> None:
        """sif pooling: count the training personas' tokens, once, before the first stage that
        encodes personas trains or encodes (later stages load the counts with its checkpoint)."""
        encoder = getattr(self, "persona_encoder", None)
        if getattr(encoder, "needs_token_weights", False):
            encoder.fit_token_weights(datamodule.persona_segment_tokens())

    @property
    def generating_model(self) -> nn.Module:
        """The model whose `generate` produces this stage's responses."""
        return self.decoder

    def baseline_prefix(self, batch_size: int) -> list[tuple[Tensor, Tensor]] | None:
        """A learned prefix of the no-persona baseline (prefix tuning), else None."""
        return None

    def baseline_prompt(self, batch_size: int) -> Tensor | None:
        """Learned virtual-token embeddings of the no-persona baseline (prompt / P-tuning), else None."""
        return None

    def persona_vectors(self, batch: dict) -> Tensor:
        """Eq. 3-4: the M segments of each example encoded, p (B, M, d)."""
        flat = self.persona_encoder(batch["segment_ids"], batch["segment_mask"])
        return flat.view(batch["history_ids"].shape[0], -1, flat.shape[-1])

    def losses(self, batch: dict) -> dict[str, Tensor]:
        raise NotImplementedError

    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        """Tensors move; the raw `examples` (frozen dataclasses) stay as they are."""
        return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}

    def _step(self, batch: dict, split: str) -> Tensor:
        losses = self.losses(batch)
        weights = self.loss_cfg.get("weights", {})
        total = sum(weights.get(name, 1.0) * value for name, value in losses.items())
        for name, value in losses.items():
            number = float(value.detach())
            if not math.isfinite(number):
                raise FloatingPointError(
                    f"{type(self).__name__}: loss {name!r} is {number} at step {self.global_step} "
                    f"({split}); stopping instead of training on NaN/Inf"
                )
        bs = batch["lm_ids"].shape[0]
        sync = split == "val"  # epoch-level validation means over every rank's shard (DDP)
        self.log_dict({f"{split}/loss_{n}": v.detach() for n, v in losses.items()}, batch_size=bs,
                      sync_dist=sync)
        self.log(f"{split}/loss", total.detach(), prog_bar=True, batch_size=bs, sync_dist=sync)
        return total

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self):
        return adamw_with_linear_warmup(self, self.optim)


def adamw(module: torch.nn.Module, optim: dict, precision: str = "32-true") -> torch.optim.AdamW:
    """AdamW over the trainable parameters, no weight decay on biases and norms; `precision` is
    the trainer's (Lightning's precision names)."""
    exempt = {id(p) for p in biases_and_norms(module)}
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (no_decay if id(param) in exempt else decay).append(param)
    # the fused kernel (one pass over all parameters) took 0.07 s where the default per-tensor
    # loop took 0.43 s for GPT-2 small + projector on 2 CPU cores; it needs floating-point
    # parameters on a CPU or CUDA device. Lightning's mixed-precision plugins refuse to clip the
    # gradients of an optimiser that unscales them itself, as the fused one does (the whole
    # pipeline failed with trainer=gpu, bf16-mixed, on an H100), so only full precision gets it.
    fused = precision.endswith("-true") and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": optim["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=optim["lr"], fused=fused,
    )


def biases_and_norms(module: torch.nn.Module) -> list[nn.Parameter]:
    """Biases and the weights of normalisation layers (LayerNorm, RMSNorm, ...), found by name and
    module type rather than by shape: FSDP (`use_orig_params`) hands the optimiser flattened 1-D
    shards, so a shape rule would exempt every weight there."""
    found = []
    for mod in module.modules():
        norm = "norm" in type(mod).__name__.lower()
        for name, param in mod.named_parameters(recurse=False):
            if norm or name == "bias" or name.endswith("_bias"):
                found.append(param)
    return found


def adamw_with_linear_warmup(module: L.LightningModule, optim: dict) -> dict:
    """`adamw` with a linear warm-up then linear decay, per step."""
    opt = adamw(module, optim, str(module.trainer.precision))
    total = max(int(module.trainer.estimated_stepping_batches), 1)
    sched = get_linear_schedule_with_warmup(opt, int(optim["warmup_ratio"] * total), total)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
