#!/usr/bin/env bash
# LoRA initializations side by side on one base model: same lr, same data order, several
# seeds, 2 ranks:
#   launch/compare_inits.sh [MODEL_DIR] [OUT_DIR]
# For each seed and each of INITS (default: kaiming gaussian pissa lora-ga abm abm-task) it
# runs `train --init INIT` on the instruction set DATA (devil: the Devil's Dictionary,
# default; jargon: the Jargon File), logging the information loss at init and every 20
# steps. abm-task is `--init abm --abm-teacher task`, the official protocol: a LoRA trained
# on the task for TEACHER_STEPS is ABM's teacher. Then `abmlora report` prints the table
# (loss at step 1 and at fixed steps, steps to reach the same seed's kaiming (plain LoRA)
# final loss, information loss at init, final eval loss, wall time including the init and a
# task teacher's training) and writes PNG curves to OUT_DIR/report.
# Knobs (environment): INITS="kaiming abm" SEEDS="0 1 2" STEPS=60 LR=3e-3 RANKS=2 DATA=devil
#   TEACHER_STEPS=STEPS ABM_ARGS="..." (for abm, abm-task) TRAIN_ARGS="..." (for all)
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-models/default}"
out="${2:-runs/compare}"
: "${ABMLORA:=$PWD/build/abmlora}"; export ABMLORA
inits="${INITS:-kaiming gaussian pissa lora-ga abm abm-task}"
seeds="${SEEDS:-0 1 2}"
steps="${STEPS:-60}"
lr="${LR:-3e-3}"
ranks="${RANKS:-2}"
data="${DATA:-devil}"
case "$data" in
  devil|jargon) ;;
  *) echo "compare_inits.sh: DATA must be devil or jargon, got '$data'" >&2; exit 2;;
esac
[ -f "$out/data/$data.jsonl" ] || bash "data/prepare_$data.sh" "$out/data"
common=(--model "$model" --data "$out/data/$data.jsonl" --template alpaca --max-length 256
        --truncate --global-batch 16 --micro-batch 4 --steps "$steps" --lr "$lr" --warmup 6
        --lora-targets all-linear --lora-r 8 --eval-fraction 0.05 --eval-every 20
        --info-loss-every 20 --log-every 20 ${TRAIN_ARGS:-})
runs=()
for s in $seeds; do
  for init in $inits; do
    name="${init/kaiming/lora}-s$s"  # "lora-s0": the plain-LoRA baseline, as before
    extra=(--init "$init")
    # shellcheck disable=SC2206  # ABM_ARGS is a list of options
    case "$init" in
      abm) extra+=(${ABM_ARGS:-});;
      abm-task) extra=(--init abm --abm-teacher task --abm-teacher-steps "${TEACHER_STEPS:-$steps}"
                       ${ABM_ARGS:-});;
    esac
    launch/run -n "$ranks" -- train "${common[@]}" --seed "$s" "${extra[@]}" \
      --out "$out/$name"
    runs+=("$out/$name")
  done
done
"$ABMLORA" report "${runs[@]}" --at 10,30,"$steps" --out "$out/report"
