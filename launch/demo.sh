#!/usr/bin/env bash
# The main job on the embedded default, on 2 MPI ranks:
#   0. install packages and build (skipped when ABMLORA names a built binary)
#   1. data: The Devil's Dictionary (public domain, Debian's dict-devil) -> alpaca JSONL
#   2. LoRA fine-tune the embedded default base model (models/default: a small LLaMA that
#      abmlora pretrained on WordNet glosses, see models/README.md) on that data, data
#      parallel on 2 ranks, with a held-out eval split
#   3. the same with ABM-LoRA (train --init abm): the partition planner splits the layers
#      over the 2 ranks, rank 0 broadcasts the representative batch, ABM runs per stage
#      (pipelined, global scope), the adapters are gathered, then data-parallel training
#   4. `abmlora report`: LoRA vs ABM-LoRA (losses, information loss at init, wall time)
#   5. generate a definition with the base model alone and with each adapter
# Everything lands in runs/demo/ (RUN=... to change).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=models/default
RUN=${RUN:-runs/demo}

# --- 0. Install and build ---------------------------------------------------------------
source launch/binary.sh
ABM=$ABMLORA
[ -f "$BASE/model.safetensors" ] || {
  echo "demo: $BASE missing (remake it: bash launch/make_default_model.sh)" >&2; exit 2; }
rm -rf "$RUN"
mkdir -p "$RUN"

# --- 1. Fine-tuning data ------------------------------------------------------------------
# DEVIL=FILE: an already prepared devil.jsonl (machines without Debian's dict-devil).
if [ -n "${DEVIL:-}" ]; then mkdir -p "$RUN/data" && cp "$DEVIL" "$RUN/data/devil.jsonl"
else bash data/prepare_devil.sh "$RUN/data"; fi

# --- 2./3. LoRA and ABM-LoRA fine-tunes on 2 ranks -----------------------------------------
common=(--model "$BASE" --data "$RUN/data/devil.jsonl" --template alpaca --max-length 256
        --truncate --global-batch 16 --micro-batch 4 --steps 60 --lr 3e-3 --warmup 6
        --lora-targets all-linear --lora-r 8 --eval-fraction 0.05 --eval-every 20
        --info-loss-every 20 --log-every 10 --seed 0
        --dtype "${DTYPE:-auto}" --device "${DEVICE:-auto}")  # DTYPE=fp32|bf16, DEVICE=cpu|cuda
RANKS=${RANKS:-2}  # one per GPU on a GPU machine
launch/run -n "$RANKS" -- train "${common[@]}" --init kaiming --out "$RUN/lora"
launch/run -n "$RANKS" -- train "${common[@]}" --init abm --out "$RUN/abm"

# --- 4. Report ----------------------------------------------------------------------------
$ABM report "$RUN/lora" "$RUN/abm" --at 10,30,60 --out "$RUN/report"

# --- 5. Generate --------------------------------------------------------------------------
prompt=$'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nDefine "lawyer".\n\n### Response:\n'
gen=(--prompt "$prompt" --max-new-tokens 48 --temperature 0.7 --top-p 0.9 --seed 1)
echo "demo: base model alone:"
$ABM generate --model "$BASE" "${gen[@]}"
echo "demo: base model + LoRA adapter:"
$ABM generate --model "$BASE" --adapter "$RUN/lora/adapter" "${gen[@]}"
echo "demo: base model + ABM-LoRA adapter:"
$ABM generate --model "$BASE" --adapter "$RUN/abm/adapter" "${gen[@]}"
echo "demo: run directories $RUN/lora and $RUN/abm (metrics.jsonl, config.ini, adapter/;" \
     "abm/abm.json), comparison in $RUN/report (loss.png, info_loss.png)"
