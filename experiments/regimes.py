"""A map of where the codebook helps (docs/regimes.md): over data sparsity (training roles x
dialogues per role) and facts revealed per dialogue, MORPHEUS against w/o PC, no persona, true
persona and the world's history-only reference (a count model over the history's facts).

Each grid point is a zoo world (`morpheus_pl.data.persona_zoo`, data seed 0) made from one base
world by changing those knobs alone; per point and seed two pipeline runs: MORPHEUS with the
no-persona and true-persona baselines, and w/o PC (`ablation=no_pc`). `--morpheus` takes
overrides for the MORPHEUS runs only (the study's best predictor options, e.g. `--morpheus
predictor.loss=set predictor.decode=distinct_argmax`); overrides after `--` apply to every run.
`--set KNOB=VALUE` changes the base world for every point (a probe: give it its own `--out`).

    bash experiments/regimes.sh --seeds 0 1 --out regimes_runs [--sparsity 300x1 1000x1]
    bash experiments/regimes.sh --collect regimes_runs   # table and regimes.png of finished runs
    bash experiments/regimes.sh --collect docs/regimes_records.json regimes_runs --out merged
    bash experiments/regimes.sh --set kinds=5 --sparsity 1000x2 --revealed 2 --seeds 1 --out probe

A collect writes its records to regimes.json beside the table; such a file is a source too, so
seeds whose run folders are gone (docs/regimes_records.json) join the table of new runs.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collected_records import merged_records, sources_and_out  # noqa: E402
from persona_zoo import fact_recall, mean_std, paired_cell, recall_reference, run_pipeline  # noqa: E402

from morpheus_pl.convergence import still_falling  # noqa: E402
from morpheus_pl.data.persona_zoo import ZooWorld, with_knobs, write_world  # noqa: E402
from morpheus_pl.handoff import provenance_chain  # noqa: E402

BASE = ZooWorld(kinds=10, values_per_kind=5, archetypes=5, persona_facts=5, val_roles=100,
                test_roles=300)
# (training roles, dialogues per role), from plentiful to one dialogue per role
SPARSITY = ((3000, 3), (1000, 2), (1000, 1), (300, 1))
REVEALED = (0, 1, 2, 3)
RUNS = {"morpheus": ["eval.systems=[morpheus,no_persona,true_persona]"],
        "wo_pc": ["ablation=no_pc", "eval.systems=[morpheus]"]}
SYSTEMS = {("morpheus", "morpheus"): "MORPHEUS", ("wo_pc", "morpheus"): "w/o PC",
           ("morpheus", "no_persona"): "no persona", ("morpheus", "true_persona"): "true persona"}
# what a records file's records need (persona_recall, fact_recall, source: optional)
RECORD_FIELDS = {"point", "roles", "dialogues", "revealed", "system", "seed", "fact_accuracy",
                 "code_recall", "code_recall_majority", "history_reference", "still_falling",
                 "stage1_gain"}
# the trained stages behind each evaluated system (codebook initialisation trains nothing)
STAGES = {"morpheus": ("role_awareness", "joint"), "no_persona": ("no_persona",),
          "true_persona": ("role_awareness",)}


def point_name(roles: int, dialogues: int, revealed: int) -> str:
    return f"roles{roles}x{dialogues}_revealed{revealed}"


def point_world(roles: int, dialogues: int, revealed: int, base: ZooWorld | None = None) -> ZooWorld:
    """`base` (default BASE) with the point's knobs."""
    return dataclasses.replace(base or BASE, train_roles=roles, dialogues_per_role=dialogues, revealed=revealed)


