#!/usr/bin/env bash
# mpirun across the namespaced nodes of slurm/local/nodes.sh, as across real hosts:
#   slurm/local/mpirun_nodes.sh NODES RANKS_PER_NODE [mpirun options] -- PROGRAM ARGS...
# Ranks fill the nodes in order (0..k-1 on abm-node1, k..2k-1 on abm-node2, ...); the
# transport settings come from STATE/mpi.env (TCP between nodes). --bind-to none: every
# node believes it owns all of this machine's cores, and binding would stack the nodes'
# ranks on the same core. (launch/run --host does the same for abmlora, with its exit codes.)
set -euo pipefail
die() { echo "slurm/local/mpirun_nodes.sh: $*" >&2; exit 2; }
[ $# -ge 3 ] || die "usage: mpirun_nodes.sh NODES RANKS_PER_NODE [mpirun options] -- PROGRAM ARGS..."
nodes="$1" per="$2"; shift 2
[[ "$nodes" =~ ^[0-9]+$ && "$per" =~ ^[0-9]+$ && "$nodes" -ge 1 && "$per" -ge 1 ]] ||
  die "NODES and RANKS_PER_NODE must be positive integers, got '$nodes' '$per'"
state="${ABM_NODES_DIR:-/run/abmlora-nodes}"
[ -f "$state/mpi.env" ] || die "no nodes (run: slurm/local/nodes.sh up $nodes)"
source "$state/mpi.env"
hosts=""
for i in $(seq "$nodes"); do
  [ -e "/run/netns/abm-node$i" ] || die "no node abm-node$i (run: slurm/local/nodes.sh up $nodes)"
  hosts+="${hosts:+,}abm-node$i:$per"
done
opts=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ $# -ge 1 ] || die "no PROGRAM after --"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun --host "$hosts" -np $((nodes * per)) --map-by slot:OVERSUBSCRIBE --bind-to none \
  "${opts[@]}" "$@"
