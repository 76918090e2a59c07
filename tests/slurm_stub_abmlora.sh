#!/usr/bin/env bash
# Stands in for `abmlora train` in the requeue test of slurm/requeue.sbatch, until the
# Trainer has checkpoints: "steps" of 1 s, SIGUSR1/SIGTERM set a flag, and on the flag it
# "checkpoints" (the step number in $STUB_DIR/ckpt.<rank>) and exits 3 like abmlora does.
# With --resume auto it continues from that file. Finishes after $STUB_STEPS steps.
set -u
rank="${SLURM_PROCID:-0}"
ckpt="$STUB_DIR/ckpt.$rank"
log() { echo "stub[$rank]: $*" >>"$STUB_DIR/log.$rank"; }
[ "${1:-}" = train ] || { echo "stub: expected 'train', got $*" >&2; exit 2; }
resume=no
for a in "$@"; do [ "$a" = auto ] && resume=yes; done
step=0
if [ "$resume" = yes ] && [ -f "$ckpt" ]; then step="$(cat "$ckpt")"; fi
log "start at step $step (resume $resume, args: $*)"
stop=""
trap 'stop=USR1' USR1
trap 'stop=TERM' TERM
while [ "$step" -lt "${STUB_STEPS:-20}" ]; do
  sleep 1
  step=$((step + 1))
  if [ -n "$stop" ]; then
    echo "$step" >"$ckpt.tmp" && mv "$ckpt.tmp" "$ckpt"
    log "SIG$stop: checkpoint at step $step, exit 3"
    exit 3
  fi
done
echo "$step" >"$ckpt"
log "done at step $step"
exit 0
