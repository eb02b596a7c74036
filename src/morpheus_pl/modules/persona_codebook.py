"""Persona codebook e in R^{N x d}: nearest-code lookup (Eq. 8), VQ loss (Eq. 9), the
straight-through routing of the generation loss, and the contrastive loss (Eq. 14).

Hand-written because the method's losses and routing are specific to the paper; shapes in the
paper's symbols: p (B, M, d), e (N, d), k (B, M).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from morpheus_pl.errors import ConfigError

STRAIGHT_THROUGH = ("paper", "vqvae")


def _this_process(t: Tensor) -> Tensor:
    return t


class PersonaCodebook(nn.Module):
    """N learnable codes; `initialised` records whether stage 2 filled them (kept in checkpoints)."""

    def __init__(self, num_codes: int, dim: int) -> None:
        super().__init__()
        if num_codes < 1:
            raise ConfigError(f"codebook.N must be >= 1, got {num_codes}")
        self.num_codes = num_codes  # not codes.shape[0]: FSDP flattens and shards `codes` between steps
        self.codes = nn.Parameter(torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes))
        self.register_buffer("initialised", torch.tensor(False))
        self.register_buffer("usage", torch.ones(num_codes))

    def load_codes(self, codes: Tensor) -> None:
        if codes.shape != self.codes.shape:
            raise ValueError(f"codebook init gave {tuple(codes.shape)}, expected {tuple(self.codes.shape)}")
        with torch.no_grad():
            self.codes.copy_(codes)
            self.initialised.fill_(True)

    @torch.no_grad()
    def nearest(self, p: Tensor) -> Tensor:
        """Eq. 8: k = argmin_k ||p - e_k||_2, in float32 whatever the autocast dtype."""
        with torch.autocast(device_type=p.device.type, enabled=False):  # else matmul runs in bf16
            flat = p.detach().float().reshape(-1, p.shape[-1])
            codes = self.codes.detach().float()
            dist = flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ codes.T + codes.pow(2).sum(-1)
            return dist.argmin(-1).view(p.shape[:-1])

    def lookup(self, k: Tensor) -> Tensor:
        """e_k for code indices k (...,) -> (..., d)."""
        return F.embedding(k, self.codes)

    @torch.no_grad()
    def reseed_dead_codes(self, p: Tensor, k: Tensor, decay: float, threshold: float,
                          generator: torch.Generator | None = None,
                          gather: Callable[[Tensor], Tensor] = _this_process,
                          whole_codes: Callable[[], AbstractContextManager] = nullcontext) -> int:
        """Move codes that (almost) no persona vector chooses back onto the data.

        `usage` is an exponential moving average of each code's share of the assignments k,
        scaled so that uniform use is 1. Codes whose usage falls below `threshold` are set to
        random persona vectors p of the batch and their usage reset to 1; returns how many.
        Adam moves every code by about the learning rate per step whatever its gradient, so
        unchosen codes drift away from the persona vectors and the codebook collapses onto a
        few codes; this keeps it on the data (the dead-code re-seeding of common VQ practice).

        Under DDP, `gather` returns a tensor from every rank concatenated along dim 0 (the
        default keeps this process's): the usage then counts all ranks' assignments, and given
        the same `generator` state every rank re-seeds the same codes with the same vectors.
        Under FSDP, `codes` is written inside `whole_codes()` (FSDP shards it between steps).
        """
        n = self.num_codes
        k = gather(k.reshape(-1))
        share = torch.bincount(k, minlength=n).float() * n / k.numel()
        self.usage.mul_(decay).add_(share, alpha=1.0 - decay)
        dead = (self.usage < threshold).nonzero().squeeze(-1)
        if dead.numel():
            flat = gather(p.detach().reshape(-1, p.shape[-1]))
            pick = torch.randint(flat.shape[0], (dead.numel(),), generator=generator)
            with whole_codes():
                self.codes[dead] = flat[pick.to(flat.device)].to(self.codes.dtype)
            self.usage[dead] = 1.0
        return int(dead.numel())


def vq_loss(p: Tensor, e_k: Tensor, beta: float) -> Tensor:
    """Eq. 9: ||sg[p] - e_k||^2 + beta ||sg[e_k] - p||^2, squared error averaged per element.

    The first term moves the codes, the second (commitment) moves the encoder.
    """
    return F.mse_loss(e_k, p.detach()) + beta * F.mse_loss(p, e_k.detach())


def straight_through(p: Tensor, e_k: Tensor, mode: str) -> Tensor:
    """Vector fed to the prefix projector in joint training (Eq. 10).

    paper: forward value p, gradient of L_G to the chosen code (official code, `e + sg(p - e)`).
    vqvae: forward value e_k (as at inference), gradient to the encoder (`p + sg(e - p)`).
    """
    if mode == "paper":
        return e_k + (p - e_k).detach()
    if mode == "vqvae":
        return p + (e_k - p).detach()
    raise ConfigError(f"codebook.straight_through must be one of {STRAIGHT_THROUGH}, got {mode!r}")


def contrastive_loss(
    p: Tensor,
    codes: Tensor,
    k: Tensor,
    tau: float,
    num_negatives: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Eq. 14: -log softmax_j(cos(p_i, e_j) / tau)[k_i].

    num_negatives=None: all N codes (the paper). An int: the chosen code against that many
    random codes chosen by no p in the batch (the official code's variant, with tau=0.07).
    """
    flat_p = F.normalize(p.reshape(-1, p.shape[-1]).float(), dim=-1)
    flat_k = k.reshape(-1)
    normed = F.normalize(codes.float(), dim=-1)
    logits = flat_p @ normed.T / tau  # (B*M, N)
    if num_negatives is None:
        return F.cross_entropy(logits, flat_k)
    unused = torch.ones(codes.shape[0], dtype=torch.bool, device=codes.device)
    unused[flat_k] = False
    pool = unused.nonzero().squeeze(-1)
    if pool.numel() == 0:
        return F.cross_entropy(logits, flat_k)
    pick = torch.randint(pool.numel(), (num_negatives,), device=codes.device, generator=generator)
    negatives = pool[pick]
    positive = logits.gather(1, flat_k[:, None])
    return F.cross_entropy(torch.cat([positive, logits[:, negatives]], dim=1),
                           torch.zeros_like(flat_k))
