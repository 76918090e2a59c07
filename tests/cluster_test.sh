#!/usr/bin/env bash
# Several real nodes on this machine (slurm/local/nodes.sh: network + UTS namespaces on a
# bridge, TCP between them), never a mock:
#   cluster_test.sh mpi ABMLORA     2 nodes x 1 rank over TCP: training equals 2 ranks on one
#                                   node bitwise, also through a throttled link; ABM on 2 stages
#                                   across the nodes equals 2 stages on one node bitwise and one
#                                   process within 1e-5; all-reduce busbw TCP vs shared memory
#   cluster_test.sh faults ABMLORA  node 2's processes killed, then its link down, mid-run: node 1
#                                   exits 2 within the bound with the watchdog's line; the run
#                                   resumes on node 1 alone and finishes with the same data order
#   cluster_test.sh slurm ABMLORA   a two-node Slurm: slurm/requeue.sbatch across both nodes,
#                                   SIGUSR1, exit 3, requeue, resume, adapter byte-identical; then
#                                   slurm/scaling_sweep.sh --nodes "1 2" and report --scaling
# Exit 77 (ctest: skipped) with a message when not root or namespaces are not available.
# Everything started is stopped again (trap), whatever happens.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:?usage: cluster_test.sh mpi|faults|slurm ABMLORA}"
abmlora="$(realpath "${2:?ABMLORA}")"
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "namespaced nodes need root"
ip netns add abm-probe 2>/dev/null || skip "cannot create network namespaces here"
ip netns del abm-probe
command -v ping >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iputils-ping >/dev/null 2>&1

work="$(mktemp -d /tmp/abmlora-cluster-test-XXXXXX)"
export ABM_NODES_DIR="$work/nodes"
cleanup() {
  [ -f "$work/slurm/slurm.conf" ] && "$here/slurm/local/stop.sh" "$work/slurm" >/dev/null 2>&1
  "$here/slurm/local/nodes.sh" down >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"  # munged (its own user) reaches the Slurm state below it
cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export ABMLORA="$abmlora"

# A tiny model and 40 token rows.
"$abmlora" init-model --out model --hidden 32 --intermediate 64 --layers 2 --heads 4 \
  --kv-heads 2 --vocab 97 --seed 1 --std 0.05 >/dev/null || fail "init-model"
for i in $(seq 0 39); do
  ids=1
  for j in $(seq 1 $((5 + (i * 5) % 11))); do ids="$ids,$((3 + (i * 3 + j * 7) % 90))"; done
  echo "{\"input_ids\": [$ids]}"
done >train.jsonl
train=(train --model "$work/model" --data "$work/train.jsonl" --lora-targets all-linear --lora-r 4
       --lora-dropout 0.1 --lr 5e-3 --warmup 2 --global-batch 4 --seed 3 --log-every 1 --dtype fp32)
adapter() { echo "$1/adapter/adapter_model.safetensors"; }
nodes2=(--host abm-node1:1,abm-node2:1)
steps_of() { grep -o '"step":[0-9]*' "$1/metrics.jsonl" | cut -d: -f2 | xargs; }
hashes_of() { grep -o '"batch_hash":[0-9]*' "$1/metrics.jsonl" | xargs; }

case "$mode" in
mpi)
  "$here/slurm/local/nodes.sh" up 2 || fail "nodes.sh up 2"
  source "$ABM_NODES_DIR/mpi.env"
  "$here/launch/run" -n 2 --threads 1 -- "${train[@]}" --steps 12 --out one-node >one-node.log 2>&1 ||
    { tail one-node.log; fail "2 ranks on one node"; }
  "$here/launch/run" -n 2 --threads 1 "${nodes2[@]}" -- "${train[@]}" --steps 12 --out two-nodes >two-nodes.log 2>&1 ||
    { tail two-nodes.log; fail "2 nodes x 1 rank"; }
  cmp "$(adapter one-node)" "$(adapter two-nodes)" || fail "2 nodes over TCP differ from 2 ranks on one node"
  echo "training, 2 nodes x 1 rank over TCP = 2 ranks on one node: bitwise"

  # A slow link: node 2's cable throttled both ways (tbf; these kernels have no netem for delay/loss).
  tc qdisc add dev abmv2 root tbf rate 8mbit burst 16kb latency 200ms || fail "tc tbf"
  ip netns exec abm-node2 tc qdisc add dev eth0 root tbf rate 8mbit burst 16kb latency 200ms
  start=$SECONDS
  "$here/launch/run" -n 2 --threads 1 "${nodes2[@]}" -- "${train[@]}" --steps 12 --out slow >slow.log 2>&1 ||
    { tail slow.log; fail "training over the throttled link"; }
  cmp "$(adapter one-node)" "$(adapter slow)" || fail "the throttled link changed the result"
  echo "training over an 8 Mbit/s link: finished in $((SECONDS - start)) s, bitwise the same"
  "$here/slurm/local/mpirun_nodes.sh" 2 1 -- "$abmlora" bench --what allreduce --min-bytes 1048576 \
    --max-bytes 1048576 --iters 3 >slow-bench.txt 2>&1 && grep -A2 "size (B)" slow-bench.txt | sed 's/^/  throttled: /'
  tc qdisc del dev abmv2 root
  ip netns exec abm-node2 tc qdisc del dev eth0 root

  abm=(--init abm --abm-steps 5 --abm-lr 1e-2 --abm-batch 2 --abm-layers all --steps 3)
  "$abmlora" "${train[@]}" "${abm[@]}" --threads 1 --out abm-one >abm-one.log 2>&1 || { tail abm-one.log; fail "ABM, 1 process"; }
  "$here/launch/run" -n 2 --threads 1 -- "${train[@]}" "${abm[@]}" --out abm-local >abm-local.log 2>&1 ||
    { tail abm-local.log; fail "ABM, 2 stages on one node"; }
  "$here/launch/run" -n 2 --threads 1 "${nodes2[@]}" -- "${train[@]}" "${abm[@]}" --out abm-nodes >abm-nodes.log 2>&1 ||
    { tail abm-nodes.log; fail "ABM, 2 stages on 2 nodes"; }
  grep -q "stage plan" abm-nodes.log || fail "no ABM stage plan on 2 nodes"
  cmp "$(adapter abm-local)" "$(adapter abm-nodes)" || fail "ABM on 2 nodes differs from 2 stages on one node"
  python3 "$here/tests/cluster_compare.py" "$(adapter abm-one)" "$(adapter abm-nodes)" 1e-5 ||
    fail "ABM on 2 stages across 2 nodes differs from one process"
  echo "ABM, 2 stages on 2 nodes = 2 stages on one node (bitwise) = one process (above)"

  echo "all-reduce busbw (GB/s), 2 ranks: TCP between 2 nodes | shared memory on one node"
  "$here/slurm/local/mpirun_nodes.sh" 2 1 -- "$abmlora" bench --what allreduce --max-bytes 16777216 >tcp.txt 2>&1 ||
    { cat tcp.txt; fail "allreduce bench over TCP"; }
  mpirun -np 2 --bind-to none "$abmlora" bench --what allreduce --max-bytes 16777216 >shm.txt 2>&1 ||
    { cat shm.txt; fail "allreduce bench, shared memory"; }
  awk 'NR == FNR {if ($1 ~ /^[0-9]+$/) shm[$1] = $7; next}
       $1 ~ /^[0-9]+$/ {printf "  %10d B  %7.3f | %7.3f   (wrong values over TCP: %d)\n", $1, $7, shm[$1], $8; n++
                         if ($8 != 0) bad = 1}
       END {exit bad || n == 0}' shm.txt tcp.txt ||
    fail "the TCP all-reduce returned wrong values"
  ;;
