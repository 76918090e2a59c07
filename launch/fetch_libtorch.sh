#!/usr/bin/env bash
# Fetches the pinned LibTorch (launch/libtorch.lock) into deps/, the project-local,
# git-ignored folder CMake builds against:
#   deps/torch/{include,lib,share}   from the torch wheel
#   deps/nvidia/<pkg>/lib            from the NVIDIA wheels, in the wheels' own layout, so
#                                    the libraries' RUNPATH ($ORIGIN/../../nvidia/...) finds them
# Each wheel is downloaded once into deps/wheels by `pip download --no-deps --require-hashes`
# (pip refuses a file whose sha256 is not the locked one) and unpacked once (a stamp per
# wheel records the hash it came from). Idempotent; run by launch/setup.sh.
#
# ABM_CUDA=AUTO|ON|OFF (default AUTO = ON when /usr/local/cuda exists): ON also fetches
# what libtorch_cuda.so needs beyond the CUDA toolkit (NCCL, NVSHMEM, cuSPARSELt, cuFile).
# libcudart/libcupti (needed by libtorch_cpu.so too) come from /usr/local/cuda/lib64 when
# present, else from their wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK=launch/libtorch.lock
DEPS=deps
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
mode=${ABM_CUDA:-AUTO}
case "$mode" in
  AUTO|auto) if [ -d "$CUDA_HOME" ]; then cuda=1; else cuda=0; fi ;;
  ON|on|1) cuda=1 ;;
  OFF|off|0) cuda=0 ;;
  *) echo "fetch_libtorch: error: ABM_CUDA=$mode (expected AUTO, ON or OFF)" >&2; exit 2 ;;
esac
if [ "$cuda" = 1 ] && [ ! -d "$CUDA_HOME/lib64" ]; then
  echo "fetch_libtorch: error: ABM_CUDA=ON needs the CUDA toolkit at $CUDA_HOME (set CUDA_HOME)" >&2
  exit 2
fi

PIP=(/usr/bin/python3 -m pip)
"${PIP[@]}" --version >/dev/null 2>&1 || { echo "fetch_libtorch: error: no pip for /usr/bin/python3 (apt-get install python3-pip)" >&2; exit 2; }
mkdir -p "$DEPS/wheels"

# fetch REQUIREMENT SHA256: downloads (once) and unpacks (once) one locked wheel.
fetch() {
  local req=$1 sha=$2 stamp="$DEPS/.stamp-${1%%=*}"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ]; then return 0; fi
  local whl
  whl=$(grep -l "^$sha\$" "$DEPS"/wheels/*.sha256 2>/dev/null | head -1 | sed 's/\.sha256$//' || true)
  if [ -z "$whl" ] || [ ! -f "$whl" ]; then
    echo "fetch_libtorch: downloading $req"
    local reqfile
    reqfile=$(mktemp)
    echo "$req --hash=sha256:$sha" > "$reqfile"
    # The torch wheel is tagged cp311; the platform flags pin the same file on any host.
    "${PIP[@]}" download -q --no-deps --require-hashes --only-binary=:all: \
      --implementation cp --python-version 3.11 \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_25_x86_64 --platform manylinux_2_18_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -r "$reqfile" -d "$DEPS/wheels"
    rm -f "$reqfile"
    for f in "$DEPS"/wheels/*.whl; do
      [ -f "$f.sha256" ] || sha256sum "$f" | cut -d' ' -f1 > "$f.sha256"
    done
    whl=$(grep -l "^$sha\$" "$DEPS"/wheels/*.sha256 | head -1 | sed 's/\.sha256$//')
  fi
  # Checked again here: a cached file may have been damaged since it was downloaded.
  [ "$(sha256sum "$whl" | cut -d' ' -f1)" = "$sha" ] || {
    echo "fetch_libtorch: error: $whl: sha256 is not the locked $sha (delete it and rerun)" >&2; exit 2; }
  echo "fetch_libtorch: unpacking $(basename "$whl")"
  if [ "${req%%=*}" = torch ]; then
    rm -rf "$DEPS/torch"
    unzip -q -o "$whl" 'torch/include/*' 'torch/lib/*' 'torch/share/cmake/*' -d "$DEPS"
  else
    unzip -q -o "$whl" 'nvidia/*' -d "$DEPS"
  fi
  echo "$sha" > "$stamp"
}

# link_toolkit LIB...: the toolkit's copy of each library, where the RUNPATH looks.
link_toolkit() {
  mkdir -p "$DEPS/nvidia/cu13/lib"
  for lib in "$@"; do
    [ -e "$CUDA_HOME/lib64/$lib" ] || { echo "fetch_libtorch: error: $CUDA_HOME/lib64/$lib missing" >&2; exit 2; }
    ln -sfn "$(readlink -f "$CUDA_HOME/lib64/$lib")" "$DEPS/nvidia/cu13/lib/$lib"
  done
}

while read -r group req sha; do
  case "$group" in
    ''|\#*) continue ;;
    torch) fetch "$req" "$sha" ;;
    runtime) if [ -d "$CUDA_HOME/lib64" ]; then link_toolkit libcudart.so.13 libcupti.so.13
             else fetch "$req" "$sha"; fi ;;
    cuda) [ "$cuda" = 1 ] && fetch "$req" "$sha" ;;
    *) echo "fetch_libtorch: error: $LOCK: unknown group '$group'" >&2; exit 2 ;;
  esac
done < "$LOCK"
# The NCCL backend links libnccl by its development name.
if [ "$cuda" = 1 ]; then
  ln -sfn libnccl.so.2 "$DEPS/nvidia/nccl/lib/libnccl.so"
fi
echo "fetch_libtorch: LibTorch from $LOCK in $DEPS/ (CUDA libraries: $([ "$cuda" = 1 ] && echo yes || echo no))"
