#!/usr/bin/env bash
# Cross-checks the Python oracles against each other and against real transformers 4.36.2.
# Not part of the C++ test suite; run by hand after launch/oracle_venv.sh.
# Usage: tests/ref/selfcheck.sh [VENV_DIR default build/oracle-venv] [PEERS_DIR default ../shared/peers]
set -euo pipefail
cd "$(dirname "$0")/../.."
VPY="${1:-build/oracle-venv}/bin/python"
PEERS="${2:-../shared/peers}"
SYS=/usr/bin/python3
R=tests/ref
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

"$SYS" $R/safetensors_py.py
# max |a-b| of the logits of two llama_ref outputs, and a tolerance check
cmp_logits() {  # A B TOL LABEL
  "$SYS" - "$@" <<'EOF'
import sys; sys.path.insert(0, "tests/ref"); import safetensors_py as s, torch
a, b, tol, label = s.load(sys.argv[1]), s.load(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
assert torch.equal(a["input_ids"], b["input_ids"])
d = (a["logits"] - b["logits"]).abs().max().item()
print(f"{'ok  ' if d <= tol else 'FAIL'} {label}: max|diff| = {d:.3g} (tol {tol:g}, logits {tuple(a['logits'].shape)})")
sys.exit(0 if d <= tol else 1)
EOF
}
IDS=$("$SYS" -c "import random; r=random.Random(1); print(';'.join(','.join(str(r.randrange(97)) for _ in range(128)) for _ in range(3)))")

"$SYS" $R/make_tiny_model.py "$T/base" >/dev/null
"$SYS" $R/make_tiny_model.py "$T/tied" --tied >/dev/null
"$SYS" $R/make_tiny_model.py "$T/rs" --rope-scaling 2.0 >/dev/null
"$SYS" $R/make_tiny_model.py "$T/sh" --shards 2 >/dev/null
"$SYS" $R/make_tiny_model.py "$T/bf" --dtype BF16 >/dev/null
for case in "base F32 1e-5" "base BF16 0" "tied F32 1e-5" "tied BF16 0" "rs F32 1e-5" "rs BF16 0" \
            "sh F32 1e-5" "bf BF16 0"; do
  set -- $case
  "$SYS" $R/llama_ref.py "$T/$1" --ids "$IDS" --out "$T/ref.st" --dtype "$2"
  "$VPY" $R/llama_ref.py "$T/$1" --ids "$IDS" --out "$T/hf.st" --dtype "$2" --hf 2>/dev/null
  cmp_logits "$T/ref.st" "$T/hf.st" "$3" "hand-written vs HF: $1 $2" || fail=1
done
"$SYS" $R/llama_ref.py "$T/base" --ids "$IDS" --out "$T/a.st"
"$SYS" $R/llama_ref.py "$T/sh" --ids "$IDS" --out "$T/b.st"
cmp_logits "$T/a.st" "$T/b.st" 0 "2 shards vs 1 file" || fail=1

CK="$PEERS/stories260K.bin"
if [ -f "$CK" ]; then
  "$SYS" $R/hf_from_llama2c.py "$CK" "$T/s260" >/dev/null
  "$SYS" $R/llama2c_export_v1.py "$CK" "$T/s260_v1.bin" >/dev/null
  for dt in F32 BF16; do
    a=$("$SYS" $R/llama2c_ref.py "$CK" --steps 64 --dtype $dt)
    b=$("$SYS" $R/llama2c_ref.py "$T/s260_v1.bin" --steps 64 --dtype $dt)
    c=$("$VPY" $R/llama_ref.py "$T/s260" --greedy 64 --dtype $dt --hf 2>/dev/null)
    echo "stories260K $dt greedy: $a"
    if [ "$a" = "$b" ] && [ "$a" = "$c" ]; then echo "ok   Meta-layout v0 == v1 == HF (permuted) greedy ids, $dt"
    else echo "FAIL Meta-layout / v1 / HF greedy ids differ, $dt"; fail=1; fi
  done
else
  echo "skip stories260K checks: $CK not found"
fi
for u in "" --untied; do
  "$SYS" $R/make_tiny_llama2c.py "$T/t.bin" $u >/dev/null
  "$SYS" $R/llama2c_export_v1.py "$T/t.bin" "$T/t1.bin" >/dev/null
  "$SYS" $R/hf_from_llama2c.py "$T/t.bin" "$T/thf" >/dev/null
  a=$("$SYS" $R/llama2c_ref.py "$T/t.bin" --steps 24)
  b=$("$SYS" $R/llama2c_ref.py "$T/t1.bin" --steps 24)
  c=$("$VPY" $R/llama_ref.py "$T/thf" --greedy 24 --hf 2>/dev/null)
  if [ "$a" = "$b" ] && [ "$a" = "$c" ]; then echo "ok   random llama2.c ${u:-tied}: v0 == v1 == HF greedy ids"
  else echo "FAIL random llama2.c ${u:-tied}: v0 / v1 / HF differ"; fail=1; fi
done
[ $fail = 0 ] && echo "selfcheck: all passed" || { echo "selfcheck: FAILED"; exit 1; }
