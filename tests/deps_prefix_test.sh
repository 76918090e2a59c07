#!/usr/bin/env bash
# launch/debs.sh, the path a machine without apt builds by (the lent GPU machine): fetch the
# .debs, refuse a damaged one, unpack into a fresh prefix, then
#   - CMake configured with -DABM_DEPS_PREFIX finds every library in the prefix, none in /usr;
#   - the relocated Open MPI (OPAL_PREFIX) compiles and runs a 2-rank MPI program.
# The full build against a prefix on a machine without the -dev packages was checked once
# in a Debian chroot (docs/usage.md, Build). Skips (77) when apt cannot download.
# Usage: deps_prefix_test.sh SOURCE_DIR
set -uo pipefail
src=$(cd "$1" && pwd)
tmp=$(mktemp -d)
phase=fetch
# A silent exit (one CI run stopped after the unpack with no FAIL line) says where it was.
trap 'rc=$?; [ "$rc" = 0 ] || [ "$rc" = 77 ] || echo "deps_prefix: exit $rc during: $phase"
      [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

bash "$src/launch/debs.sh" fetch "$tmp/debs" || { echo "SKIP: apt-get download failed (offline?)"; exit 77; }

# A damaged .deb is refused with one line, and nothing is unpacked.
cp -r "$tmp/debs" "$tmp/bad"
f=$(ls "$tmp/bad"/libsz2_*.deb)
printf 'x' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
out=$(bash "$src/launch/debs.sh" unpack "$tmp/bad" "$tmp/badprefix" 2>&1); rc=$?
[ "$rc" = 2 ] || fail "damaged .deb: exit $rc, expected 2 ($out)"
echo "$out" | grep -q '^debs: error: .*does not match SHA256SUMS' || fail "damaged .deb: $out"
[ ! -e "$tmp/badprefix/usr" ] || fail "damaged .deb: something was unpacked"

bash "$src/launch/debs.sh" unpack "$tmp/debs" "$tmp/prefix" || fail "unpack"
phase="source env.sh"
# shellcheck disable=SC1091
source "$tmp/prefix/env.sh"
phase="configure against the prefix"

# CMake: every dependency from the prefix.
cmake -S "$src" -B "$tmp/build" -DABM_CUDA=OFF $ABM_DEPS_CMAKE > "$tmp/cmake.log" 2>&1 ||
  { cat "$tmp/cmake.log"; fail "configure against the prefix"; }
grep -q "Dependencies from $tmp/prefix" "$tmp/cmake.log" || fail "no 'Dependencies from' line"
for var in MPI_mpi_LIBRARY MPI_CXX_HEADER_DIR ABM_HDF5_LIBRARY ABM_HDF5_INCLUDE_DIR \
           Boost_DIR nlohmann_json_DIR GTest_DIR SPM_INCLUDE_DIR SPM_LIBRARY; do
  val=$(grep "^$var:" "$tmp/build/CMakeCache.txt" | cut -d= -f2-)
  [ -n "$val" ] || fail "$var not in the cache"
  for p in ${val//;/ }; do
    case "$p" in "$tmp/prefix"/*) ;; *) fail "$var=$val is not in the prefix" ;; esac
  done
  echo "ok $var=${val//$tmp/TMP}"
done

# Open MPI relocated: the prefix's wrapper compiles, its mpirun starts 2 ranks that meet.
cat > "$tmp/hello.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size, sum = 0, one = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("ranks %d sum %d\n", size, sum);
  MPI_Finalize();
  return 0;
}
EOF
phase="mpicc and the relocated mpirun"
mpicc "$tmp/hello.c" -o "$tmp/hello" || fail "the prefix's mpicc"
ldd "$tmp/hello" | grep -q "$tmp/prefix/.*libmpi.so" || fail "hello does not load the prefix's libmpi"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(timeout 60 "$tmp/prefix/usr/bin/mpirun" --oversubscribe -np 2 "$tmp/hello" 2>&1)
echo "$out"
[ "$out" = "ranks 2 sum 2" ] || fail "the relocated mpirun: $out"
echo "PASS"