def run_point(roles: int, dialogues: int, revealed: int, seed: int, out: Path,
              overrides: list[str], morpheus_overrides: list[str], base: ZooWorld | None = None) -> None:
    """Both runs of one grid point and seed, each unless it finished; the point's world is
    `base` (default BASE) with the point's knobs, and a world already in `out` must be that one."""
    name = point_name(roles, dialogues, revealed)
    data_dir, world = out / "data" / name, point_world(roles, dialogues, revealed, base)
    if not (data_dir / "world.json").exists():
        write_world(world, data_dir, seed=0)
    elif json.loads((data_dir / "world.json").read_text())["world"] != json.loads(json.dumps(dataclasses.asdict(world))):
        raise SystemExit(f"{data_dir}: holds another world than {world} (another --set?); "
                         "use another --out")
    for run, run_overrides in RUNS.items():
        where = out / "runs" / name / run / f"seed{seed}"
        if (where / "results.json").exists():
            print(f"{name} {run} seed {seed}: done already ({where})", flush=True)
            continue
        extra = morpheus_overrides if run == "morpheus" else []
        run_pipeline(["stage=pipeline", "dataset=convai2", f"dataset.root={data_dir}", f"seed={seed}",
                      *run_overrides, *extra, *overrides], where, out / "home",
                     out / "runs" / f"{name}_{run}_seed{seed}.log", f"{name} {run} seed {seed}")


def collect(out: Path) -> list[dict]:
    """One record per grid point, system and seed of the finished runs, with the point's knobs
    and history-only reference."""
    records = []
    for results in sorted((out / "runs").glob("*/*/seed*/results.json")):
        run_dir = results.parent
        name, run = run_dir.parent.parent.name, run_dir.parent.name
        world = json.loads((out / "data" / name / "world.json").read_text())
        report = json.loads(results.read_text())
        gain = stage_one_gain(report)
        for (r, system), label in SYSTEMS.items():
            if r == run and system in report:
                records.append({
                    "point": name, "roles": world["world"]["train_roles"],
                    "dialogues": world["world"]["dialogues_per_role"],
                    "revealed": world["world"]["revealed"], "system": label,
                    "seed": int(run_dir.name.removeprefix("seed")),
                    "fact_accuracy": report[system]["persona_fact_accuracy"],
                    "code_recall": report[system].get("code_recall"),
                    "code_recall_majority": recall_reference(report, run_dir, system),
                    "history_reference": world["count_model_fact_accuracy"]["history"],
                    "persona_recall": world.get("persona_recall"),
                    "fact_recall": fact_recall(report, run_dir, out / "data" / name, system),
                    "still_falling": falling_stages(report, run_dir, system),
                    "stage1_gain": gain, "source": str(run_dir)})
    return records


def load_records(sources: list[Path]) -> list[dict]:
    """The records of folders of runs (`collect`) and of records files an earlier collect wrote
    (regimes.json, docs/regimes_records.json), one per grid point, system and seed."""
    return merged_records(sources, collect, ("point", "system", "seed"), RECORD_FIELDS)


def stage_one_gain(report: dict) -> float | None:
    """Stage 1's `val/persona_gain` at its last validation (how much the true persona lowers
    the reply loss: whether the decoder learned to read the prefix), from the provenance.json
    chain of the run's checkpoints; None where that chain is not on this machine."""
    for provenance in provenance_chain(report.get("checkpoints", {}).values()):
        if provenance["stage"] == "role_awareness":
            return provenance["last_validation"].get("val/persona_gain")
    return None


def falling_stages(report: dict, run_dir: Path, system: str) -> list[str]:
    """The stages behind `system` whose validation loss was still falling when their budget
    ended (an under-trained system): results.json's `training`; for a run made before it
    recorded `still_falling`, the stage's logged val/loss (logs/<stage>/.../metrics.csv of the
    run, else of the other run of the point and seed, which shares stage 1)."""
    training, falling = report.get("training", {}), []
    for stage in STAGES[system]:
        if "still_falling" in training.get(stage, {}):
            recorded = training[stage]["still_falling"]
        else:
            logs = (sorted(run_dir.glob(f"logs/{stage}/version_*/metrics.csv"))
                    or sorted(run_dir.parent.parent.glob(f"*/{run_dir.name}/logs/{stage}/version_*/metrics.csv")))
            recorded = bool(logs) and still_falling(logged_val_losses(logs[-1]))
        if recorded:
            falling.append(stage)
    return falling


