#!/usr/bin/env bash
# Tests against a real one-node Slurm started here (slurm/local/start.sh), never a mock:
#   slurm_test.sh smoke   ABMLORA MPI_TEST   a 2-task sbatch --wait: srun --mpi=pmix, launch/run,
#                                            and checkpoints_mpi_test (real MPI over PMIx)
#   slurm_test.sh requeue                    slurm/requeue.sbatch with a stand-in for abmlora
#                                            (slurm_stub_abmlora.sh): signalled before the time
#                                            limit, forwards, requeues itself, resumes, finishes
# Exit 77 (ctest: skipped) with a message when not root or Slurm cannot be installed.
# Everything started is stopped again (trap), whatever happens.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:?usage: slurm_test.sh smoke|requeue [ABMLORA MPI_TEST]}"
if [ "$mode" = smoke ]; then  # absolute: the job runs in the state directory
  abmlora="$(realpath "${2:?ABMLORA}")" mpi_test="$(realpath "${3:?MPI_TEST}")"
fi
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*"; [ -n "${state:-}" ] && tail -n 20 "$state"/slurmctld.log "$state"/slurmd.log 2>/dev/null; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "the local Slurm needs root"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge ..."
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >/dev/null 2>&1 || skip "cannot install slurm-wlm and munge (apt-get failed: offline?)"
fi

state="$(mktemp -d /tmp/abmlora-slurm-test-XXXXXX)"
cleanup() { "$here/slurm/local/stop.sh" "$state" >/dev/null 2>&1; rm -rf "$state"; }
trap cleanup EXIT
# A free port pair, so a developer's own local Slurm (default 6817) is not disturbed.
for _ in $(seq 50); do
  port=$((20000 + RANDOM % 20000))
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/$((port + 1))) 2>/dev/null || break
done
ABM_SLURM_PORT=$port "$here/slurm/local/start.sh" "$state" || fail "slurm/local/start.sh"
source "$state/env.sh"
cd "$state"

case "$mode" in
smoke)
  cat >job.sh <<JOB
#!/bin/bash
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=1
#SBATCH --time=5
#SBATCH --output=$state/job.out
set -e
srun --mpi=pmix hostname
ABMLORA=$abmlora $here/launch/run -n 2 -- --version
srun --mpi=pmix -n 2 $mpi_test
JOB
  timeout 400 sbatch --wait job.sh || { cat job.out; fail "the 2-task job failed"; }
  cat job.out
  [ "$(grep -c "^$(hostname -s)\$" job.out)" -eq 2 ] || fail "expected two tasks running hostname"
  grep -q "^abmlora " job.out || fail "launch/run did not run abmlora under srun"
  grep -q "PASSED" job.out || fail "checkpoints_mpi_test did not pass under srun --mpi=pmix"
  echo "slurm smoke: OK"
  ;;
requeue)
  mkdir -p stub
  # Slurm signals up to 60 s early and 1 min is the smallest limit: the signal lands 0-30 s
  # into each run, the stub needs 45 one-second steps, so it takes at least two runs.
  STUB_DIR="$state/stub" STUB_STEPS=45 ABMLORA="$here/tests/slurm_stub_abmlora.sh" ABM_ROOT="$here" \
    timeout 600 sbatch --wait --ntasks=2 --cpus-per-task=1 --time=1 --signal=B:USR1@40 \
    --output="$state/job.out" "$here/slurm/requeue.sbatch" --model stub
  rc=$?
  cat job.out stub/log.0 stub/log.1
  [ "$rc" -eq 0 ] || fail "the requeue job ended with $rc"
  runs=$(grep -c "start at step" stub/log.0)
  [ "$runs" -ge 2 ] || fail "expected at least two runs (signal, checkpoint, requeue), got $runs"
  grep -q "requeueing job" job.out || fail "the batch script did not requeue"
  for r in 0 1; do
    grep -q "done at step 45" "stub/log.$r" || fail "rank $r did not finish"
    # each run starts where the previous one checkpointed
    starts="$(sed -n 's/.*start at step \([0-9]*\).*/\1/p' "stub/log.$r" | xargs)"
    ckpts="$(sed -n 's/.*checkpoint at step \([0-9]*\),.*/\1/p' "stub/log.$r" | xargs)"
    [ "$starts" = "$(echo 0 $ckpts)" ] || fail "rank $r: runs started at steps '$starts', checkpoints at '$ckpts'"
    grep -q -- "--resume auto" "stub/log.$r" || fail "rank $r: --resume auto not passed"
  done
  echo "slurm requeue: OK ($runs runs)"
  ;;
*) fail "unknown mode $mode" ;;
esac
