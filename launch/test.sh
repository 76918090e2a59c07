#!/usr/bin/env bash
# The test command: installs what is needed, builds, runs every CTest label (unit, mpi,
# model, slurm), then the parser tests under ASan + UBSan and a bounded libFuzzer run
# (launch/sanitize.sh, a separate build in build-sanitize/), and prints both summaries.
# Exits non-zero on any failure.
# Usage: launch/test.sh [extra ctest args, e.g. -L unit]
#   ABM_SANITIZE=0|1: skip / run launch/sanitize.sh (default: run it when no ctest
#   arguments are given, i.e. the full CI run); FUZZ_SECONDS per fuzz target (default 30
#   here, to keep CI under 45 minutes on 2 cores; launch/sanitize.sh alone defaults to 60).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
phase() { echo "test.sh: $1 done at $(( $(date +%s) - t0 )) s"; }
bash launch/setup.sh
phase "setup (packages)"
# The transformers/peft oracle venv needs PyPI; without it those comparisons are skipped
# (each skip names the reason) and every other test still runs.
bash launch/oracle_venv.sh build/oracle-venv || echo "test.sh: WARNING: oracle venv unavailable; HF/PEFT comparisons will be skipped"
phase "oracle venv"
bash launch/build.sh
phase "build"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd build
status=0
# One test per core at a time (most are 1-thread ranks or Python oracles); the slurm
# ones are RUN_SERIAL.
ctest --output-on-failure --timeout 1200 -j "$(nproc)" "$@" || status=$?
phase "ctest (status $status)"
cd ..
default_sanitize=1; [ $# -gt 0 ] && default_sanitize=0
if [ "${ABM_SANITIZE:-$default_sanitize}" = 1 ]; then
  FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash launch/sanitize.sh || status=1
  phase "sanitizers + fuzzing"
fi
echo "test.sh: finished in $(( $(date +%s) - t0 )) s, status $status"
exit $status
