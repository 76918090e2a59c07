#!/usr/bin/env bash
# The GPU machine's build path, checked here without a GPU: a Debian 12 chroot with only a
# compiler, make and python3 (no Open MPI, HDF5, Boost, SentencePiece, nlohmann-json,
# GoogleTest, curl or libxml2 installed), pip's CMake wheel instead of Debian's, and the
# CUDA torch wheel that machine has (default 2.11.0+cu130) as ABM_TORCH_ROOT. It unpacks
# launch/gpu_check.sh in it (TORCH_ROOT given, no GPU): the script unpacks gpu/debs into a
# prefix, builds abmlora, nccl_test and cuda_test, runs the cuda label (skips) and nccl_test,
# and each device step must end in its one-line error; then a 2-rank ABM + train job runs
# through the prefix's relocated mpirun. Root, network, ~25 min on 2 cores.
# Usage: launch/chroot_gpu_build.sh [WORKDIR]   (default /work/gpu-chroot; TORCH=2.11.0)
# Prepare first: bash launch/debs.sh fetch gpu/debs && bash data/prepare_devil.sh gpu
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/work/gpu-chroot}
TORCH=${TORCH:-2.11.0}
C=$W/root
[ "$(id -u)" = 0 ] || { echo "chroot_gpu_build: needs root" >&2; exit 2; }
[ -f gpu/debs/SHA256SUMS ] && [ -f gpu/devil.jsonl ] || {
  echo "chroot_gpu_build: run 'bash launch/debs.sh fetch gpu/debs && bash data/prepare_devil.sh gpu' first" >&2; exit 2; }
mkdir -p "$W"
PIP=(/usr/bin/python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp
     --python-version 3.12 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64)

if [ ! -x "$C/usr/bin/g++" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
  debootstrap --variant=minbase --include=g++,make,python3-minimal bookworm "$C" \
    http://deb.debian.org/debian > "$W/debootstrap.log"
fi
if [ ! -x "$C/opt/cmake/cmake/data/bin/cmake" ]; then
  "${PIP[@]}" cmake -d "$W/wheels"
  unzip -q -o "$W"/wheels/cmake-*.whl -d "$C/opt/cmake"
fi
if [ ! -f "$W/torch/lib/libtorch_cuda.so" ]; then
  "${PIP[@]}" "torch==$TORCH" -d "$W/wheels"
  unzip -q -o "$W"/wheels/torch-"$TORCH"-*.whl 'torch/include/*' 'torch/lib/*' -d "$W"
fi
# libtorch_cuda.so's libraries, as the python site-packages has them: the CUDA toolkit for
# the linker, NCCL and friends from deps/nvidia (launch/fetch_libtorch.sh with ABM_CUDA=ON).
ln -sfn "$PWD/deps/nvidia" "$W/nvidia"
echo /usr/local/cuda/lib64 > "$C/etc/ld.so.conf.d/cuda.conf"

# The sources as committed plus gpu/, and the paths the links above name, at the same places.
rm -rf "$C/src" && mkdir -p "$C/src"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$C/src"
cp -r gpu "$C/src/"
cuda=$(readlink -f /usr/local/cuda)
mounts=("$cuda" "$PWD/deps" "$W")
cleanup() { for m in /dev /sys /proc "${mounts[@]}"; do umount "$C$m" 2>/dev/null || true; done; }
trap cleanup EXIT
for m in "${mounts[@]}"; do mkdir -p "$C$m" && mount --bind "$m" "$C$m"; done
mount -t proc proc "$C/proc"; mount --bind /dev "$C/dev"; mount --bind /sys "$C/sys"
ln -sfn "$cuda" "$C/usr/local/cuda"
chroot "$C" ldconfig

# launch/gpu_check.sh itself, as the device call runs it, but with the wheel's torch directory
# (no python torch here) and no GPU: it must build, then every device step must fail with
# its one line (exit 2) and the script must reach its end with status 1.
chroot "$C" /bin/bash -s <<EOF
set -uo pipefail
export PATH=/opt/cmake/cmake/data/bin:\$PATH OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd /src
for p in mpirun h5cc pkg-config; do command -v \$p >/dev/null && echo "chroot has \$p: not a clean check" && exit 1; done
B=/tmp/build
rm -rf \$B  # a fresh build, as on the device: the copy keeps sources' mtimes, so make could keep stale objects
rm -rf /tmp/gpu-out && mkdir -p /tmp/gpu-out
time OUT=/tmp/gpu-out TORCH_ROOT=$W/torch DEADLINE=1800 bash launch/gpu_check.sh \$B > /dev/null
rc=\$?
L=/tmp/gpu-out/gpu_check.log
grep -E '^== |LibTorch|NCCL backend|error|warning|tests passed|skipped|PASS|FAIL' \$L
[ \$rc = 1 ] && grep -q '^== done: status 1' \$L || { echo "gpu_check.sh: status \$rc, expected 1"; exit 1; }
[ \$(grep -c 'no CUDA device' \$L) -ge 3 ] || { echo "expected the device steps' one-line errors"; exit 1; }
source /tmp/abm-prefix/env.sh  # gpu_check.sh sourced it in its own shell
ldd \$B/abmlora | grep 'not found' && exit 1
rm -rf /tmp/run; ABMLORA=\$B/abmlora timeout 300 launch/run -n 2 -- train --model models/default \
  --data gpu/devil.jsonl --template alpaca --max-length 128 --truncate --global-batch 8 --micro-batch 4 \
  --steps 4 --lora-r 4 --init abm --out /tmp/run | tail -3
[ -f /tmp/run/adapter/adapter_model.safetensors ] && echo "chroot_gpu_build: PASS"
EOF
