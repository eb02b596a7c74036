"""Metric states that survive DDP: packing python data into the tensors torchmetrics gathers.

What is known per sample at update time is kept as sums (`dist_reduce_fx="sum"`). Corpus
metrics keep their raw data in flat "cat" states: torchmetrics gathers tensors only, so python
strings, sets or dicts would silently stay per-process; texts are kept as UTF-8 bytes, token ids
as ids, rows closed by -1. All "cat" states of a metric are appended together, so rows stay
aligned after a merge or a gather. These states use the metric's float dtype, because a process
that never called `update` sends torchmetrics' placeholder `torch.tensor([], dtype=metric.dtype)`
and all_gather needs one dtype on every process; float32 holds the integers exactly (cl100k ids
< 100,277, bytes, counts < 2**24). Keep float32 or float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def check_lengths(*columns: Sequence) -> None:
    """Raise ValueError unless all columns have one length."""
    if len({len(column) for column in columns}) > 1:
        raise ValueError(f"inputs differ in length: {[len(column) for column in columns]}")


def scalar(metric: Metric, value: float) -> Tensor:
    """A float32 scalar on the metric's device."""
    return torch.tensor(value, dtype=torch.float32, device=metric.device)


def mean_or_nan(metric: Metric, total: float, count: int, scale: float) -> Tensor:
    """scale * total / count; nan when there is no sample (count 0)."""
    return scalar(metric, scale * total / count if count else math.nan)


def flat(metric: Metric, values: Sequence[int]) -> Tensor:
    """Integers as a "cat" state tensor in the metric's float dtype."""
    return torch.tensor(values, dtype=metric.dtype, device=metric.device)


def pack_rows(metric: Metric, rows: Sequence[Sequence[int]]) -> Tensor:
    """Rows of non-negative integers as one flat "cat" state tensor, each row closed by -1."""
    return flat(metric, [value for row in rows for value in (*row, -1)])


def state_ints(state: Tensor | list[Tensor]) -> list[int]:
    """A "cat" state (a list before a sync, a tensor after) as python integers."""
    return dim_zero_cat(state).long().tolist() if len(state) else []


def unpack_rows(state: Tensor | list[Tensor]) -> list[list[int]]:
    """The rows that `pack_rows` packed, in update (then process) order."""
    if not len(state):
        return []
    values = dim_zero_cat(state).long()
    ends = torch.nonzero(values < 0).flatten().tolist()
    flat_values = values.tolist()
    return [flat_values[start + 1 : end] for start, end in zip([-1, *ends], ends)]


def pack_texts(metric: Metric, texts: Sequence[str]) -> Tensor:
    """Texts as UTF-8 byte rows (see `pack_rows`)."""
    return pack_rows(metric, [text.encode("utf-8") for text in texts])


def unpack_texts(state: Tensor | list[Tensor]) -> list[str]:
    """The texts that `pack_texts` packed."""
    return [bytes(row).decode("utf-8") for row in unpack_rows(state)]
