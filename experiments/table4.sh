#!/usr/bin/env bash
# Table 4: the ablations (w/o PC, w/o CL, w/o RA, codebook init random/sequential/mean), three seeds
# (conf/experiment/table4.yaml), then its tables and plots. Extra arguments are Hydra overrides, e.g.
#   bash experiments/table4.sh train.role_awareness.max_steps=300 train.joint.max_steps=100 seed=0
exec bash "$(dirname "$0")/run_experiment.sh" table4 "$@"
