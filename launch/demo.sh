#!/usr/bin/env bash
# The main job on the embedded default. For now: make a small LLaMA model, show what it
# holds, and generate from it on 2 MPI ranks. (Later issues grow this into the full
# ABM-LoRA fine-tuning run.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
bash launch/build.sh --target abmlora
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ABM=build/abmlora
RUN=runs/demo
mkdir -p "$RUN"
$ABM init-model --out "$RUN/model" --hidden 128 --intermediate 344 --layers 4 --heads 8 \
  --kv-heads 4 --vocab 512 --seed 0
$ABM inspect "$RUN/model"
mpirun --oversubscribe -np 2 $ABM generate --model "$RUN/model" --max-new-tokens 24 \
  --temperature 0.8 --top-p 0.95 --seed 7 --print-ids
