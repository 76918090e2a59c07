#!/usr/bin/env bash
# Makes the embedded default base model (models/default/) from scratch, with abmlora's own
# full-parameter mode, in one seeded command:
#
#   bash launch/make_default_model.sh                 # -> models/default/ (committed)
#   WIDTH=2 bash launch/make_default_model.sh         # -> models/default-w2/ (~4x params)
#
#   1. data: WordNet 3.0 glosses (Debian dict-wn; data/prepare_wordnet.sh), one gloss per
#      example, every 117th gloss held out for evaluation; Devil's Dictionary text (Debian
#      dict-devil; data/prepare_devil.sh) only for the tokenizer, so the fine-tuning set
#      stays unseen by the base model
#   2. a 2048-piece SentencePiece BPE tokenizer on WordNet (train part) + Devil's Dictionary
#   3. init-model (seeded): hidden 256*WIDTH, intermediate 688*WIDTH, 6 layers, 8 query
#      heads, 4 KV heads, vocab 2048, tied head, 256 positions
#   4. pretrain all weights on RANKS ranks (1 thread each): packed 256-token rows, global
#      batch 16 rows, AdamW, cosine schedule; eval on the held-out glosses
#   5. OUT/: config.json, model.safetensors (fp32), tokenizer.model, RECIPE.md (command,
#      seed, data, losses, wall time), pretrain_loss.tsv (the loss curve)
#
# Settings (environment): SEED (0), WIDTH (1), STEPS (500), LR (2e-3), RANKS (2),
# OUT (models/default, or models/default-wWIDTH), WORK (runs/make-default-model-wWIDTH),
# ABMLORA (binary; default: install packages, build, use build/abmlora), FINISH_ONLY=1 (redo
# only step 5 from a finished WORK), CONTINUE=1 (an interrupted run: keep WORK's steps 1-3
# and resume pretraining from its last checkpoint; the wall time then counts this call only).
# Same seed, same settings, same packages -> the same data, tokenizer, init and data order;
# the weights agree up to floating-point reduction order (thread/BLAS dependent).
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${SEED:-0}
WIDTH=${WIDTH:-1}
STEPS=${STEPS:-500}
LR=${LR:-2e-3}
RANKS=${RANKS:-2}
if [ "$WIDTH" = 1 ]; then OUT=${OUT:-models/default}; else OUT=${OUT:-models/default-w$WIDTH}; fi
WORK=${WORK:-runs/make-default-model-w$WIDTH}
HIDDEN=$((256 * WIDTH)); INTER=$((688 * WIDTH)); LAYERS=6; HEADS=8; KV=4; VOCAB=2048
MAXLEN=256; BATCH=16; MICRO=8; WARMUP=30; HELDOUT=1000

t_all=$(date +%s)
source launch/binary.sh
ABM=$ABMLORA
echo "make_default_model: seed $SEED, width $WIDTH, $STEPS steps on $RANKS ranks -> $OUT"
if [ "${FINISH_ONLY:-0}" = 1 ]; then
  # Only step 5, on WORK's finished steps 1-4 (e.g. to re-evaluate); keeps their times.
  [ -f "$WORK/timing" ] && [ -f "$WORK/pretrain/model/model.safetensors" ] || {
    echo "make_default_model: FINISH_ONLY=1 needs a finished $WORK" >&2; exit 2; }
  read -r t_all t0 t1 < "$WORK/timing"
  t_finish=$(date +%s)
else  # steps 1-4
if [ "${CONTINUE:-0}" = 1 ] && [ -f "$WORK/init/model.safetensors" ]; then
  # An interrupted run: steps 1-3 are done; step 4 resumes from its last checkpoint.
  echo "make_default_model: continuing $WORK (pretraining resumes from its last checkpoint)"
else
rm -rf "$WORK"
mkdir -p "$WORK"

# 1. Data.
HELDOUT=$HELDOUT bash data/prepare_wordnet.sh "$WORK/data"
bash data/prepare_devil.sh "$WORK/data"

# 2. Tokenizer (deterministic: spm_train BPE on one thread).
cat "$WORK/data/wordnet_train.txt" "$WORK/data/devil.txt" > "$WORK/data/tokenizer_text.txt"
$ABM tokenizer --train "$WORK/data/tokenizer_text.txt" --out "$WORK/init" --vocab $VOCAB

# 3. Seeded random init.
$ABM init-model --out "$WORK/init" --hidden $HIDDEN --intermediate $INTER --layers $LAYERS \
  --heads $HEADS --kv-heads $KV --vocab $VOCAB --max-positions $MAXLEN --tie --seed "$SEED"
fi  # CONTINUE

# 4. Pretrain all weights.
t0=$(date +%s)
launch/run -n "$RANKS" -- pretrain --model "$WORK/init" --data "$WORK/data/wordnet_train.txt" \
  --eval-data "$WORK/data/wordnet_heldout.txt" --out "$WORK/pretrain" --pack \
  --max-length $MAXLEN --truncate --global-batch $BATCH --micro-batch $MICRO --steps "$STEPS" \
  --lr "$LR" --warmup $WARMUP --schedule cosine --min-lr-ratio 0.1 --weight-decay 0.1 \
  --clip 1 --seed "$SEED" --eval-every $((STEPS / 3)) --log-every 10 \
  --checkpoint-every 25 --keep-checkpoints 2 --resume auto 2>&1 | tee -a "$WORK/pretrain.log"
