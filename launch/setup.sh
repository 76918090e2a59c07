#!/usr/bin/env bash
# Installs every Debian package abmlora needs (idempotent: skips what is present), then
# fetches the pinned LibTorch into deps/ (launch/fetch_libtorch.sh; ABM_CUDA=AUTO|ON|OFF).
# Usage: launch/setup.sh            (needs root or sudo for apt-get)
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  python3-pip unzip                         # fetch + unpack the pinned LibTorch wheel
  libopenmpi-dev openmpi-bin                # MPI runtime
  libhdf5-dev                               # checkpoints
  slurm-wlm munge                           # local one-node Slurm for the slurm tests/templates
  iproute2 iputils-ping                     # slurm/local/nodes.sh: namespaced nodes (cluster tests)
  libboost-program-options-dev              # CLI
  libgtest-dev                              # tests
  clang libclang-rt-14-dev                  # launch/sanitize.sh: ASan/UBSan + libFuzzer
  ninja-build                               #   (and its faster build)
  gnuplot-nox                               # abmlora report: loss / information-loss PNGs
  nlohmann-json3-dev                        # config.json, safetensors headers
  libsentencepiece-dev sentencepiece        # tokenizer (+ spm_encode as a test reference)
  dict-devil dict-wn dict-jargon            # real text: fine-tuning set (Devil's Dictionary),
                                            #   pretraining text of the default (WordNet),
                                            #   a second fine-tuning set (Jargon File)
  python3-torch python3-numpy python3-venv  # test oracle only (never used by the product)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: done"
fi
bash "$(dirname "$0")/fetch_libtorch.sh"
