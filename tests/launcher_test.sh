#!/usr/bin/env bash
# launch/run returns abmlora's own exit status 3 ("stopped with a checkpoint, requeue me")
# after a stop signal, although mpirun itself then reports a failure: 2 ranks under mpirun,
#   1. SIGTERM to launch/run (forwarded to mpirun, then to the ranks),
#   2. SIGINT to mpirun itself (as a user's Ctrl-C would send it; launch/run has set its
#      grace, ABM_STOP_GRACE_S, to 3 s here),
# each while training; then --resume auto finishes the run (exit 0).
# (The same under srun: tests/slurm_test.sh requeue.)
# Usage: launcher_test.sh ABMLORA
set -uo pipefail
abmlora="${1:?usage: launcher_test.sh ABMLORA}"
here="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAILED: $*"; tail -n 30 "$tmp"/*.log 2>/dev/null; exit 1; }

for i in $(seq 0 15); do
  echo "{\"input_ids\": [1, $((3 + i)), $((20 + i)), $((40 + i)), $((60 + i)), 7, 8, 9]}"
done >"$tmp/d.jsonl"
train=(train --model "$here/models/default" --data "$tmp/d.jsonl" --out "$tmp/run"
       --steps 40 --global-batch 2 --max-length 16 --dtype fp32 --resume auto --log-every 1)

# Starts (or resumes) the run (steps sleep 1 s), waits for 2 new steps, sends $1 to $2
# (launcher | mpirun).
stop_with() {
  local sig="$1" target="$2" log="$tmp/$1.log"
  local n0; n0="$(cat "$tmp/run/metrics.jsonl" 2>/dev/null | wc -l)"
  ABMLORA="$abmlora" ABM_TEST_STEP_SLEEP_S=1 ABM_STOP_GRACE_S=3 "$here/launch/run" -n 2 --threads 1 -- \
    "${train[@]}" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    [ "$(cat "$tmp/run/metrics.jsonl" 2>/dev/null | wc -l)" -ge $((n0 + 2)) ] && break
    sleep 0.1
  done
  if [ "$target" = mpirun ]; then
    kill -s "$sig" "$(pgrep -P "$pid" -x mpirun)" || fail "no mpirun under launch/run"
  else
    kill -s "$sig" "$pid"
  fi
  wait "$pid"
  local rc=$?
  [ "$rc" -eq 3 ] || fail "SIG$sig to $target: launch/run returned $rc, expected 3"
  grep -q "checkpoint written; exit 3" "$log" || fail "SIG$sig: no checkpoint written"
  echo "launcher: SIG$sig to $target -> exit 3, checkpoint written"
}

stop_with TERM launcher
stop_with INT mpirun
ABMLORA="$abmlora" "$here/launch/run" -n 2 --threads 1 -- "${train[@]}" >"$tmp/end.log" 2>&1 \
  || fail "the resumed run did not finish"
[ "$(grep -c '^resume: ' "$tmp/end.log")" -eq 1 ] || fail "the last run did not resume"
steps="$(grep -o '"step":[0-9]*' "$tmp/run/metrics.jsonl" | cut -d: -f2 | xargs)"
[ "$steps" = "$(seq 1 40 | xargs)" ] || fail "metrics steps '$steps' are not 1..40 once each"
echo "launcher: OK"
