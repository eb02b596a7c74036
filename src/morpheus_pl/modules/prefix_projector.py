"""Prefix projector (Eq. 10): persona vectors -> one key/value position per decoder layer.

A vector p in R^d becomes, for every decoder layer, one key and one value of shape
(kv_heads, head_dim); M vectors give a prefix of M positions that the decoder attends to before
the history. Shapes come from the decoder config (GPT-2 and grouped-query LLaMA/Mistral alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import DynamicCache, PretrainedConfig

from morpheus_pl.errors import ConfigError


@dataclass(frozen=True)
class KVLayout:
    """Per-layer key/value shape of a decoder: `n_layers` x (kv_heads, head_dim)."""

    n_layers: int
    kv_heads: int
    head_dim: int

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim


def _first_attr(config: PretrainedConfig, names: tuple[str, ...]) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return None


def kv_layout(config: PretrainedConfig) -> KVLayout:
    """Read layers, key/value heads and head size from any decoder config spelling."""
    config = config.get_text_config(decoder=True)
    n_layers = _first_attr(config, ("num_hidden_layers", "n_layer", "num_layers"))
    n_heads = _first_attr(config, ("num_attention_heads", "n_head"))
    hidden = _first_attr(config, ("hidden_size", "n_embd", "d_model"))
    missing = [
        name
        for name, value in (("layers", n_layers), ("heads", n_heads), ("hidden size", hidden))
        if value is None
    ]
    if missing:
        raise ConfigError(f"decoder config {type(config).__name__} lacks {', '.join(missing)}")
    kv_heads = _first_attr(config, ("num_key_value_heads",)) or n_heads
    head_dim = _first_attr(config, ("head_dim",)) or hidden // n_heads
    return KVLayout(n_layers=n_layers, kv_heads=kv_heads, head_dim=head_dim)


class PrefixProjector(nn.Module):
    """MLP d -> hidden... -> n_layers x (key, value), tanh between layers (official code's shape).

    kv="separate" produces distinct keys and values; kv="tied" uses one output as both, as the
    official code does. `positions` key/value positions per vector (the paper: 1).
    """

    def __init__(
        self,
        input_dim: int,
        layout: KVLayout,
        hidden_multipliers: tuple[int, ...] | list[int] = (2, 4),
        kv: str = "separate",
        positions: int = 1,
    ) -> None:
        super().__init__()
        if kv not in ("separate", "tied"):
            raise ConfigError(f"projector kv must be 'separate' or 'tied', got {kv!r}")
        if positions < 1:
            raise ConfigError(f"projector positions must be >= 1, got {positions}")
        self.layout = layout
        self.kv = kv
        self.positions = positions
        per_layer = layout.kv_width * (2 if kv == "separate" else 1) * positions
        widths = [input_dim, *(input_dim * m for m in hidden_multipliers)]
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.Tanh()]
        layers.append(nn.Linear(widths[-1], layout.n_layers * per_layer))
        self.mlp = nn.Sequential(*layers)

    def forward(self, p: Tensor) -> list[tuple[Tensor, Tensor]]:
        """p (B, M, d) -> per layer (key, value), each (B, kv_heads, M * positions, head_dim);
        the positions of one vector are adjacent."""
        batch, m, _ = p.shape
        lay = self.layout
        out = self.mlp(p).view(batch, m, lay.n_layers, -1, lay.kv_heads, self.positions, lay.head_dim)
        # (layers, 1|2, B, kv_heads, M, positions, head_dim) -> (..., M * positions, head_dim)
        out = out.permute(2, 3, 0, 4, 1, 5, 6).flatten(4, 5)
        if self.kv == "tied":
            return [(layer[0], layer[0]) for layer in out]
        return [(layer[0], layer[1]) for layer in out]


def prefix_cache(kv_pairs: list[tuple[Tensor, Tensor]], config: PretrainedConfig) -> DynamicCache:
    """Wrap per-layer (key, value) pairs in a fresh cache; `generate` changes it in place."""
    return DynamicCache(ddp_cache_data=kv_pairs, config=config)


def prefix_attention(prefix_len: int, input_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Attention mask over prefix + input, and position ids of the input tokens.

    The mask must cover the prefix too (otherwise the logits are silently wrong). Input positions
    follow the cumulative sum of the full mask, which is what `generate` computes, so a
    left-padded row gets the same positions in training and in generation.
    """
    ones = input_mask.new_ones(input_mask.shape[0], prefix_len)
    full = torch.cat([ones, input_mask], dim=1)
    positions = (full.long().cumsum(-1) - 1).clamp(min=0)[:, prefix_len:]
    return full, positions
