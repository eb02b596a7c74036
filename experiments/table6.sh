#!/usr/bin/env bash
# Tables 6-7: MORPHEUS in PEFT mode vs LoRA, prefix tuning, prompt tuning and P-tuning, three seeds
# (conf/experiment/table6.yaml), then its tables and plots. Extra arguments are Hydra overrides, e.g.
#   bash experiments/table6.sh model=llama2_7b dataset=convai2 dataset.root=DIR trainer=gpu
exec bash "$(dirname "$0")/run_experiment.sh" table6 "$@"
