#!/usr/bin/env bash
# LLaMA2-7B geometry at true size on 2 ranks (issue 6's measurement): generates random
# bf16 weights in the HF layout (~13.5 GB, launch/make_random_llama.py), runs `abm-init`
# with one stage per rank -- each rank loads only its 16 layers, keeping the matrices in
# bf16 and computing in fp32 (--weight-dtype bf16: this CPU has no AVX512-BF16, so bf16
# matmuls run ~15x slower than fp32) -- for one ABM step on one 128-token sample, and prints each rank's peak RSS against the target (half the model
# bytes + 1.5 GiB) and the time of the teacher pass and of the step. Deletes the model
# afterwards unless KEEP=1.
#   launch/bench_7b_abm.sh [WORK_DIR]      (needs ~14 GB of disk and ~16 GB of RAM)
# Knobs: RANKS=2 THREADS=1 TOKENS=128 DTYPE=fp32 (compute) ABMLORA=build/abmlora
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/abmlora-7b}"
: "${ABMLORA:=$PWD/build/abmlora}"
ranks="${RANKS:-2}"
threads="${THREADS:-1}"
tokens="${TOKENS:-128}"
model="$work/llama2-7b-random"
mkdir -p "$work"
[ -f "$model/config.json" ] || /usr/bin/python3 launch/make_random_llama.py "$model" --preset 7b
model_bytes=$(du -cb "$model"/*.safetensors | tail -1 | cut -f1)
/usr/bin/python3 -c "
import json, random
random.seed(0)
with open('$work/tokens.jsonl', 'w') as f:
    for _ in range(4):
        f.write(json.dumps({'input_ids': [1] + [random.randrange(3, 32000) for _ in range($tokens - 1)]}) + '\n')"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -f "$work"/rss.*
# /usr/bin/time -v per rank: "Maximum resident set size" of each process.
ABM_LOG_MEMORY=1 mpirun --oversubscribe --bind-to none -np "$ranks" bash -c \
  '/usr/bin/time -v -o "$0/rss.$OMPI_COMM_WORLD_RANK" "$@"' "$work" \
  "$ABMLORA" abm-init --model "$model" --data "$work/tokens.jsonl" --out "$work/abm" \
  --dtype "${DTYPE:-fp32}" --weight-dtype bf16 --lora-r 16 --lora-targets all-linear --abm-samples 1 --abm-steps 1 \
  --abm-max-length "$tokens" --abm-layers last-half --abm-recompute --threads "$threads" 2>&1 | tee "$work/abm.log"
target_kib=$(( model_bytes / ranks / 1024 + 1536 * 1024 ))
echo "model: $model_bytes bytes in bf16; target per rank: model/$ranks + 1.5 GiB = $(( target_kib / 1024 )) MiB"
for r in $(seq 0 $((ranks - 1))); do
  kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/rss.$r")
  echo "rank $r: peak RSS $(( kib / 1024 )) MiB ($(awk "BEGIN {printf \"%.2f\", $kib / $target_kib}") of target)"
done
/usr/bin/python3 -c "
import json; j = json.load(open('$work/abm/abm.json'))
print(f\"teacher pass {j['teacher_seconds']:.1f} s, one ABM step {j['step_seconds']:.1f} s, \"
      f\"optimization with both reports {j['seconds']:.1f} s ({j['tokens']} tokens)\")"
[ "${KEEP:-0}" = 1 ] || rm -rf "$model"