faults)
  "$here/slurm/local/nodes.sh" up 2 || fail "nodes.sh up 2"
  source "$ABM_NODES_DIR/mpi.env"
  export ABM_COMM_TIMEOUT_S=10 ABM_STOP_GRACE_S=12  # grace > timeout: the watchdog speaks first
  bound=$((ABM_COMM_TIMEOUT_S + 10))
  "$here/launch/run" -n 2 --threads 1 -- "${train[@]}" --steps 30 --out ref >ref.log 2>&1 || { tail ref.log; fail "reference run"; }
  # run_with_fault NAME ACTION: a 2-node run; ACTION once 6 steps are logged; returns the seconds
  # from the fault to launch/run's exit in $took and its status in $rc.
  run_with_fault() {
    ABM_TEST_STEP_SLEEP_S=0.3 timeout 300 "$here/launch/run" -n 2 --threads 1 "${nodes2[@]}" -- "${train[@]}" \
      --steps 30 --checkpoint-every 3 --out "$1" >"$1.log" 2>&1 &
    local pid=$! t0
    for _ in $(seq 600); do
      [ "$(cat "$1/metrics.jsonl" 2>/dev/null | wc -l)" -ge 6 ] && break
      sleep 0.1
    done
    t0=$(date +%s.%N)
    eval "$2"
    wait "$pid"; rc=$?
    took=$(echo "$(date +%s.%N) - $t0" | bc)
    # Node 1's rank: the watchdog's one line naming the operation and the peer on node 2.
    ranks_end=$(grep -c "MPI all_reduce waited .* for the ranks on other hosts (1@abm-node2)" "$1.log")
    echo "$1: launch/run exited $rc, ${took} s after the fault"
    grep "abmlora: error" "$1.log" | sed 's/^/  /'
    [ "$rc" -eq 2 ] || { tail "$1.log"; fail "$1: expected status 2 (failed), got $rc"; }
    [ "$ranks_end" -ge 1 ] || { tail "$1.log"; fail "$1: no watchdog line naming 1@abm-node2"; }
    awk -v t="$took" -v b="$((bound + ABM_STOP_GRACE_S + 2))" 'BEGIN {exit !(t <= b)}' ||
      fail "$1: took ${took} s, above the bound"
  }
  run_with_fault kill 'ip netns pids abm-node2 | xargs -r kill -KILL'
  "$here/slurm/local/nodes.sh" down >/dev/null; "$here/slurm/local/nodes.sh" up 2 >/dev/null
  run_with_fault partition '"$here/slurm/local/nodes.sh" link 2 down'
  [ -e partition/checkpoints/latest ] || fail "no latest checkpoint after the partition"
  # Resume on node 1 alone (the same global batch on 1 rank): finishes, same data order.
  "$here/launch/run" -n 1 --threads 1 --host abm-node1:1 -- "${train[@]}" --steps 30 --checkpoint-every 3 \
    --resume auto --out partition >resume.log 2>&1 || { tail resume.log; fail "resume on node 1 alone"; }
  grep -q "elastic resume" resume.log || fail "no elastic resume 2 -> 1 rank"
  [ "$(steps_of partition)" = "$(seq 1 30 | xargs)" ] || fail "steps after resume: $(steps_of partition)"
  [ "$(hashes_of partition)" = "$(hashes_of ref)" ] || fail "the data order changed across the fault"
  python3 "$here/tests/cluster_compare.py" "$(adapter ref)" "$(adapter partition)" 1e-5 ||
    fail "the resumed run's adapter is not the uninterrupted one's"
  echo "partition, then resume on node 1 alone: steps 1..30 once each, same batches, adapter as uninterrupted (above)"
  ;;
