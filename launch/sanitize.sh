#!/usr/bin/env bash
# The parsers under AddressSanitizer + UndefinedBehaviorSanitizer (issue 17, "Sanitizers"
# and "Mutation fuzzing in CI"): builds tests/sanitize — a separate CMake project of just
# the parser sources, instrumented, linked against the pinned LibTorch like the main
# build — into build-sanitize/, then
#   1. runs the parser tests (tests/sanitize/*_test.cpp) under ASan + UBSan;
#   2. runs each libFuzzer target (tests/fuzz/fuzz_*.cpp) for FUZZ_SECONDS with a fixed
#      seed, from seed corpora the product's own writers make (fuzz_make_seeds) plus the
#      committed text seeds (tests/fuzz/seeds/).
# Exits non-zero when the build fails, a test fails, or any fuzzer finds a crash, a
# sanitizer report, a leak, a timeout (> 10 s on one input) or an out-of-memory (> 2 GiB);
# the crashing input is saved as FUZZ_CRASH_DIR/<target>-crash-<sha1> and its path printed.
#
# Needs clang++ with libFuzzer (Debian: clang libclang-rt-14-dev) and the packages of
# launch/setup.sh (LibTorch in deps/ from launch/fetch_libtorch.sh).
#
# Environment:
#   FUZZ_SECONDS=60        seconds per fuzz target (0: skip fuzzing)
#   FUZZ_TARGETS="..."     which targets (default: all five, see tests/fuzz/README.md)
#   FUZZ_CRASH_DIR=/tmp/fuzz-crashes   where crashing inputs are written
#   SANITIZE_BUILD_DIR=build-sanitize  build directory (relative to the checkout root)
#   SANITIZE_JOBS=$(nproc) build parallelism;  SANITIZE_CXX / SANITIZE_CC: the compilers
#   SANITIZE_SKIP_TESTS=1  fuzz only
# Usage: launch/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${SANITIZE_BUILD_DIR:-build-sanitize}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-"safetensors_header jsonl json_config checkpoint_h5 token_cache_h5"}
CRASH_DIR=${FUZZ_CRASH_DIR:-/tmp/fuzz-crashes}
JOBS=${SANITIZE_JOBS:-$(nproc)}
CXX_BIN=${SANITIZE_CXX:-clang++}
CC_BIN=${SANITIZE_CC:-clang}
t0=$(date +%s)
say() { echo "sanitize.sh: $*"; }
die() { echo "sanitize.sh: error: $*" >&2; exit 1; }

command -v "$CXX_BIN" >/dev/null || die "$CXX_BIN not found (Debian: apt-get install clang libclang-rt-14-dev)"
command -v "$CC_BIN" >/dev/null || die "$CC_BIN not found (Debian: apt-get install clang libclang-rt-14-dev)"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
"$CXX_BIN" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err" ||
  die "$CXX_BIN cannot link libFuzzer + ASan + UBSan (Debian: apt-get install libclang-rt-14-dev): $(head -3 "$probe/err")"

# --- build ----------------------------------------------------------------------------
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "^CMAKE_CXX_COMPILER:.*$(basename "$CXX_BIN")" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD"  # another compiler was configured there
fi
tb=$(date +%s)
mkdir -p "$BUILD"
cmake -S tests/sanitize -B "$BUILD" "${gen[@]}" -DCMAKE_C_COMPILER="$CC_BIN" \
      -DCMAKE_CXX_COMPILER="$CXX_BIN" -DABM_FUZZ=ON >"$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log"; die "configure failed"; }
cmake --build "$BUILD" -j"$JOBS" || die "build failed"
say "build done in $(( $(date +%s) - tb )) s"

# LibTorch, HDF5 and Open MPI are not instrumented. Leak checking stays on (a leak is a
# finding); only HDF5's own free-list losses on damaged files are suppressed
# (tests/sanitize/lsan.supp says why and what checks open HDF5 ids instead).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/sanitize/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1

# --- parser tests ---------------------------------------------------------------------
status=0
if [ "${SANITIZE_SKIP_TESTS:-0}" != 1 ]; then
  tt=$(date +%s)
  if "$BUILD/abm_sanitize_parser_test" --gtest_brief=1; then
    say "parser tests passed under ASan+UBSan in $(( $(date +%s) - tt )) s"
  else
    say "parser tests FAILED under ASan+UBSan"
    status=1
  fi
fi

# --- fuzzing --------------------------------------------------------------------------
summary=()
if [ "$FUZZ_SECONDS" != 0 ]; then
  FZ=$BUILD/fuzz
  rm -rf "$FZ"
  mkdir -p "$FZ/seeds/json_config" "$CRASH_DIR"
  "$BUILD/fuzz_make_seeds" "$FZ/seeds" || die "fuzz_make_seeds failed"
  cp models/default/config.json "$FZ/seeds/json_config/default_config.json"
  for t in $FUZZ_TARGETS; do
    bin=$BUILD/fuzz_$t
    [ -x "$bin" ] || die "no fuzz target $t ($bin)"
    corpus=$FZ/corpus/$t
    mkdir -p "$corpus"
    dirs=("$corpus")
    for d in "$ROOT/tests/fuzz/seeds/$t" "$FZ/seeds/$t"; do [ -d "$d" ] && dirs+=("$d"); done
    log=$FZ/$t.log
    ts=$(date +%s)
    rc=0
    "$bin" -seed=1 -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
           -print_final_stats=1 -artifact_prefix="$CRASH_DIR/$t-" "${dirs[@]}" >"$log" 2>&1 || rc=$?
    secs=$(( $(date +%s) - ts ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$rc" = 0 ]; then
      line="fuzz: $t $secs s, ${execs:-?} execs (${rate:-?}/s), no crash"
    else
      status=1
      found=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tr '\n' ' ')
      echo "---- fuzz_$t failed (exit $rc); last lines of $log:"
      grep -v '^#[0-9]' "$log" | tail -40
      line="fuzz: $t $secs s, ${execs:-?} execs (${rate:-?}/s), FAILED (exit $rc), input: ${found:-none written}"
      [ -n "$found" ] && echo "reproduce: $bin $found"
    fi
    echo "$line"
    summary+=("$line")
  done
fi

echo "sanitize.sh: summary"
for l in "${summary[@]}"; do echo "  $l"; done
say "finished in $(( $(date +%s) - t0 )) s, status $status"
exit $status
