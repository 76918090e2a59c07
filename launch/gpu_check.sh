#!/usr/bin/env bash
# One prepared check for a GPU machine (the CPU machines here have none), at most ~10
# minutes. Builds abmlora against that machine's own CUDA LibTorch (the python `torch`
# package directory has LibTorch's include/ and lib/; NCCL next to it in nvidia/nccl), then
#   1. the `cuda` CTest label and nccl_test (device forward and LoRA step vs the CPU, NCCL),
#   2. the NCCL all-reduce bench on 1 rank (and 2 processes with 2 GPUs),
#   3. bench --what train --device cuda --geometry llama2-7b, with and without recompute,
#   4. the demo's LoRA vs ABM-LoRA fine-tunes (60 steps) on the GPU, 1 rank per GPU.
# Everything it prints also goes to $OUT/gpu_check.log when $OUT is set (device runs).
# Usage: launch/gpu_check.sh [build-dir]   (default build-gpu; MAX_BYTES=... to shorten)
# DEADLINE (default 570 s) is the device call's limit less a margin: each step's timeout is
# its own cap cut so that the steps after it keep their reserve, so one hanging step cannot
# take the 7B bench's time (the figure this run exists for).
#
# That machine reaches no package registry and has no Open MPI, HDF5, Boost, SentencePiece,
# nlohmann-json or GoogleTest: they travel as Debian .debs in gpu/debs, unpacked into
# /tmp/abm-prefix and built against with -DABM_DEPS_PREFIX. Prepare here, then one call:
#   bash launch/debs.sh fetch gpu/debs && bash data/prepare_devil.sh gpu
#   device run: command "bash launch/gpu_check.sh", carry ["gpu"], timeout_s 600
# (the tree travels with gpu/: 21 MiB tracked + 39 MiB of .debs + the data, under the tool's
# 64 MiB). The same build was checked in a Debian 12 chroot without the -dev packages, with
# pip's CMake 4.4 and torch 2.11.0+cu130: docs/usage.md, Build.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath -m "${1:-build-gpu}")  # absolute: the demo runs it from elsewhere too
LOG=${OUT:-/tmp}/gpu_check.log
MAX_BYTES=${MAX_BYTES:-268435456}
exec > >(tee "$LOG") 2>&1
t0=$(date +%s)
DEADLINE=${DEADLINE:-570}
step() { echo; echo "== $* ($(( $(date +%s) - t0 )) s)"; }
# budget CAP RESERVE: seconds for this step: CAP, or what is left before DEADLINE after
# RESERVE seconds for the later steps, whichever is less (at least 10).
budget() {
  local left=$(( DEADLINE - ($(date +%s) - t0) - $2 ))
  [ "$left" -lt "$1" ] || left=$1
  [ "$left" -ge 10 ] || left=10
  echo "$left"
}

step "machine"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv || echo "nvidia-smi missing"
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
# TORCH_ROOT=DIR (a torch package directory) skips the python3 query: launch/chroot_gpu_build.sh
# runs this script that way, without a GPU, up to the device steps.
if [ -z "${TORCH_ROOT:-}" ]; then
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
    "devices", torch.cuda.device_count())' || { echo "no python3 torch: cannot find a CUDA LibTorch"; exit 1; }
  TORCH_ROOT=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
fi
echo "TORCH_ROOT=$TORCH_ROOT GPUs=$NGPU"

# After python3 ran: the prefix's libraries stay out of the way of the machine's own.
DEPS_CMAKE=()
if [ -d gpu/debs ]; then
  step "Debian libraries from gpu/debs"
  bash launch/debs.sh unpack gpu/debs /tmp/abm-prefix || exit 1
  source /tmp/abm-prefix/env.sh
  DEPS_CMAKE=($ABM_DEPS_CMAKE)
fi
GEN=()
command -v make >/dev/null || GEN=(-G Ninja)

step "configure + build ($BUILD)"
cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DABM_TORCH_ROOT="$TORCH_ROOT" -DABM_CUDA=ON \
      "${DEPS_CMAKE[@]}" 2>&1 | grep -E 'LibTorch|NCCL|Dependencies|Error|error' || true
cmake --build "$BUILD" -j"$(nproc)" --target abmlora nccl_test cuda_test 2>&1 | grep -E 'error|Error' || true
[ -x "$BUILD/abmlora" ] && [ -x "$BUILD/tests/cuda_test" ] || { echo "BUILD FAILED"; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ABM_NCCL_TIMEOUT_S=120
status=0
step "cuda tests (ctest -L cuda) and nccl_test"
(cd "$BUILD" && timeout "$(budget 240 260)" ctest -L cuda --output-on-failure) || status=1
timeout "$(budget 60 230)" "$BUILD/tests/nccl_test" || status=1

step "all-reduce, NCCL, 1 rank"
timeout "$(budget 60 200)" "$BUILD/abmlora" bench --what allreduce --backend nccl --max-bytes "$MAX_BYTES" || status=1
if [ "$NGPU" -ge 2 ]; then
  step "all-reduce, NCCL, 2 processes (one GPU each)"
  timeout "$(budget 60 180)" mpirun --oversubscribe -np 2 "$BUILD/abmlora" bench --what allreduce \
    --backend nccl --max-bytes "$MAX_BYTES" || status=1
fi

step "LLaMA-2-7B geometry LoRA step on the GPU (r 16, 2 x 2048 tokens)"
timeout "$(budget 300 90)" "$BUILD/abmlora" bench --what train --device cuda --geometry llama2-7b \
  --dtypes bf16 --recompute on,off --steps 3 --warmup 1 || status=1

step "demo: LoRA vs ABM-LoRA, 60 steps, on the GPU"
# The fine-tuning set travels prepared (gpu/devil.jsonl: `bash data/prepare_devil.sh gpu`
# here, carried as "gpu"): that machine has no dict-devil package.
ABM_SKIP_SETUP=1 ABMLORA=$BUILD/abmlora RANKS=1 DEVICE=cuda DEVIL=gpu/devil.jsonl \
  RUN=/tmp/gpu-demo timeout "$(budget 300 0)" bash launch/demo.sh || status=1
[ -n "${OUT:-}" ] && cp /tmp/gpu-demo/report/*.png "$OUT"/ 2>/dev/null
step "done: status $status"
exit $status
