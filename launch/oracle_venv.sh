#!/usr/bin/env bash
# Creates the Python venv used ONLY by the test oracles in tests/ref/ (the product never
# needs Python). It sees Debian's python3-torch 1.13 / python3-numpy through
# --system-site-packages and adds Hugging Face transformers 4.36.2 + peft 0.7.1.
# Everything is installed with --no-deps, so pip can never pull a new torch; each
# dependency is installed only when the system site-packages cannot import it.
# Idempotent: does nothing when `VENV/bin/python -c 'import transformers, peft'` works.
#
# Usage: launch/oracle_venv.sh [VENV_DIR]      (default build/oracle-venv)
set -euo pipefail

VENV="${1:-build/oracle-venv}"
PY=/usr/bin/python3

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import transformers, peft' 2>/dev/null; then
  echo "oracle_venv: $VENV already has transformers and peft; nothing to do"
  exit 0
fi

"$PY" -c 'import torch, numpy' 2>/dev/null || {
  echo "oracle_venv: $PY cannot import torch/numpy; run launch/setup.sh first (python3-torch python3-numpy python3-venv)" >&2
  exit 1
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "oracle_venv: creating $VENV ($PY -m venv --system-site-packages)"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv --system-site-packages "$VENV"
fi
VPY="$VENV/bin/python"

# module-to-import  pip-requirement   (pinned to versions known to work with transformers 4.36.2)
DEPS=(
  "huggingface_hub huggingface_hub==0.20.3"
  "tokenizers tokenizers==0.15.2"
  "safetensors safetensors==0.4.2"
  "regex regex==2023.12.25"
  "yaml pyyaml==6.0.1"
  "requests requests==2.31.0"
  "urllib3 urllib3==1.26.18"
  "idna idna==3.6"
  "certifi certifi==2023.11.17"
  "charset_normalizer charset_normalizer==3.3.2"
  "tqdm tqdm==4.66.1"
  "packaging packaging==23.2"
  "filelock filelock==3.13.1"
  "fsspec fsspec==2023.12.2"
  "typing_extensions typing_extensions==4.9.0"
  "psutil psutil==5.9.7"
  "accelerate accelerate==0.25.0"
)
want=()
for d in "${DEPS[@]}"; do
  mod="${d%% *}"; req="${d#* }"
  if "$VPY" -c "import $mod" 2>/dev/null; then
    echo "oracle_venv: $mod already importable (system site-packages); skipping $req"
  else
    want+=("$req")
  fi
done
want+=("transformers==4.36.2" "peft==0.7.1")

echo "oracle_venv: pip install --no-deps ${want[*]}"
"$VPY" -m pip install --quiet --no-deps "${want[@]}"

tv="$("$VPY" -c 'import torch; print(torch.__version__)')"
case "$tv" in
  1.13.*) echo "oracle_venv: torch in venv is still $tv (Debian's)";;
  *) echo "oracle_venv: ERROR torch in venv is $tv, expected Debian's 1.13.x" >&2; exit 1;;
esac
"$VPY" -c 'import transformers, peft, accelerate; print("oracle_venv: ok: transformers", transformers.__version__, "peft", peft.__version__, "accelerate", accelerate.__version__)'