t1=$(date +%s)
echo "$t_all $t0 $t1" > "$WORK/timing"
t_finish=$t1
fi  # FINISH_ONLY

# 5. Evaluate (held-out WordNet, trained vs the random init) and write OUT.
eval_loss() {  # MODEL DATA -> "loss perplexity"
  launch/run -n "$RANKS" -- eval --model "$1" --data "$2" --max-length $MAXLEN --truncate \
    2>&1 | sed -n 's/^eval: loss \([0-9.]*\) perplexity \([0-9.]*\).*/\1 \2/p'
}
read -r ev_loss ev_ppl <<< "$(eval_loss "$WORK/pretrain/model" "$WORK/data/wordnet_heldout.txt")"
read -r ev0_loss ev0_ppl <<< "$(eval_loss "$WORK/init" "$WORK/data/wordnet_heldout.txt")"
read -r dv_loss dv_ppl <<< "$(eval_loss "$WORK/pretrain/model" "$WORK/data/devil.txt")"
read -r dv0_loss dv0_ppl <<< "$(eval_loss "$WORK/init" "$WORK/data/devil.txt")"
# Train loss: token-weighted mean of the last 10 steps' batch losses; and a compact curve.
field() { printf 'match($0, /"%s":[-0-9.e+]+/) { %s = substr($0, RSTART + %d, RLENGTH - %d) + 0 }\n' \
  "$1" "$2" $((${#1} + 3)) $((${#1} + 3)); }
curve_awk="$(field step s; field loss l; field targets t; field lr r; field tokens_per_s v; field eval_loss e)"
train_loss=$(awk -v n="$STEPS" "{ e = \"\" } $curve_awk"' s > n - 10 { sl += l * t; st += t }
  END { printf "%.4f", sl / st }' "$WORK/pretrain/metrics.jsonl")
glosses=$(grep -c . "$WORK/data/wordnet_train.txt")
heldout=$(grep -c . "$WORK/data/wordnet_heldout.txt")
rows=$(sed -n 's/^data: .* in \([0-9]* rows, [0-9]* tokens\),.*/\1/p' "$WORK/pretrain.log" | head -1)
params=$($ABM inspect "$WORK/pretrain/model" | sed -n 's/^ *parameters \([0-9]*\).*/\1/p')
pkg_wn=$(dpkg-query -W -f='${Version}' dict-wn 2>/dev/null || echo "?")
pkg_devil=$(dpkg-query -W -f='${Version}' dict-devil 2>/dev/null || echo "?")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")

rm -rf "$OUT"
mkdir -p "$OUT"
cp "$WORK/pretrain/model/config.json" "$WORK/pretrain/model/model.safetensors" \
   "$WORK/pretrain/model/tokenizer.model" "$OUT/"
awk "BEGIN { print \"step\\tloss\\tlr\\ttokens_per_s\\teval_loss\" } { e = \"\" } $curve_awk"'
  { printf "%d\t%.4f\t%.3g\t%.0f\t%s\n", s, l, r, v, (e == "" ? "" : sprintf("%.4f", e)) }' \
  "$WORK/pretrain/metrics.jsonl" > "$OUT/pretrain_loss.tsv"
t_end=$(date +%s)
cat > "$OUT/RECIPE.md" <<EOF
# $(basename "$OUT") — recipe and measurements

Made by \`SEED=$SEED WIDTH=$WIDTH STEPS=$STEPS LR=$LR RANKS=$RANKS bash launch/make_default_model.sh\`
(abmlora commit $commit, $(date -u +%Y-%m-%d), $(nproc) cores).

- Pretraining text: WordNet 3.0 glosses, Debian \`dict-wn\` $pkg_wn
  (\`/usr/share/dictd/wn.dict.dz\`), by \`data/prepare_wordnet.sh\`: $glosses training glosses,
  $heldout held out (every 117th); packed into $rows.
- Tokenizer: SentencePiece BPE, $VOCAB pieces (byte fallback), trained on the training glosses
  plus The Devil's Dictionary's definitions (Debian \`dict-devil\` $pkg_devil, \`data/prepare_devil.sh\`).
- Model: LLaMA, hidden $HIDDEN, intermediate $INTER, $LAYERS layers, $HEADS heads / $KV KV heads,
  vocab $VOCAB, tied head, $MAXLEN positions; $params parameters, stored fp32; init seed $SEED.
- Pretraining: \`abmlora pretrain\` (all weights) on $RANKS ranks x 1 thread, $STEPS steps of
  $BATCH packed $MAXLEN-token rows, AdamW lr $LR (warmup $WARMUP, cosine to 10%), weight decay 0.1,
  clip 1, data-order seed $SEED. Per-step loss, lr, tokens/s and held-out evals: \`pretrain_loss.tsv\`.
- Pretraining wall time: $((t1 - t0)) s; whole recipe: $((t1 - t_all + t_end - t_finish)) s
  (wall clock, so it includes whatever else the machine was running).

| | loss (nats/token) | perplexity |
|---|---|---|
| train, last 10 steps | $train_loss | |
| held-out WordNet glosses, this model | $ev_loss | $ev_ppl |
| held-out WordNet glosses, the random init | $ev0_loss | $ev0_ppl |
| Devil's Dictionary definitions (never trained on), this model | $dv_loss | $dv_ppl |
| Devil's Dictionary definitions, the random init | $dv0_loss | $dv0_ppl |
EOF
cat "$OUT/RECIPE.md"
du -sh "$OUT"
