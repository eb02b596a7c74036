#!/usr/bin/env bash
# Figure 3: MORPHEUS against the codebook size N = 20, 50, 100, 200, 500, three seeds
# (conf/experiment/figure3.yaml), then its tables and plots. Extra arguments are Hydra overrides, e.g.
#   bash experiments/figure3.sh train.role_awareness.max_steps=300 train.joint.max_steps=100 seed=0
exec bash "$(dirname "$0")/run_experiment.sh" figure3 "$@"