slurm)
  mkdir -p slurm
  "$here/slurm/local/start.sh" --nodes 2 "$work/slurm" || fail "slurm/local/start.sh --nodes 2"
  source "$work/slurm/env.sh"
  sinfo
  "$here/launch/run" -n 2 --threads 1 -- "${train[@]}" --steps 30 --out ref >ref.log 2>&1 || { tail ref.log; fail "reference run"; }
  ABM_TEST_STEP_SLEEP_S=0.5 ABM_ROOT="$here" \
    sbatch --parsable --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=1 --time=5 \
    --output="$work/job.out" "$here/slurm/requeue.sbatch" "${train[@]:1}" --steps 30 \
    --checkpoint-every 5 --out "$work/run" >jobid || fail "sbatch"
  id=$(cat jobid)
  for _ in $(seq 600); do
    [ "$(cat run/metrics.jsonl 2>/dev/null | wc -l)" -ge 6 ] && break
    [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] && break
    sleep 0.1
  done
  sleep 2  # requeue.sbatch forwards a signal once its step has run 10 s
  scancel --batch --signal=USR1 "$id" || { cat job.out; fail "scancel --signal=USR1"; }
  for _ in $(seq 240); do
    st=$(squeue -h -j "$id" -o %T 2>/dev/null)
    [ -z "$st" ] && break
    sleep 1
  done
  cat job.out
  [ -z "$st" ] || fail "job $id still $st after 4 minutes"
  grep -q "requeueing job" job.out || fail "the batch script did not requeue"
  grep -q "(SIGUSR1): checkpoint written; exit 3" job.out || fail "abmlora did not stop on SIGUSR1"
  grep -q "resume: .* at step" job.out || fail "the requeued run did not resume"
  grep -q "2 rank(s)" job.out || fail "not 2 ranks"
  [ "$(steps_of run)" = "$(seq 1 30 | xargs)" ] || fail "metrics steps '$(steps_of run)' are not 1..30 once each"
  cmp "$(adapter ref)" "$(adapter run)" || fail "the requeued two-node run differs from the uninterrupted run"
  echo "two-node Slurm: requeue.sbatch across abm-node1/2, signalled, requeued, resumed: adapter byte-identical"

  SBATCH_ARGS="--ntasks-per-node=1 --cpus-per-task=1 --gpus-per-node=0 --time=5" ABM_ROOT="$here" \
    "$here/slurm/scaling_sweep.sh" --nodes "1 2" --template "$here/slurm/multi_node.sbatch" --out "$work/scaling" -- "${train[@]:1}" --steps 8 \
    >sweep.log 2>&1 || { cat sweep.log; fail "scaling_sweep.sh"; }
  cat sweep.log
  for _ in $(seq 240); do
    [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
    sleep 1
  done
  cat scaling/report.log
  grep -q "^nodes-2" scaling/report.log || { cat scaling/nodes-*.log; fail "report --scaling has no 2-node row"; }
  ;;
*) fail "unknown mode $mode" ;;
esac