def logged_val_losses(metrics_csv: Path) -> list[float]:
    """The val/loss column of a Lightning CSV log, in logging order."""
    with metrics_csv.open(newline="") as handle:
        return [float(row["val/loss"]) for row in csv.DictReader(handle) if row.get("val/loss")]


def table(records: list[dict]) -> str:
    """Markdown: a line per grid point (from plentiful to sparse data), stage 1's persona gain,
    how much of the persona the history and MORPHEUS's codes identify (`persona_cell`), its code recall
    with its reference (always the M most frequent codes), fact accuracy per system (†: a stage
    behind it ended still learning on some seed), all mean ± std over seeds, the history-only
    reference, and MORPHEUS minus no persona and minus w/o PC (the codebook's own share) paired
    by seed."""
    labels = list(SYSTEMS.values())
    lines = ["| roles × dialogues | revealed | seeds | stage-1 gain | persona recall: count model over "
             "the history / MORPHEUS's codes (M most frequent facts) | MORPHEUS code recall "
             "(M most frequent codes) | "
             + " | ".join(labels) + " | history reference | MORPHEUS − no persona (paired) "
             "| MORPHEUS − w/o PC (paired) |",
             "|---|---|---|---|---|---|" + "---|" * (len(labels) + 3)]
    order = sorted(records, key=lambda r: (-r["roles"] * r["dialogues"], -r["roles"], r["revealed"]))
    for point in dict.fromkeys(r["point"] for r in order):
        mine = [r for r in records if r["point"] == point]
        by = {label: {r["seed"]: r["fact_accuracy"] for r in mine if r["system"] == label}
              for label in labels}
        falling = {r["system"] for r in mine if r["still_falling"]}
        cells = [mean_std(list(by[label].values())) + (" †" if label in falling else "")
                 for label in labels]
        paired = [paired_cell([by["MORPHEUS"][seed] - by[other][seed]
                               for seed in sorted(by["MORPHEUS"].keys() & by[other].keys())])
                  for other in ("no persona", "w/o PC")]
        morpheus = [r for r in mine if r["system"] == "MORPHEUS"]
        codes = (f"{mean_std([r['code_recall'] for r in morpheus])} "
                 f"({mean_std([r['code_recall_majority'] for r in morpheus])})")
        lines.append(f"| {mine[0]['roles']} × {mine[0]['dialogues']} | {mine[0]['revealed']} | "
                     f"{','.join(str(s) for s in sorted({r['seed'] for r in mine}))} | "
                     f"{mean_std([r['stage1_gain'] for r in morpheus])} | {persona_cell(mine)} | {codes} | "
                     + " | ".join(cells) + f" | {mine[0]['history_reference']:.3f} | " + " | ".join(paired) + " |")
    under = [f"{r['point']} seed {r['seed']} {r['system']} ({', '.join(r['still_falling'])})"
             for r in sorted(records, key=lambda r: (r["point"], r["seed"])) if r["still_falling"]]
    if under:
        lines += ["", "† a stage behind it ended its budget with its validation loss still falling "
                  "(under-trained): " + "; ".join(under)]
    return "\n".join(lines) + "\n"


def persona_cell(records: list[dict]) -> str:
    """How much of the persona is identified at the point: by the count model over the history
    (world.json's `persona_recall`, the same for every seed: the world is data seed 0) / by the
    facts MORPHEUS's picked codes name (`fact_recall`, mean ± std over seeds) (by the M
    most frequent facts); "–" for a number recorded before it existed."""
    recall = next((r["persona_recall"] for r in records if r.get("persona_recall")), None)
    picks = mean_std([r.get("fact_recall") for r in records if r["system"] == "MORPHEUS"])
    if not recall:
        return f"– / {picks} (–)"
    return f"{recall['history']:.3f} / {picks} ({recall['most_frequent']:.3f})"


