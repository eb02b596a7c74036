#!/usr/bin/env bash
# Table 2: MORPHEUS vs the no-persona and true-persona baselines, three seeds
# (conf/experiment/table2.yaml), then its tables and plots. Extra arguments are Hydra overrides, e.g.
#   bash experiments/table2.sh train.role_awareness.max_steps=300 train.joint.max_steps=100 seed=0
exec bash "$(dirname "$0")/run_experiment.sh" table2 "$@"
