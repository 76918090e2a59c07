#!/usr/bin/env bash
# The main job on the embedded default, on 2 MPI ranks:
#   1. data: The Devil's Dictionary (public domain, Debian's dict-devil) -> alpaca JSONL
#   2. a SentencePiece tokenizer trained on it, and a small LLaMA (hidden 128, 4 layers)
#   3. pretrain that model on the definitions' text (all weights, data parallel)
#   4. LoRA fine-tune it on the instruction data (data parallel), with eval
#   5. generate with the adapter
# (The ABM-LoRA initialization and the larger pretrained default come with later issues.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
bash launch/build.sh --target abmlora
: "${ABMLORA:=$PWD/build/abmlora}"; export ABMLORA
ABM=$ABMLORA
RUN=${RUN:-runs/demo}
rm -rf "$RUN"
mkdir -p "$RUN"

bash data/prepare_devil.sh "$RUN/data"
$ABM tokenizer --train "$RUN/data/devil.txt" --out "$RUN/base" --vocab 1024
$ABM init-model --out "$RUN/base" --hidden 128 --intermediate 344 --layers 4 --heads 8 \
  --kv-heads 4 --vocab 1024 --max-positions 256 --seed 0 --tie
launch/run -n 2 -- pretrain --model "$RUN/base" --data "$RUN/data/devil.txt" \
  --out "$RUN/pretrain" --pack --max-length 256 --truncate --global-batch 16 --micro-batch 4 \
  --steps 200 --lr 3e-3 --warmup 20 --weight-decay 0.01 --log-every 25 --eval-fraction 0.05
launch/run -n 2 -- train --model "$RUN/pretrain/model" --data "$RUN/data/devil.jsonl" \
  --template alpaca --out "$RUN/lora" --max-length 256 --truncate --global-batch 16 \
  --micro-batch 4 --steps 60 --lr 3e-3 --warmup 6 --lora-targets all-linear --lora-r 8 \
  --eval-fraction 0.05 --eval-every 20 --log-every 10
prompt=$'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nDefine "lawyer".\n\n### Response:\n'
$ABM generate --model "$RUN/pretrain/model" --adapter "$RUN/lora/adapter" --prompt "$prompt" \
  --max-new-tokens 40 --temperature 0.7 --top-p 0.9 --seed 1
echo "demo: run directory $RUN (metrics.jsonl, config.ini, adapter/ in each step's folder)"
