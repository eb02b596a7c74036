#!/usr/bin/env bash
# The synthetic world in its two regimes (docs/data.md, "The synthetic world"): the default world, where
# training dialogues are plentiful, and a sparse one (few roles), where persona supervision carries
# structure the dialogues show only sparsely. Each run prints its output directory last.
#   bash experiments/world_regimes.sh [extra overrides...]
set -euo pipefail
PY=${PY:-.venv/bin/python}
$PY -m morpheus_pl.run "$@" | tail -1
$PY -m morpheus_pl.run dataset.world.train_roles=300 dataset.world.dialogues_per_role=2 "$@" | tail -1
