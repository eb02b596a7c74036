"""The code-predictor study (docs/predictor_study.md): today's predictor against each order-free
option, Eq. 1 at inference and train as you infer, beside w/o PC, oracle codes, no persona and
true persona, per world and seed, with paired differences against today's default.

Every (world, row, seed) is one `stage=pipeline` run with the row's overrides. All runs share
one MORPHEUS_HOME (`--home`), so a row retrains only what its settings change: the options
change the joint stage alone, so role awareness, the codebook and the no-persona baseline are
trained once per world and seed (pass the persona-zoo protocol's `--home <its out>/home --data
<its out>/data` to reuse its stages: a world's data folder is part of every fingerprint).
The decodings of one checkpoint (argmax, distinct_argmax, expected, rescored) are rows of the
default run (`eval.compare_decode`), so they differ in the decoding alone.

    python experiments/predictor_study.py --worlds default sparse few_kinds issue16 chitchat \
        --seeds 0 1 2 --out study_runs
    python experiments/predictor_study.py --collect study_runs   # tables of finished runs
    python experiments/predictor_study.py --collect earlier/study.json study_runs --out merged
        # with the records an earlier collect wrote (its run folders gone)

Extra arguments after `--` are Hydra overrides for every run. Writes `<out>/study.md` and
`<out>/study.json`; the last line printed is the table's path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collected_records import merged_records, sources_and_out  # noqa: E402
from persona_zoo import (  # noqa: E402
    REAL,
    WORLDS,
    dataset_overrides,
    mean_std,
    paired_cell,
    recall_reference,
    run_pipeline,
)

# the synthetic world (data/synthetic_world.py) in its two regimes (experiments/world_regimes.sh)
SYNTHETIC = {"default": [], "sparse": ["dataset.world.train_roles=300",
                                       "dataset.world.dialogues_per_role=2"]}
# the default row's other decodings (the default decoding is covering since commit 43a0556;
# runs made before decode the default row with top_m_distinct and list covering here)
DECODINGS = ("top_m_distinct", "argmax", "distinct_argmax", "expected", "rescored")
ROWS = {
    "default": ["eval.systems=[morpheus,no_persona,true_persona,oracle_codes]",
                f"eval.compare_decode=[{','.join(DECODINGS)}]"],
    "set": ["predictor.loss=set", "predictor.decode=distinct_argmax"],
    "set_covering": ["predictor.loss=set", "predictor.decode=covering"],
    # the set loss with dead codes re-seeded (its few_kinds seed 2 lost 85 of 100 codes)
    "set_reseed": ["predictor.loss=set", "predictor.decode=distinct_argmax",
                   "codebook.reseed_below=0.1"],
    # the two options above the default on few_kinds together: the set loss with re-seeding
    # and the covering decoding (the default's since 43a0556; named for the runs before it)
    "set_reseed_covering": ["predictor.loss=set", "predictor.decode=covering",
                            "codebook.reseed_below=0.1"],
    "bag": ["predictor.loss=bag"],
    "reads_mean": ["predictor.reads=mean"],
    "slot_attention": ["predictor.reads=slot_attention"],
    "train_as_you_infer": ["loss.predicted_prefix_share=0.5", "loss.predicted_prefix_schedule=linear",
                           "loss.predicted_prefix_grad=true"],
    "wo_pc": ["ablation=no_pc"],
}
OPTION_ROW = ["eval.systems=[morpheus]", "eval.compare_decode=[]"]  # every row but the default
COLUMNS = ("persona_fact_accuracy", "code_recall", "code_recall_majority", "fact_recall",
           "fact_recall_majority", "code_accuracy", "code_accuracy_majority", "bleu1", "rouge_l", "p_co",
           "distinct2", "generate_s_per_example")
BASELINE = ("default", "morpheus")  # what the paired differences are taken against


def run_one(world: str, row: str, seed: int, out: Path, home: Path, overrides: list[str],
            data_root: Path | None = None) -> None:
    """One pipeline run of `row` on `world` with training seed `seed`, unless it finished; zoo
    worlds' data under `data_root` (default `<out>/data`)."""
    where = out / "runs" / world / row / f"seed{seed}"
    if (where / "results.json").exists():
        print(f"{world} {row} seed {seed}: done already ({where})", flush=True)
        return
    dataset = (SYNTHETIC[world] if world in SYNTHETIC
               else dataset_overrides(world, data_root or out / "data"))
    row_overrides = ROWS[row] if row == "default" else [*OPTION_ROW, *ROWS[row]]
    run_pipeline(["stage=pipeline", *dataset, f"seed={seed}", *row_overrides, *overrides], where,
                 home, out / "runs" / f"{world}_{row}_seed{seed}.log", f"{world} {row} seed {seed}")


