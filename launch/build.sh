#!/usr/bin/env bash
# Configures and builds abmlora into build/ (Release) against the LibTorch in deps/ (from
# launch/setup.sh). ABM_CUDA=AUTO|ON|OFF (AUTO: on when /usr/local/cuda exists) links
# LibTorch's CUDA and the NCCL backend. Extra arguments go to cmake --build
# (e.g. --target abmlora).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DABM_CUDA="${ABM_CUDA:-AUTO}" >/dev/null
cmake --build build -j"$(nproc)" "$@"
