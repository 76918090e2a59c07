#!/usr/bin/env bash
# Open MPI's launcher agent for the namespaced nodes of slurm/local/nodes.sh: mpirun calls
# it as it would call ssh ("node_agent.sh HOST COMMAND..."), and it runs COMMAND inside
# that node's network and UTS namespaces instead of logging in anywhere.
#   mpirun --mca plm_rsh_agent slurm/local/node_agent.sh --host abm-node1,abm-node2 ...
# (slurm/local/mpirun_nodes.sh sets this and the TCP-only transport for you.)
set -euo pipefail
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done  # ssh-style options: none apply
host="${1:?node_agent.sh: no host}"; shift
i="${host#abm-node}"
[[ "$i" =~ ^[0-9]+$ ]] || { echo "node_agent.sh: $host is not a namespaced node (abm-nodeN)" >&2; exit 2; }
# ssh hands the remote shell one command line; so do we.
exec "$(dirname "$0")/nodes.sh" exec "$i" /bin/sh -c "$*"