def collect(out: Path) -> list[dict]:
    """One record per world, row, system and seed of the finished runs under `out/runs`: the
    default run gives a record per system and decoding, an option run its `morpheus`."""
    records = []
    for results in sorted((out / "runs").glob("*/*/seed*/results.json")):
        run_dir = results.parent
        world, row = run_dir.parent.parent.name, run_dir.parent.name
        report = json.loads(results.read_text())
        systems = [s for s in report if isinstance(report[s], dict) and "bleu1" in report[s]]
        for system in systems if row == "default" else ["morpheus"]:
            records.append({"world": world, "row": row, "system": system,
                            "seed": int(run_dir.name.removeprefix("seed")),
                            **{c: report[system].get(c) for c in COLUMNS},
                            "code_recall_majority": recall_reference(report, run_dir, system),
                            "source": str(run_dir)})
    return records


def load_records(sources: list[Path]) -> list[dict]:
    """The records of folders of runs (`collect`) and of records files an earlier collect wrote
    (study.json), one per world, row, system and seed."""
    return merged_records(sources, collect, ("world", "row", "system", "seed"), set(COLUMNS))


def paired_metric(records: list[dict], world: str) -> str:
    """What the rows of `world` are paired on: fact accuracy, or P-Co on a world without
    recorded facts (chitchat)."""
    mine = [r for r in records if r["world"] == world]
    return "persona_fact_accuracy" if any(r["persona_fact_accuracy"] is not None for r in mine) else "p_co"


def paired_differences(records: list[dict], world: str, row: str, system: str) -> list[float]:
    """Per seed that both have: `paired_metric` of (row, system) minus the baseline's."""
    metric = paired_metric(records, world)

    def by_seed(r: str, s: str) -> dict[int, float]:
        return {x["seed"]: x[metric] for x in records
                if (x["world"], x["row"], x["system"]) == (world, r, s) and x[metric] is not None}
    mine, base = by_seed(row, system), by_seed(*BASELINE)
    return [mine[s] - base[s] for s in sorted(mine.keys() & base.keys())]


def table(records: list[dict]) -> str:
    """Markdown, one table per world: a line per (row, system), means ± std over seeds, and
    the difference to today's default paired by seed (mean and each seed's) in fact accuracy,
    or in P-Co where the world records no facts."""
    lines = []
    for world in dict.fromkeys(r["world"] for r in records):
        paired_on = "fact acc" if paired_metric(records, world) == "persona_fact_accuracy" else "P-Co"
        lines += [f"### {world}", "",
                  "| row | system | seeds | " + " | ".join(COLUMNS) + f" | Δ {paired_on} (paired) |",
                  "|---|---|---|" + "---|" * (len(COLUMNS) + 1)]
        mine = [r for r in records if r["world"] == world]
        for row, system in dict.fromkeys((r["row"], r["system"]) for r in mine):
            cell = [r for r in mine if (r["row"], r["system"]) == (row, system)]
            diffs = paired_differences(records, world, row, system)
            paired = paired_cell(diffs) if (row, system) != BASELINE else "–"
            lines.append(f"| {row} | {system} | {','.join(str(r['seed']) for r in cell)} | "
                         + " | ".join(mean_std([r[c] for r in cell]) for c in COLUMNS)
                         + f" | {paired} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    worlds = [*SYNTHETIC, *WORLDS, *REAL]
    parser.add_argument("--worlds", nargs="+", default=["default", "sparse", "few_kinds",
                                                        "issue16", "chitchat"], choices=worlds)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, help="where runs and the table go (default study_runs; "
                        "with --collect, its first folder)")
    parser.add_argument("--home", type=Path, help="MORPHEUS_HOME of every run (default: <out>/home)")
    parser.add_argument("--data", type=Path, help="where the zoo worlds' data are (default: <out>/data)")
    parser.add_argument("--collect", nargs="+", type=Path, metavar="SOURCE",
                        help="only tabulate: folders of runs and records files (study.json)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    args = parser.parse_args()
    sources, out = sources_and_out(args.collect, args.out, Path("study_runs"))
    if not args.collect:
        home = (args.home or out / "home").resolve()
        for world in args.worlds:
            for seed in args.seeds:
                for row in args.rows:
                    run_one(world, row, seed, out, home, args.overrides,
                            args.data.resolve() if args.data else None)
    records = load_records(sources)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(records, indent=2))
    (out / "study.md").write_text(table(records))
    print(table(records))
    print(out / "study.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
