#!/usr/bin/env bash
# One prepared check for a GPU machine (the CPU machines here have none): builds abmlora
# against that machine's CUDA LibTorch with the NCCL backend, then
#   1. nccl_test (one rank: exact all-reduce on the device, id-file rendezvous),
#   2. abmlora bench --what allreduce --backend nccl on 1 rank (correctness column
#      #wrong must be 0, plus algbw/busbw),
#   3. the same on 2 processes when the machine has >= 2 GPUs (rank -> GPU by local rank).
# Everything it prints also goes to $OUT/gpu_check.log when $OUT is set (device runs).
# Usage: launch/gpu_check.sh [build-dir]   (default build-gpu; MAX_BYTES=... to shorten)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpu}
LOG=${OUT:-/tmp}/gpu_check.log
MAX_BYTES=${MAX_BYTES:-268435456}
exec > >(tee "$LOG") 2>&1
t0=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - t0 )) s)"; }

step "machine"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv || echo "nvidia-smi missing"
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  "nccl", torch.cuda.nccl.version() if torch.cuda.is_available() else None,
  "devices", torch.cuda.device_count())' || { echo "no python3 torch: cannot find a CUDA LibTorch"; exit 1; }
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
# NCCL: the system's, else the one the torch wheel depends on (nvidia-nccl-cu*).
if [ -z "${NCCL_HOME:-}" ] && ! ls /usr/local/cuda/lib64/libnccl.so* /usr/lib/x86_64-linux-gnu/libnccl.so* >/dev/null 2>&1; then
  NCCL_HOME=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
  if [ -n "$NCCL_HOME" ] && [ ! -e "$NCCL_HOME/lib/libnccl.so" ]; then
    ln -sf "$(ls "$NCCL_HOME"/lib/libnccl.so.* | head -1)" "$NCCL_HOME/lib/libnccl.so" || true
  fi
  export NCCL_HOME
fi
echo "TORCH_PREFIX=$TORCH_PREFIX NCCL_HOME=${NCCL_HOME:-system} GPUs=$NGPU"

step "configure + build ($BUILD)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
      -DABM_WITH_NCCL=ON 2>&1 | grep -E 'NCCL|Torch|Error|error' || true
cmake --build "$BUILD" -j"$(nproc)" --target abmlora nccl_test 2>&1 | grep -E 'error|Error|Linking' || true
[ -x "$BUILD/abmlora" ] && [ -x "$BUILD/tests/nccl_test" ] || { echo "BUILD FAILED"; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ABM_NCCL_TIMEOUT_S=120
status=0
step "nccl_test (1 rank)"
timeout 300 "$BUILD/tests/nccl_test" || status=1

step "all-reduce, NCCL, 1 rank"
timeout 300 "$BUILD/abmlora" bench --what allreduce --backend nccl --max-bytes "$MAX_BYTES" || status=1

if [ "$NGPU" -ge 2 ]; then
  step "all-reduce, NCCL, 2 processes (one GPU each)"
  timeout 300 mpirun --oversubscribe -np 2 "$BUILD/abmlora" bench --what allreduce \
    --backend nccl --max-bytes "$MAX_BYTES" || status=1
  step "all-reduce, NCCL, 2 processes, id through ABM_NCCL_ID_FILE"
  rm -f /tmp/abm-nccl-id.*
  timeout 300 mpirun --oversubscribe -np 2 -x ABM_NCCL_ID_FILE=/tmp/abm-nccl-id "$BUILD/abmlora" \
    bench --what allreduce --backend nccl --max-bytes 16777216 || status=1
else
  step "only $NGPU GPU: the 2-process check needs 2 GPUs (skipped)"
fi
step "done: status $status"
exit $status
