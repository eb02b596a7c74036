"""The role-awareness protocol: does the default pipeline learn to read personas on persona
worlds it has never seen? (docs/persona_zoo.md)

For every zoo world (`morpheus_pl.data.persona_zoo`) and seed it runs the whole pipeline as a
new user would, `stage=pipeline dataset=convai2 dataset.root=<world>` with default settings,
and collects stage 1's `val/persona_gain` curve, the persona fact accuracy of every system, the
world's count-model reference from the history (what the dialogues allow without a persona),
the asked kind's marginal (what a reply that ignores the history reaches) and the wall time.
The same checkpoints are evaluated again with greedy decoding (`greedy/`): the count model is
an argmax predictor. `chitchat` (real dialogues, no recorded facts) adds the persona gain, and
P-Co and BLEU-1 per system in a table of its own.

    python experiments/persona_zoo.py --worlds few_kinds issue16 --seeds 0 1 2 --out zoo_runs
    python experiments/persona_zoo.py --collect zoo_runs      # table and plot of finished runs
    python experiments/persona_zoo.py --collect zoo_a zoo_b --out zoo_all   # of several folders

Extra arguments after `--` are Hydra overrides for every run (e.g. `-- loss.weights.segment=0`
for the paper's stage 1). Writes `<out>/table.md`, `<out>/table.json` and
`<out>/persona_gain.png`; the last line printed is the table's path.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from morpheus_pl.data.persona_zoo import WORLDS, write_world
from morpheus_pl.data.world_ceilings import kind_marginal_accuracy
from morpheus_pl.evaluation import most_frequent_codes_recall
from morpheus_pl.metrics.fact_recall import fact_recall_scores

# `morpheus` is the configured code decoding; the others as `eval.compare_decode` gave them
# (top_m_distinct was the default from commit f927d7a to covering, and a comparison row before
# and after)
SYSTEMS = ("true_persona", "morpheus", "morpheus/argmax", "morpheus/top_m_distinct", "no_persona")
# what a real member without recorded facts is compared by, and on which systems
TEXT_METRICS = ("p_co", "bleu1")
REAL_SYSTEMS = ("true_persona", "morpheus", "no_persona")
# real dialogues, cut to the zoo's size (a few thousand training examples)
REAL = {"chitchat": ["dataset.chitchat.max_examples={train:3000,val:200,test:300}"]}


def run_one(world: str, seed: int, out: Path, overrides: list[str]) -> None:
    """One pipeline run of `world` with training seed `seed` (the world's data is seed 0), then
    the same checkpoints evaluated with greedy decoding into `greedy/`."""
    run_dir = out / "runs" / world / f"seed{seed}"
    for stage, where, extra in (("pipeline", run_dir, []),
                                ("evaluate", run_dir / "greedy", ["generation.do_sample=false"])):
        if (where / "results.json").exists():
            print(f"{world} seed {seed} {stage}: done already ({where})", flush=True)
            continue
        _run(world, seed, out, stage, where, [*overrides, *extra])


def _run(world: str, seed: int, out: Path, stage: str, where: Path, overrides: list[str]) -> None:
    run_pipeline([f"stage={stage}", *dataset_overrides(world, out / "data"), f"seed={seed}", *overrides],
                 where, out / "home", out / "runs" / f"{world}_seed{seed}_{stage}.log",
                 f"{world} seed {seed} {stage}")


def dataset_overrides(world: str, data_root: Path) -> list[str]:
    """The overrides that make `world` the run's dataset: a real member's config, or a zoo
    world written (once, data seed 0) under `data_root/<world>` and read as the paper's JSON
    (the folder is part of every stage's fingerprint: runs that reuse stages read one folder)."""
    if world in REAL:
        return [f"dataset={world}", *REAL[world]]
    data_dir = data_root / world
    if not (data_dir / "world.json").exists():
        write_world(WORLDS[world], data_dir, seed=0)
    return ["dataset=convai2", f"dataset.root={data_dir}"]


def run_pipeline(overrides: list[str], where: Path, home: Path, log_path: Path, name: str) -> None:
    """`python -m morpheus_pl.run <overrides>` into `where`, stage checkpoints under `home`
    (MORPHEUS_HOME: runs that share a stage's settings share its checkpoint), its output into
    `log_path`, its wall time into `where/wall_s.txt`."""
    command = [sys.executable, "-m", "morpheus_pl.run", *overrides, f"hydra.run.dir={where}"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w") as log_file:
        code = subprocess.call(command, env={**os.environ, "MORPHEUS_HOME": str(home)},
                               stdout=log_file, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    where.mkdir(parents=True, exist_ok=True)
    (where / "wall_s.txt").write_text(f"{wall:.0f}\n")
    print(f"{name}: exit {code}, {wall / 60:.1f} min ({where})", flush=True)


def recall_reference(report: dict, run_dir: Path, system: str) -> float | None:
    """The code recall of always picking the M most frequent gold codes
    (`most_frequent_codes_recall`); recomputed from predictions.jsonl for a run made before
    results.json recorded it."""
    if "code_recall" not in report[system] or "code_recall_majority" in report[system]:
        return report[system].get("code_recall_majority")
    with (run_dir / "predictions.jsonl").open() as handle:
        gold = [row["gold_codes"] for row in map(json.loads, handle) if row["system"] == system]
    return most_frequent_codes_recall(torch.tensor(gold))


def fact_recall(report: dict, run_dir: Path, data_dir: Path, system: str) -> float | None:
    """The share of a test persona's facts that the codes `system` picked name
    (`fact_recall_scores`); recomputed from predictions.jsonl and the world's data for a run made
    before results.json recorded it. None for a system without codes."""
    if "fact_recall" in report[system] or report[system].get("code_recall") is None:
        return report[system].get("fact_recall")
    test = json.loads((data_dir / "test_datas_en.json").read_text())
    with (run_dir / "predictions.jsonl").open() as handle:
        rows = [row for row in map(json.loads, handle) if row["system"] == system]
    return fact_recall_scores(rows, (record["fact_options"] for record in test), ".").get("fact_recall")


def gain_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, val/persona_gain) of the run's stage 1, from its CSV log (empty if not trained
    in this run)."""
    found = sorted((run_dir / "logs" / "role_awareness").glob("version_*/metrics.csv"))
    if not found:
        return []
    with open(found[-1]) as f:
        return [(int(r["step"]), float(r["val/persona_gain"])) for r in csv.DictReader(f)
                if r.get("val/persona_gain")]


def collect(out: Path) -> list[dict]:
    """One row per world and seed of the finished runs under `out/runs`: fact accuracies, and
    for every system its P-Co and BLEU-1 (what a real member without recorded facts reports)."""
    rows = []
    for run_dir in sorted((out / "runs").glob("*/seed*")):
        results = run_dir / "results.json"
        if not results.exists():
            continue
        world, report = run_dir.parent.name, json.loads(results.read_text())
        greedy_file = run_dir / "greedy" / "results.json"
        greedy = json.loads(greedy_file.read_text()) if greedy_file.exists() else {}
        world_json = out / "data" / world / "world.json"
        reference = (json.loads(world_json.read_text())["count_model_fact_accuracy"]["history"]
                     if world_json.exists() else None)
        curve = gain_curve(run_dir)
        wall = run_dir / "wall_s.txt"
        rows.append({
            "world": world, "seed": int(run_dir.name.removeprefix("seed")),
            "gain_curve": curve, "final_gain": curve[-1][1] if curve else None,
            "count_model_history": reference, "kind_marginal": kind_marginal(out / "data" / world),
            "wall_min": float(wall.read_text()) / 60 if wall.exists() else None,
            **{system: (report.get(system) or {}).get("persona_fact_accuracy")
               for system in SYSTEMS},
            **{f"{system} greedy": (greedy.get(system) or {}).get("persona_fact_accuracy")
               for system in SYSTEMS},
            **{f"{system} {metric}": (report.get(system) or {}).get(metric)
               for system in SYSTEMS for metric in TEXT_METRICS},
        })
    return rows


@functools.cache
def kind_marginal(data_dir: Path) -> float | None:
    """The asked kind's most frequent training value as the answer, on the test split (None for
    a member without its data here or without recorded facts); read once per world folder."""
    train, test = (data_dir / "train_datas_en.json", data_dir / "test_datas_en.json")
    if not (train.exists() and test.exists()):
        return None
    return kind_marginal_accuracy(json.loads(train.read_text()), json.loads(test.read_text()))


def collect_all(outs: list[Path]) -> list[dict]:
    """The rows of several protocol folders; a world and seed found in more than one comes from
    the last folder that has it."""
    rows = {}
    for out in outs:
        rows.update({(row["world"], row["seed"]): row for row in collect(out)})
    return list(rows.values())


def paired_cell(diffs: list[float]) -> str:
    """Paired differences as "mean (each seed's)", "–" for none."""
    if not diffs:
        return "–"
    return f"{statistics.fmean(diffs):+.3f} ({', '.join(f'{d:+.3f}' for d in diffs)})"


def mean_std(values: list) -> str:
    """The values that are not None as "mean ± sample std" ("–" for none, the value for one)."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(rows: list[dict]) -> str:
    """Markdown: one line per world, mean ± std over its seeds; worlds with recorded facts by
    fact accuracy, real members (no facts) in a second table by P-Co and BLEU-1."""
    has_facts = {r["world"] for r in rows if any(r[s] is not None for s in SYSTEMS)}
    facts = ["final_gain", *SYSTEMS, *(f"{s} greedy" for s in SYSTEMS), "count_model_history",
             "kind_marginal", "wall_min"]
    text = ["final_gain", *(f"{s} {m}" for m in TEXT_METRICS for s in REAL_SYSTEMS), "wall_min"]
    parts = [_table([r for r in rows if r["world"] in has_facts], facts),
             _table([r for r in rows if r["world"] not in has_facts], text)]
    return "\n".join(part for part in parts if part)


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return ""
    lines = ["| world | seeds | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for world in dict.fromkeys(r["world"] for r in rows):
        mine = [r for r in rows if r["world"] == world]
        seeds = ",".join(str(r["seed"]) for r in mine)
        lines.append(f"| {world} | {seeds} | "
                     + " | ".join(mean_std([r[c] for r in mine]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colours = {}
    for row in rows:
        if not row["gain_curve"]:
            continue
        colour = colours.setdefault(row["world"], f"C{len(colours)}")
        steps, gains = zip(*row["gain_curve"])
        ax.plot(steps, gains, color=colour, marker="o", ms=3,
                label=row["world"] if row["world"] not in ax.get_legend_handles_labels()[1] else None)
    ax.axhline(0.1, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("stage-1 step")
    ax.set_ylabel("val/persona_gain (nats / response token)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", nargs="+", default=[*WORLDS, *REAL],
                        choices=[*WORLDS, *REAL])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, help="where runs and tables go (default: zoo_runs, "
                                                 "or with --collect its first folder)")
    parser.add_argument("--collect", type=Path, nargs="+",
                        help="only tabulate the runs under these folders (a world and seed in "
                             "several: the last folder's), into the first folder or --out")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    args = parser.parse_args()
    if args.collect:
        out = (args.out or args.collect[0]).resolve()
        rows = collect_all([folder.resolve() for folder in args.collect])
    else:
        out = (args.out or Path("zoo_runs")).resolve()
        for world in args.worlds:
            for seed in args.seeds:
                run_one(world, seed, out, args.overrides)
        rows = collect(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(rows, indent=2))
    (out / "table.md").write_text(table(rows))
    plot(rows, out / "persona_gain.png")
    print(table(rows))
    print(out / "table.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
