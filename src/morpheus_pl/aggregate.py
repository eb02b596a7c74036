"""Paper-style tables and plots from a finished Hydra sweep:
`python -m morpheus_pl.aggregate <multirun_dir> [--out DIR]`.

A member is a folder under the sweep with `.hydra/` or `results.json`. Its settings are the
overrides in `.hydra/overrides.yaml` (else the `config` recorded in results.json, flattened);
the settings that differ between members, `seed` aside, name a row together with the system.
Each row holds mean ± std (sample std, n − 1) over its members, i.e. over training seeds; a
member's own value is its results.json mean (over its `eval.seeds`). Members without
results.json are counted in the row's `missing` column and listed by folder, never dropped;
members whose training was cut short or ended still learning are listed by folder too.
Writes table.md, table.csv and the PNG plots of `sweep_plots` into --out (default:
<multirun_dir>/aggregate), and prints the table and the paths.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from morpheus_pl.metrics.table_columns import LABELS

SEED_KEY = "seed"
_PER_SLOT = re.compile(r"code_accuracy_slot\d+$")


@dataclass
class Member:
    """One sweep member: its folder, its settings (key -> value as text), its results or None."""

    path: Path
    settings: dict[str, str]
    results: dict | None


@dataclass
class Row:
    """One table row: a system under one combination of swept settings, over seeds."""

    system: str
    group: tuple[tuple[str, str], ...]
    seeds: list[str]
    missing: list[Path]
    values: dict[str, list[float | None]]

    def mean_std(self, metric: str) -> tuple[float | None, float | None]:
        """Mean and sample std over members (std None for one member); None if any is missing."""
        values = self.values.get(metric, [])
        if not values or any(v is None for v in values):
            return None, None
        std = statistics.stdev(values) if len(values) > 1 else None
        return statistics.fmean(values), std


def _natural(path: Path) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value)
    return flat


def _overrides(path: Path) -> dict[str, str]:
    settings = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).partition("=")
        settings[key.lstrip("+~")] = value
    return settings


def _seed(member: Member) -> str:
    """The member's training seed: its override, else the seed its results.json config names."""
    if SEED_KEY in member.settings:
        return member.settings[SEED_KEY]
    return str((member.results or {}).get("config", {}).get(SEED_KEY, "?"))


def read_members(sweep_dir: Path) -> list[Member]:
    """Every member of the sweep, in job order."""
    folders = {p.parent for p in sweep_dir.rglob(".hydra") if p.is_dir()}
    folders |= {p.parent for p in sweep_dir.rglob("results.json")}
    members = []
    for folder in sorted(folders, key=lambda p: _natural(p.relative_to(sweep_dir))):
        result_file = folder / "results.json"
        results = json.loads(result_file.read_text()) if result_file.exists() else None
        override_file = folder / ".hydra" / "overrides.yaml"
        if override_file.exists():
            settings = _overrides(override_file)
        else:
            settings = _flatten((results or {}).get("config", {}))
        members.append(Member(folder, settings, results))
    return members


def swept_keys(members: list[Member]) -> list[str]:
    """Settings whose value differs between members, in the order they first appear."""
    keys = list(dict.fromkeys(k for m in members for k in m.settings))
    return [k for k in keys if len({m.settings.get(k) for m in members}) > 1]


def build_rows(members: list[Member]) -> tuple[list[Row], list[str]]:
    """Rows (system × swept settings but seed, in sweep order) and the metrics, paper order."""
    keys = [k for k in swept_keys(members) if k != SEED_KEY]
    rows: dict[tuple, Row] = {}
    groups: dict[tuple, list[Member]] = {}
    for member in members:
        groups.setdefault(tuple((k, member.settings.get(k, "")) for k in keys), []).append(member)
    metrics: list[str] = []
    for group, group_members in groups.items():
        done = [m for m in group_members if m.results is not None]
        missing = [m.path for m in group_members if m.results is None]
        systems = list(dict.fromkeys(s for m in done for s in m.results.get("per_seed", {})))
        for system in systems or ["–"]:
            row = Row(system, group, [], missing, {})
            for member in done:
                result = member.results.get(system)
                if result is None:
                    row.missing = [*row.missing, member.path]
                    continue
                row.seeds.append(_seed(member))
                for metric, value in result.items():
                    if metric.endswith("_std") or _PER_SLOT.match(metric):
                        continue
                    metrics.append(metric)
                    row.values.setdefault(metric, []).append(value)
            rows[(system, group)] = row
    for row in rows.values():  # a metric only some members of a row have is missing there
        for values in row.values.values():
            values += [None] * (len(row.seeds) - len(values))
    order = list(LABELS)
    ordered = sorted(set(metrics), key=lambda m: (order.index(m) if m in order else len(order), m))
    return list(rows.values()), ordered


