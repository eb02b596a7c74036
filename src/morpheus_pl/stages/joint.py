"""Stage 3, joint training (Eq. 8-14): VQ, generation through the codebook, code-index
prediction from the history alone, contrastive loss; weighted sum with weights from config."""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from morpheus_pl.distributed import whole_parameters
from morpheus_pl.modules.code_predictor import (
    CodePredictor,
    code_loss,
    decode_codes,
    expected_code_vectors,
    set_recall,
)
from morpheus_pl.modules.persona_codebook import (
    PersonaCodebook,
    contrastive_loss,
    straight_through,
    vq_loss,
)
from morpheus_pl.modules.prefix_lm import history_states, prefix_lm_loss
from morpheus_pl.stages.base import PersonaDialogStage
from morpheus_pl.stages.persona_gain import IgnoredPrefixWarning, log_persona_gain

log = logging.getLogger("morpheus_pl")
DEAD_USAGE = 0.01  # a code whose usage EMA (uniform use = 1) is below this counts as dead


class JointTrainingStage(PersonaDialogStage):
    """The base's decoder, persona encoder and projector, the persona codebook (initialised by
    stage 2) and the code predictor; `losses` returns L_V, L_G, L_D and L_C."""

    extra_config_groups = ("codebook", "predictor")

    def __init__(self, *args, codebook: dict, predictor: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.codebook_cfg = codebook
        self.codebook = PersonaCodebook(codebook["N"], self.hidden_size)
        self.predictor_cfg = predictor
        self.predictor = CodePredictor(
            self.hidden_size, self.codebook.num_codes, predictor["num_slots"],
            predictor["hidden_multiplier"], predictor.get("reads", "last"),
        )

    def configure_callbacks(self) -> list:
        return [IgnoredPrefixWarning()]

    def code_logits(self, batch: dict) -> Tensor:
        """Eq. 12: logits (B, M, N) from c = Decoder(C) computed WITHOUT the persona prefix; c
        is what `predictor.reads` reads of the history's states (last: the paper's).

        `predictor.history_grad=false` runs the history pass without autograd: L_C then trains
        the predictor (its reader included) only, not the decoder (cheaper; docs/benchmarks.md
        for its measured cost).
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.predictor_cfg["history_grad"]):
            hidden, mask = history_states(self.decoder, batch["history_ids"], batch["history_mask"])
        return self.predictor(self.predictor.reader(hidden, mask))

    def predicted_vectors(self, logits: Tensor, decode: str,
                          generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """The codes (B, M) `decode` picks from logits (B, M, N) and the vectors (B, M, d) their
        prefix is made of: the picked codes' e_k; for decode=expected, Eq. 1's expected code
        vector per slot over `predictor.expected_top_k` codes (the codes reported are then the
        per-slot argmax)."""
        codes = decode_codes(logits, decode, generator, self.codebook.codes)
        if decode == "expected":
            top_k = self.predictor_cfg.get("expected_top_k")
            return codes, expected_code_vectors(logits, self.codebook.codes, top_k)
        return codes, self.codebook.lookup(codes)

    def generation_prefix(self, batch: dict) -> list[tuple[Tensor, Tensor]]:
        """The prefix of the nearest codes (Eq. 8), as generation uses them at inference. (L_G
        itself conditions on z of Eq. 10, whose forward value is p under straight_through=paper.)"""
        p = self.persona_vectors(batch)
        return self.projector(self.codebook.lookup(self.codebook.nearest(p)))

    def losses(self, batch: dict) -> dict[str, Tensor]:
        p = self.persona_vectors(batch)
        k = self.codebook.nearest(p)
        e_k = self.codebook.lookup(k)
        z = straight_through(p, e_k, self.codebook_cfg["straight_through"])
        logits = self.code_logits(batch)
        self._assignment, self._code_logits = (p.detach(), k), logits.detach()
        decode = self.predictor_cfg["decode"]
        picked, vectors = self.predicted_vectors(logits.detach(), decode)
        if self.training and self.loss_cfg.get("predicted_prefix_grad", False):
            vectors = self.through_code_path(logits, vectors, decode)
        kv = self.projector(self.with_predicted_prefix(z, vectors))
        self.log(f"{'train' if self.training else 'val'}/code_recall",
                 set_recall(picked, k).mean(), batch_size=p.shape[0], sync_dist=not self.training)
        return {
            "vq": vq_loss(p, e_k, self.codebook_cfg["beta"]),
            "gen": prefix_lm_loss(self.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"], kv),
            "code": code_loss(logits, k, self.predictor_cfg["loss"], self.predictor_cfg["focal_gamma"]),
            "contrastive": contrastive_loss(
                p, self.codebook.codes, k, self.loss_cfg["tau"], self.loss_cfg.get("contrastive_negatives")
            ),
        }

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        """The weighted losses, `val/persona_gain`, and `val/loss_gen_predicted`: the response
        NLL under the prefix of the codes the predictor picks from the history
        (`predictor.decode`), as generation conditions on them. L_G conditions on the true persona's codes instead, so this is the
        validation loss of MORPHEUS as it is used (the hparams_search objective)."""
        total = super().validation_step(batch, batch_idx)
        log_persona_gain(self, batch)  # through the codebook: the prefix of the nearest codes
        generator = torch.Generator(device=batch["lm_ids"].device).manual_seed(batch_idx)
        # the step's code logits (`losses`), not a second history pass
        _, vectors = self.predicted_vectors(self._code_logits, self.predictor_cfg["decode"],
                                            generator)
        nll = prefix_lm_loss(self.decoder, batch["lm_ids"], batch["lm_mask"], batch["labels"],
                             self.projector(vectors))
        self.log("val/loss_gen_predicted", nll, batch_size=batch["lm_ids"].shape[0], sync_dist=True)
        return total

    def with_predicted_prefix(self, z: Tensor, predicted: Tensor) -> Tensor:
        """Train as you infer (not in the paper): in training, a random share
        (`predicted_prefix_share_now`) of the batch's examples get the `predicted` vectors
        (`predicted_vectors`: those of the codes the predictor picked, as generation will use
        them) instead of z, so L_G also teaches the decoder the prefix it sees at inference,
        wrong codes included. With `loss.predicted_prefix_grad=false` the predicted vectors are
        constants (L_G moves neither the codebook nor the predictor through them); with true they
        carry `through_code_path`'s gradient. Share 0 (the default): the paper's L_G on z alone."""
        share = self.predicted_prefix_share_now()
        if not self.training or share <= 0:
            return z
        self.log("train/predicted_prefix_share", share, batch_size=1)
        if not self.loss_cfg.get("predicted_prefix_grad", False):
            predicted = predicted.detach()
        use = torch.rand(z.shape[0], device=z.device) < share
        return torch.where(use[:, None, None], predicted, z)

    def predicted_prefix_share_now(self) -> float:
        """`loss.predicted_prefix_share` at this step: from the first step (schedule=constant),
        or rising linearly from 0 to it over joint training (schedule=linear, as scheduled
        sampling does), so the decoder first learns the true codes' prefix."""
        return scheduled_share(float(self.loss_cfg.get("predicted_prefix_share", 0.0)),
                               self.loss_cfg.get("predicted_prefix_schedule", "constant"),
                               self.global_step,
                               self._trainer.estimated_stepping_batches if self._trainer else 0)

    def through_code_path(self, logits: Tensor, vectors: Tensor, decode: str) -> Tensor:
        """The predicted prefix vectors with a gradient into the code path (predictor, the
        history pass it reads and the codebook): decode=expected's Σ_k P(k|c) e_k is
        differentiable as it is; a hard decoding keeps its picked codes' e_k as the forward value
        and takes the gradient of the expected vector over all N codes (straight-through, as in
        Gumbel-softmax's hard variant). Written here: no library gives a straight-through
        estimator over a learned codebook."""
        if decode == "expected":
            return expected_code_vectors(logits, self.codebook.codes,
                                         self.predictor_cfg.get("expected_top_k"))
        soft = expected_code_vectors(logits, self.codebook.codes)
        return vectors.detach() + soft - soft.detach()

    def optimizer_step(self, *args, **kwargs) -> None:
        """The optimiser step, then the codebook statistics. Here rather than in
        `on_train_batch_end`, which runs after callbacks, so that a checkpoint written at this
        step (ModelCheckpoint) already holds the step's usage and re-seeded codes."""
        super().optimizer_step(*args, **kwargs)
        self.update_codebook_statistics()

    def update_codebook_statistics(self) -> None:
        """Codebook diagnostics (usage EMA, codes in use, dead codes, perplexity of the step's
        assignments) and re-seeding of dead codes when codebook.reseed_below > 0 (a threshold
        of 0 only updates the usage).

        Under DDP all of it is computed from every rank's assignments (gathered with the
        strategy), and the re-seeding draws from a generator seeded by the step, so every rank
        keeps the same usage and the same codes (DDP itself syncs gradients, not such updates).
        """
        p, k = self._assignment
        threshold = self.codebook_cfg["reseed_below"]
        generator = torch.Generator().manual_seed(torch.initial_seed() + self.global_step)
        reseeded = self.codebook.reseed_dead_codes(
            p, k, self.codebook_cfg["usage_decay"], threshold, generator, self._gather_ranks,
            lambda: whole_parameters(self._trainer))
        in_use = float((self.codebook.usage >= DEAD_USAGE).sum())
        self.log_dict({
            "train/reseeded_codes": float(reseeded),
            "train/codes_in_use": in_use,
            "train/dead_codes": self.codebook.num_codes - in_use,
            "train/code_perplexity": assignment_perplexity(self._gather_ranks(k.reshape(-1)),
                                                           self.codebook.num_codes),
        }, batch_size=1)

    def _gather_ranks(self, t: Tensor) -> Tensor:
        """`t` from every rank, concatenated along dim 0 (ranks hold equal-size batches: the
        DistributedSampler pads the shards to equal length)."""
        return self.all_gather(t).reshape(-1, *t.shape[1:])

    def on_train_end(self) -> None:
        """Log how many codes are in use at the end, with a warning when the codebook has
        collapsed onto one code; where the logger keeps tables (W&B), the usage of every code;
        (the warning when the decoder ignores the codebook prefix: IgnoredPrefixWarning)."""
        in_use = int((self.codebook.usage >= DEAD_USAGE).sum())
        if self.global_rank == 0:
            log.info("joint: %d of %d codes in use at the end of training (usage EMA >= %g)",
                     in_use, self.codebook.num_codes, DEAD_USAGE)
            if in_use <= 1:
                log.warning("joint: the codebook collapsed: every persona segment now maps to "
                            "one code, so MORPHEUS gives every history the same prefix and code "
                            "recall/accuracy are trivially high (compare code_accuracy_majority "
                            "in the results); codebook.reseed_below > 0 re-seeds unused codes")
        for logger in self.loggers:
            if hasattr(logger, "log_table"):
                logger.log_table("codebook/usage", columns=["code", "usage_ema"],
                                 data=[[i, u] for i, u in enumerate(self.codebook.usage.tolist())])


def assignment_perplexity(k: Tensor, num_codes: int) -> float:
    """exp(entropy) of the share of assignments each code gets: 1 = all on one code, N = uniform."""
    share = torch.bincount(k.reshape(-1), minlength=num_codes).float() / k.numel()
    share = share[share > 0]
    return float(torch.exp(-(share * share.log()).sum()))


def scheduled_share(share: float, schedule: str, step: int, total_steps: int) -> float:
    """The share of examples trained on the predicted prefix at `step` of `total_steps`:
    `share` throughout (constant) or share · step / total_steps (linear; `share` without a
    known, finite total)."""
    if schedule == "constant" or not 0 < total_steps < math.inf:
        return share
    return share * min(1.0, step / total_steps)
