#!/usr/bin/env bash
# LoRA vs ABM-LoRA on one base model, same lr, same data order, several seeds, 2 ranks:
#   launch/compare_abm.sh [MODEL_DIR] [OUT_DIR]
# Each seed runs `train --init kaiming` and `train --init abm` on the Devil's Dictionary
# instructions, logging the information loss at init and every 20 steps; then
# `abmlora report` prints the table (initial loss, loss at fixed steps, steps to reach
# the first run's final loss, information loss at init, final eval loss, wall time with
# the ABM stage) and writes PNG curves to OUT_DIR/report.
# Knobs (environment): SEEDS="0 1 2" STEPS=60 LR=3e-3 RANKS=2 ABM_ARGS="..." TRAIN_ARGS="..."
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-models/default}"
out="${2:-runs/compare}"
: "${ABMLORA:=$PWD/build/abmlora}"; export ABMLORA
seeds="${SEEDS:-0 1 2}"
steps="${STEPS:-60}"
lr="${LR:-3e-3}"
ranks="${RANKS:-2}"
[ -f "$out/data/devil.jsonl" ] || bash data/prepare_devil.sh "$out/data"
common=(--model "$model" --data "$out/data/devil.jsonl" --template alpaca --max-length 256
        --truncate --global-batch 16 --micro-batch 4 --steps "$steps" --lr "$lr" --warmup 6
        --lora-targets all-linear --lora-r 8 --eval-fraction 0.05 --eval-every 20
        --info-loss-every 20 --log-every 20 ${TRAIN_ARGS:-})
runs=()
for s in $seeds; do
  launch/run -n "$ranks" -- train "${common[@]}" --seed "$s" --init kaiming --out "$out/lora-s$s"
  launch/run -n "$ranks" -- train "${common[@]}" --seed "$s" --init abm ${ABM_ARGS:-} --out "$out/abm-s$s"
  runs+=("$out/lora-s$s" "$out/abm-s$s")
done
"$ABMLORA" report "${runs[@]}" --at 10,30,"$steps" --out "$out/report"
