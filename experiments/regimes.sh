#!/usr/bin/env bash
# A map of where the codebook helps (docs/regimes.md): MORPHEUS, w/o PC, no persona and true
# persona over data sparsity x facts revealed per dialogue (experiments/regimes.py; its options).
#   bash experiments/regimes.sh --seeds 0 1 --out regimes_runs
#   bash experiments/regimes.sh --collect regimes_runs     # table and regimes.png so far
set -euo pipefail
PY=${PY:-.venv/bin/python}
exec $PY "$(dirname "$0")/regimes.py" "$@"
