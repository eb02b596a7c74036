"""PNG plots of an aggregated sweep (matplotlib, Agg backend): one figure per swept setting,
one panel per metric, mean with ± std error bars over seeds.

A numeric setting (codebook.N, codebook.beta) gives lines, metric against the value (log axis
when it spans a factor of 10 or more: Figure 3); any other (ablation, dataset) gives grouped
bars (Table 4). A sweep over seeds alone gives bars per system (Table 2). One series per system
and combination of the other swept settings. It receives the rows and labels `aggregate` built
and imports nothing of it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from morpheus_pl.metrics.table_columns import LABELS  # noqa: E402

PANEL_COLUMNS = 4


class Row(Protocol):
    """What a plot reads of a table row (`aggregate.Row`): its system, its swept settings, the
    seeds it holds, and a metric's mean and std over them."""

    system: str
    group: tuple[tuple[str, str], ...]
    seeds: list[str]

    def mean_std(self, metric: str) -> tuple[float | None, float | None]: ...


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _series_name(row: Row, key: str | None, labels: dict) -> str:
    others = [labels.get((k, v), v) if k == "ablation" else f"{k}={v}"
              for k, v in row.group if k != key]
    return ", ".join([row.system, *others])


def _figure(metrics: list[str]):
    columns = min(PANEL_COLUMNS, len(metrics))
    lines = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.2 * lines), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    return fig, list(axes.flat[:len(metrics)])


def _plot_key(rows: list[Row], metrics: list[str], key: str | None, labels: dict) -> plt.Figure:
    """Panels of metric against `key`'s values (None: against the system)."""
    def x_value(row: Row) -> str:
        return row.system if key is None else dict(row.group)[key]

    xs = list(dict.fromkeys(x_value(row) for row in rows))
    numeric = key is not None and all(_is_number(x) for x in xs)
    series: dict[str, dict[str, Row]] = {}
    for row in rows:
        name = "all" if key is None else _series_name(row, key, labels)
        series.setdefault(name, {})[x_value(row)] = row
    fig, axes = _figure(metrics)
    width = 0.8 / max(len(series), 1)
    for ax, metric in zip(axes, metrics):
        for i, (name, by_x) in enumerate(series.items()):
            points = [(x, *by_x[x].mean_std(metric)) for x in xs if x in by_x]
            points = [(x, m, s or 0.0) for x, m, s in points if m is not None]
            if not points:
                continue
            if numeric:
                ax.errorbar([float(x) for x, _, _ in points], [m for _, m, _ in points],
                            yerr=[s for _, _, s in points], marker="o", capsize=3, label=name)
            else:
                positions = [xs.index(x) + (i - (len(series) - 1) / 2) * width for x, _, _ in points]
                ax.bar(positions, [m for _, m, _ in points], width, yerr=[s for _, _, s in points],
                       capsize=3, label=name)
        if numeric:
            values = [float(x) for x in xs]
            if min(values) > 0 and max(values) / min(values) >= 10:
                ax.set_xscale("log")
            ax.set_xticks(values, xs)
            ax.minorticks_off()
        else:
            ticks = [labels.get((key, x), x) for x in xs] if key else xs
            ax.set_xticks(range(len(xs)), ticks, rotation=30, ha="right")
        ax.set_title(LABELS.get(metric, metric))
        ax.set_xlabel(key or "system")
    handles, names = axes[0].get_legend_handles_labels()
    if key is not None and handles:
        fig.legend(handles, names, loc="upper center", ncol=min(len(names), 4), fontsize="small")
        fig.tight_layout(rect=(0, 0, 1, 0.93))
    else:
        fig.tight_layout()
    return fig


def plot_rows(rows: list[Row], metrics: list[str], labels: dict, out_dir: Path) -> list[Path]:
    """Write metric_vs_<setting>.png per swept setting (systems.png without one); their paths."""
    metrics = [m for m in metrics if any(row.mean_std(m)[0] is not None for row in rows)]
    rows = [row for row in rows if row.seeds]
    if not metrics or not rows:
        return []
    keys = [k for k, _ in rows[0].group] or [None]
    paths = []
    for key in keys:
        path = out_dir / ("systems.png" if key is None else f"metric_vs_{key}.png")
        fig = _plot_key(rows, metrics, key, labels)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
