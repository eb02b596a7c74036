#!/usr/bin/env bash
# Run one paper experiment (conf/experiment/<name>.yaml) as a Hydra sweep, then aggregate it
# into paper-style tables and plots (python -m morpheus_pl.aggregate). Failed members do not stop
# the sweep: they are listed as missing in the table, and the script exits non-zero.
#   bash experiments/run_experiment.sh <table2|table4|figure3|beta> [overrides...]
#   SWEEP_DIR=multirun/mine bash experiments/run_experiment.sh table4 seed=0
set -uo pipefail
NAME=${1:?usage: run_experiment.sh <experiment> [overrides...]}
shift
PY=${PY:-.venv/bin/python}
DIR=${SWEEP_DIR:-multirun/$NAME/$(date +%Y-%m-%d_%H-%M-%S)}
$PY -m morpheus_pl.run -m "+experiment=$NAME" "hydra.sweep.dir=$DIR" "$@"
status=$?
$PY -m morpheus_pl.aggregate "$DIR" || status=1
exit $status
