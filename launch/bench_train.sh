#!/usr/bin/env bash
# Issue 3's train-step benchmark in one command, on the bench model (hidden 512, 8 layers,
# 8 heads, intermediate 1376, vocab 4096, seq 256, micro-batch 8, LoRA r 8 on all-linear,
# random weights and token ids):
#   1. 1 rank x 2 threads: abmlora tokens/s, MFU against the matmul peak measured in the same
#      run, and peak step memory, fp32 and bf16, with and without --recompute, next to the
#      PyTorch eager reference loop (tests/ref/eager_train_bench.py) as a ratio;
#   2. data parallel: 2 ranks x 1 thread vs 1 rank x 2 threads, fp32.
# Usage: launch/bench_train.sh [extra bench options, e.g. --steps 5 --profile]
# Env: BIN (default build/abmlora), BF16=0 to skip bf16 (~17x slower without AVX512-BF16).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/abmlora}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== fp32, 1 rank x 2 threads"
"$BIN" bench --what train --dtypes fp32 --train-threads 2 "$@"
if [ "${BF16:-1}" != 0 ]; then
  echo "== bf16, 1 rank x 2 threads (1 timed step: each takes about a minute here)"
  "$BIN" bench --what train --dtypes bf16 --train-threads 2 --steps 1 --warmup 1 "$@"
fi
echo "== data parallel, fp32: 2 ranks x 1 thread vs 1 rank x 2 threads (back to back)"
tps() { awk '$1 == "fp32" && $3 == "off" { print $4 }'; }
one=$("$BIN" bench --what train --dtypes fp32 --recompute off --train-threads 2 --eager none "$@" | tps)
two=$(mpirun --oversubscribe -np 2 "$BIN" bench --what train --dtypes fp32 --recompute off \
        --train-threads 1 --eager none "$@" | tps)
echo "1 rank x 2 threads: $one tokens/s; 2 ranks x 1 thread: $two tokens/s; ratio $(awk -v a="$one" -v b="$two" 'BEGIN { printf "%.2f", b / a }')"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