def plot(records: list[dict], path: Path) -> None:
    """One panel per number of revealed facts; x: the sparsity levels from plentiful to
    sparse; a line per system (mean over seeds, bars from the lowest to the highest seed; a
    ring where a stage behind it ended still learning on some seed) and the history-only
    reference dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    revealed = sorted({r["revealed"] for r in records})
    levels = sorted({(r["roles"], r["dialogues"]) for r in records}, key=lambda lv: (-lv[0] * lv[1], -lv[0]))
    fig, axes = plt.subplots(1, len(revealed), figsize=(3.2 * len(revealed), 3.8), sharey=True,
                             squeeze=False)
    for ax, k in zip(axes[0], revealed):
        for i, label in enumerate([*SYSTEMS.values(), "history reference"]):
            xs, means, lows, highs, rings = [], [], [], [], []
            for x, level in enumerate(levels):
                cell = [r for r in records if (r["roles"], r["dialogues"]) == level and r["revealed"] == k
                        and (r["system"] == label or label == "history reference")]
                values = [r["history_reference" if label == "history reference" else "fact_accuracy"]
                          for r in cell]
                if values:
                    mean = statistics.fmean(values)
                    xs.append(x), means.append(mean)
                    lows.append(mean - min(values)), highs.append(max(values) - mean)
                    if label != "history reference" and any(r["still_falling"] for r in cell):
                        rings.append((x, mean))
            style = {"ls": "--", "color": "grey"} if label == "history reference" else {"color": f"C{i}"}
            ax.errorbar(xs, means, yerr=[lows, highs], marker="o", ms=3, capsize=2, label=label, **style)
            if rings:
                ax.scatter(*zip(*rings), s=70, facecolors="none", edgecolors=f"C{i}", linewidths=1)
        ax.set_title(f"{k} fact(s) revealed per dialogue", fontsize=9)
        ax.set_xticks(range(len(levels)), [f"{r}×{d}" for r, d in levels], fontsize=8)
        ax.set_xlabel("training roles × dialogues per role", fontsize=8)
    axes[0][0].set_ylabel("persona fact accuracy")
    handles, _ = axes[0][-1].get_legend_handles_labels()
    if any(r["still_falling"] for r in records):
        handles.append(Line2D([], [], ls="none", marker="o", ms=8, mfc="none", mec="black",
                              label="under-trained (still learning)"))
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--revealed", nargs="+", type=int, default=list(REVEALED))
    parser.add_argument("--sparsity", nargs="+", type=sparsity_level, default=list(SPARSITY),
                        metavar="ROLESxDIALOGUES", help="the sparsity levels to run (default: all four)")
    parser.add_argument("--out", type=Path, help="where runs and the table go (default regimes_runs; "
                        "with --collect, its first folder)")
    parser.add_argument("--collect", nargs="+", type=Path, metavar="SOURCE",
                        help="only tabulate and plot: folders of runs and records files (regimes.json)")
    parser.add_argument("--morpheus", nargs="*", default=[], help="Hydra overrides for the MORPHEUS runs")
    parser.add_argument("--set", nargs="+", default=[], metavar="KNOB=VALUE",
                        help="change the base world's knobs for every point (a probe)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    args = parser.parse_args()
    sources, out = sources_and_out(args.collect, args.out, Path("regimes_runs"))
    try:
        base = with_knobs(BASE, args.set)
    except ValueError as error:
        parser.error(str(error))
    if not args.collect:
        for seed in args.seeds:
            for roles, dialogues in args.sparsity:
                for revealed in args.revealed:
                    run_point(roles, dialogues, revealed, seed, out, args.overrides, args.morpheus, base)
    records = load_records(sources)
    out.mkdir(parents=True, exist_ok=True)
    (out / "regimes.json").write_text(json.dumps(records, indent=2))
    (out / "regimes.md").write_text(table(records))
    plot(records, out / "regimes.png")
    print(table(records))
    print(out / "regimes.md")
    return 0


def sparsity_level(text: str) -> tuple[int, int]:
    """"300x1" -> (300, 1): training roles x dialogues per role."""
    roles, _, dialogues = text.partition("x")
    if not (roles.isdigit() and dialogues.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected ROLESxDIALOGUES, e.g. 300x1")
    return int(roles), int(dialogues)


if __name__ == "__main__":
    sys.exit(main())
