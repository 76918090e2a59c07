#!/usr/bin/env bash
# Several "nodes" on this one machine, for the multi-node tests: each node is a network
# namespace (its own interface, address and routing) plus a UTS namespace (its own
# hostname), joined to the others by veth pairs on one bridge. MPI and Slurm then talk TCP
# between them exactly as between hosts; the filesystem stays shared (like a cluster's
# shared filesystem). Needs root and iproute2.
#   slurm/local/nodes.sh up N        nodes abm-node1..abm-nodeN, 10.213.7.1..N/24
#   slurm/local/nodes.sh down        removes every node, the bridge and the state (idempotent)
#   slurm/local/nodes.sh list        one line per node: name address
#   slurm/local/nodes.sh link I up|down   takes node I's cable out (or puts it back)
#   slurm/local/nodes.sh exec I CMD...    runs CMD on node I (what node_agent.sh does)
#   source STATE/mpi.env             Open MPI settings for mpirun across the nodes (launcher
#                                    agent, TCP between nodes, the bridge's interfaces); then
#                                    launch/run -n 2 --host abm-node1:1,abm-node2:1 -- ...
# The /24 exists only inside this machine; this machine itself is 10.213.7.254 on the bridge
# (where slurmctld and mpirun listen). Names and state: ABM_NODES_DIR (default
# /run/abmlora-nodes) holds one UTS-namespace file per node and hosts.txt.
set -euo pipefail
readonly net=10.213.7 bridge=abmbr0 me=254
state="${ABM_NODES_DIR:-/run/abmlora-nodes}"
die() { echo "slurm/local/nodes.sh: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
command -v ip >/dev/null || die "ip not found: apt-get install iproute2"

node() { echo "abm-node$1"; }

down() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '/^abm-node[0-9]+/ {print $1}'); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  for v in $(ip -o link show 2>/dev/null | sed -nE 's/^[0-9]+: (abmv[0-9]+)[@:].*/\1/p'); do
    ip link del "$v" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  if [ -d "$state" ]; then
    for f in "$state"/*.uts; do
      [ -e "$f" ] && { umount "$f" 2>/dev/null || true; }
    done
    rm -rf "$state"
  fi
}

up() {
  local n="$1" i
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "up needs a node count in [1, 200], got '$n'"
  down
  mkdir -p "$state"
  ip link add "$bridge" type bridge
  ip addr add "$net.$me/24" dev "$bridge"
  ip link set "$bridge" up
  : >"$state/hosts.txt"
  for i in $(seq "$n"); do
    local ns; ns="$(node "$i")"
    ip netns add "$ns"
    ip link add "abmv$i" type veth peer name eth0 netns "$ns"
    ip link set "abmv$i" master "$bridge" up
    ip -n "$ns" addr add "$net.$i/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$net.$me"
    # A persistent UTS namespace (bind-mounted on a file) carrying the node's hostname.
    touch "$state/$ns.uts"
    unshare --uts="$state/$ns.uts" hostname "$ns"
    echo "$ns $net.$i" >>"$state/hosts.txt"
  done
  cat >"$state/mpi.env" <<ENV
# Written by slurm/local/nodes.sh: mpirun across the namespaced nodes as across hosts. The
# launcher enters a node's namespaces instead of ssh; ranks on different nodes use TCP (Open
# MPI sees different hosts: no shared memory between them), runtime traffic too, on the
# bridge's /24 only.
export OMPI_MCA_plm_rsh_agent=$(cd "$(dirname "$0")" && pwd)/node_agent.sh
export OMPI_MCA_btl=tcp,vader,self
export OMPI_MCA_btl_tcp_if_include=$net.0/24
export OMPI_MCA_oob_tcp_if_include=$net.0/24
ENV
  # Every node reaches every other one (and this machine) before anyone relies on it.
  for i in $(seq "$n"); do
    ip netns exec "$(node "$i")" ping -c1 -W2 "$net.$me" >/dev/null 2>&1 ||
      die "node $i cannot reach $net.$me over $bridge"
  done
  echo "slurm/local/nodes.sh: $n node(s) up:"
  sed 's/^/  /' "$state/hosts.txt"
}

exec_on() {
  local i="$1"; shift
  local ns; ns="$(node "$i")"
  [ -e "/run/netns/$ns" ] || die "no node $i (slurm/local/nodes.sh up N first)"
  exec nsenter --net="/run/netns/$ns" --uts="$state/$ns.uts" -- "$@"
}

link() {
  local i="$1" how="$2"
  [ "$how" = up ] || [ "$how" = down ] || die "link $i needs up or down, got '$how'"
  ip link show "abmv$i" >/dev/null 2>&1 || die "no node $i"
  ip link set "abmv$i" "$how"
}

case "${1:-}" in
  up) up "${2:-}";;
  down) down; echo "slurm/local/nodes.sh: down";;
  list) [ -f "$state/hosts.txt" ] && cat "$state/hosts.txt";;
  link) link "${2:-}" "${3:-}";;
  exec) shift; [ $# -ge 2 ] || die "exec needs a node number and a command"; exec_on "$@";;
  *) die "usage: nodes.sh up N | down | list | link I up|down | exec I CMD...";;
esac