def display_value(key: str, value: str, members: list[Member]) -> str:
    """A swept value as the table shows it: an ablation by its label (w/o CL), else as given."""
    if key == "ablation":
        for member in members:
            if member.settings.get(key) == value and member.results:
                return member.results.get("ablation", {}).get("label", value)
    return value


def _cell(row: Row, metric: str) -> str:
    """mean ± std; "–" where the metric does not apply to the row, "missing" where a member
    could not compute it (e.g. Con.Score without a scorer) or no member of the row finished."""
    if not row.seeds:
        return "missing"
    if metric not in row.values:
        return "–"
    mean, std = row.mean_std(metric)
    if mean is None:
        return "missing"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def markdown_table(rows: list[Row], metrics: list[str], members: list[Member]) -> str:
    """The table with one row per system and swept setting, then the missing members."""
    keys = [k for k, _ in rows[0].group] if rows else []
    header = ["system", *keys, "n", "seeds", "missing", *(LABELS.get(m, m) for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in rows:
        cells = [row.system, *(display_value(k, v, members) for k, v in row.group),
                 str(len(row.seeds)), ",".join(row.seeds) or "–", str(len(row.missing)),
                 *(_cell(row, m) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", f"{len(members)} members; mean ± sample std over the n members (training seeds) "
             "of each row; fact accuracy and code recall/accuracy are fractions, the other "
             "metrics ×100; sBLEU: lower is more diverse."]
    short = [(m, short_budgets(m)) for m in members]
    short = [(m, stages) for m, stages in short if stages]
    if short:
        notes.append(f"\nMay be under-trained (results.json's `training`): {len(short)}")
        notes += [f"- `{m.path.name}`: " + ", ".join(stages) for m, stages in short]
    missing = [m for m in members if m.results is None]
    if missing:
        notes.append(f"\nMissing (no results.json, failed or unfinished): {len(missing)}")
        notes += [f"- `{m.path.name}`: " + " ".join(f"{k}={v}" for k, v in m.settings.items())
                  for m in missing]
    return "\n".join(lines) + "\n" + "\n".join(notes) + "\n"


def short_budgets(member: Member) -> list[str]:
    """The stages behind a member's systems that their wall-time cap cut short or that ended
    their budget with the validation loss still falling, each with the reason."""
    short = []
    for stage, budget in sorted((member.results or {}).get("training", {}).items()):
        if budget.get("stopped_by") == "max_minutes":
            short.append(f"{stage} (cut short by its wall-time cap)")
        elif budget.get("still_falling"):
            short.append(f"{stage} (still falling)")
    return short


def write_csv(rows: list[Row], metrics: list[str], members: list[Member], path: Path) -> None:
    """One line per row: system, swept settings, n, seeds, missing, then mean and std per metric."""
    keys = [k for k, _ in rows[0].group] if rows else []
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["system", *keys, "n", "seeds", "missing",
                         *(f"{m}{part}" for m in metrics for part in ("", "_std"))])
        for row in rows:
            stats = [row.mean_std(m) for m in metrics]
            writer.writerow([row.system, *(display_value(k, v, members) for k, v in row.group),
                             len(row.seeds), " ".join(row.seeds), len(row.missing),
                             *("" if x is None else x for pair in stats for x in pair)])


def aggregate(sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Write table.md, table.csv and the plots; returns the paths written."""
    from morpheus_pl.sweep_plots import plot_rows

    members = read_members(sweep_dir)
    if not any(m.results for m in members):
        raise FileNotFoundError(f"no results.json under {sweep_dir} ({len(members)} members found)")
    rows, metrics = build_rows(members)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "table.md"
    table.write_text(markdown_table(rows, metrics, members))
    write_csv(rows, metrics, members, out_dir / "table.csv")
    labels = {(k, v): display_value(k, v, members) for row in rows for k, v in row.group}
    plots = plot_rows(rows, metrics, labels, out_dir)
    return [table, out_dir / "table.csv", *plots]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("multirun_dir", type=Path, help="a finished (or partly failed) Hydra sweep")
    parser.add_argument("--out", type=Path, default=None, help="default: <multirun_dir>/aggregate")
    args = parser.parse_args(argv)
    try:
        paths = aggregate(args.multirun_dir, args.out or args.multirun_dir / "aggregate")
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 1
    print(paths[0].read_text())
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
