#!/usr/bin/env bash
# Smoke test of Lightning's strategies on this node: stages 1 -> 2 -> 3 (40 + 40 steps, the
# default world and model) under each strategy, each in a fresh MORPHEUS_HOME so nothing is
# reused; prints each strategy's exit status, time and stage checkpoints, exits non-zero if one
# failed. Logs go to $SMOKE_DIR/<strategy>.log.
#   bash experiments/strategy_smoke.sh                           # ddp, fsdp, deepspeed; all GPUs
#   STRATEGIES="ddp fsdp" bash experiments/strategy_smoke.sh trainer.devices=2
#   STRATEGIES=ddp bash experiments/strategy_smoke.sh trainer.accelerator=cpu trainer.devices=2
set -u
PY=${PY:-.venv/bin/python}
STRATEGIES=${STRATEGIES:-ddp fsdp deepspeed}
SMOKE_DIR=${SMOKE_DIR:-$(mktemp -d -t morpheus_smoke.XXXX)}
mkdir -p "$SMOKE_DIR"
SHORT=(stage=joint train.role_awareness.max_steps=40 train.joint.max_steps=40
       train.checkpoint_every_n_steps=20 trainer.log_every_n_steps=10)
status=0
for strategy in $STRATEGIES; do
  home="$SMOKE_DIR/$strategy"
  start=$(date +%s)
  MORPHEUS_HOME="$home" $PY -m morpheus_pl.run "${SHORT[@]}" "trainer=$strategy" "$@" \
    "hydra.run.dir=$home/out" > "$SMOKE_DIR/$strategy.log" 2>&1
  rc=$?
  echo "$strategy: exit $rc, $(( $(date +%s) - start )) s, log $SMOKE_DIR/$strategy.log"
  find "$home/artifacts/stages" -name model.ckpt 2>/dev/null | sed 's/^/  /'
  [ $rc -eq 0 ] || { status=1; grep -E "Error|error:" "$SMOKE_DIR/$strategy.log" | tail -3 | sed 's/^/  /'; }
done
exit $status
