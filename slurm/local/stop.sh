#!/usr/bin/env bash
# Stops what slurm/local/start.sh started, and only that: cancels the jobs of this local
# cluster, then ends the slurmd(s), slurmctld and munged by the pid files in STATE_DIR (each
# pid is checked to still be that daemon before it is signalled), and takes the namespaced
# nodes down if start.sh --nodes brought them up.
#   slurm/local/stop.sh [STATE_DIR]   (default $ABM_SLURM_DIR or /tmp/abmlora-slurm)
set -uo pipefail
state="${1:-${ABM_SLURM_DIR:-/tmp/abmlora-slurm}}"
[ -d "$state" ] || { echo "slurm/local/stop.sh: no state directory $state (nothing to stop)"; exit 0; }
export SLURM_CONF="$state/slurm.conf"

# pid of daemon $2 from pid file $1, if it is still that process.
pid_of() {
  local f="$1" name="$2" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && echo "$pid"
}

# Jobs first, while slurmctld and slurmd can still end their steps cleanly.
if pid_of "$state/slurmctld.pid" slurmctld >/dev/null; then
  jobs="$(squeue -h -o %A 2>/dev/null)"
  # shellcheck disable=SC2086  # one argument per job id
  [ -n "$jobs" ] && scancel --quiet $jobs
  for _ in $(seq 30); do
    [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
    sleep 1
  done
fi

stop() {
  local f="$1" name="$2" pid
  pid="$(pid_of "$f" "$name")" || return 0
  kill -TERM "$pid"
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { echo "slurm/local: stopped $name ($pid)"; rm -f "$f"; return 0; }
    sleep 0.2
  done
  echo "slurm/local: $name ($pid) ignored SIGTERM; sending SIGKILL"
  kill -KILL "$pid"
  rm -f "$f"
}
for f in "$state"/slurmd*.pid; do
  [ -e "$f" ] && stop "$f" slurmd
done
stop "$state/slurmctld.pid" slurmctld
stop "$state/munge/munged.pid" munged
if [ -f "$state/nodes.up" ]; then
  "$(dirname "$0")/nodes.sh" down
  rm -f "$state/nodes.up"
fi
exit 0
