#!/usr/bin/env bash
# The beta sensitivity: MORPHEUS against the commitment weight beta, three seeds
# (conf/experiment/beta.yaml), then its tables and plots. Extra arguments are Hydra overrides, e.g.
#   bash experiments/beta.sh train.role_awareness.max_steps=300 train.joint.max_steps=100 seed=0
exec bash "$(dirname "$0")/run_experiment.sh" beta "$@"
