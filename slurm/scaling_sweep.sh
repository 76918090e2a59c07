#!/usr/bin/env bash
# Submits the same short training run over several node counts, for a scaling table:
#   slurm/scaling_sweep.sh [--nodes "1 2 4 8"] [--template slurm/multi_node.sbatch]
#                          [--out runs/scaling] -- --model M --data D --steps 50 [train flags]
# Each run writes OUT/nodes-N (metrics.jsonl has tokens/s, ranks and nodes per step); the
# global batch is the same for all (set it with --global-batch, divisible by every rank
# count), so the runs do the same work and differ only in how many ranks share it. A last,
# dependent one-task job runs, once they have all ended,
#   abmlora report --scaling OUT     (table + OUT/report/scaling.png; see OUT/report.log)
# which can also be run by hand. Extra sbatch options (partition, account, time) go in
# $SBATCH_ARGS; the report job gets them too. Submit from the abmlora checkout (or set
# ABM_ROOT / ABMLORA).
set -euo pipefail
nodes="1 2 4"
template="slurm/multi_node.sbatch"
out="runs/scaling"
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2;;
    --template) template="$2"; shift 2;;
    --out) out="$2"; shift 2;;
    --) shift; break;;
    *) echo "scaling_sweep.sh: unknown argument $1 (train flags go after --)" >&2; exit 2;;
  esac
done
[ $# -gt 0 ] || { echo "scaling_sweep.sh: give the train flags after -- (--model, --data, --steps ...)" >&2; exit 2; }
[ -f "$template" ] || { echo "scaling_sweep.sh: no template $template" >&2; exit 2; }
mkdir -p "$out"
root="${ABM_ROOT:-$PWD}"
abmlora="${ABMLORA:-$root/build/abmlora}"
ids=""
for n in $nodes; do
  # shellcheck disable=SC2086  # SBATCH_ARGS is a list of options
  id=$(sbatch --parsable --nodes="$n" --job-name="scaling-$n" --output="$out/nodes-$n.log" \
         ${SBATCH_ARGS:-} "$template" "$@" --out "$out/nodes-$n")
  echo "nodes $n: job $id -> $out/nodes-$n"
  echo "$n $id" >>"$out/jobs.txt"
  ids="$ids:$id"
done
# afterany: one failed point (no metrics.jsonl) is left out of the report, not the whole report.
# shellcheck disable=SC2086
rid=$(sbatch --parsable --ntasks=1 --job-name=scaling-report --dependency="afterany$ids" \
        --output="$out/report.log" ${SBATCH_ARGS:-} --wrap="'$abmlora' report --scaling '$out'")
echo "report: job $rid (after$ids) -> $out/report.log, $out/report/scaling.png"
echo "or by hand when they are done: abmlora report --scaling $out"
