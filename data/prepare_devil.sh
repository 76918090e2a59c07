#!/usr/bin/env bash
# Builds the fine-tuning set of the embedded default from Ambrose Bierce's "The Devil's
# Dictionary" (1911, public domain; Debian package dict-devil): one alpaca JSONL record
# per entry — instruction "Define WORD.", output the entry's first paragraph — plus a
# plain-text file of all definitions (for training a tokenizer).
#
# Usage: data/prepare_devil.sh OUT_DIR      -> OUT_DIR/devil.jsonl, OUT_DIR/devil.txt
set -euo pipefail
out="${1:?usage: data/prepare_devil.sh OUT_DIR}"
src=/usr/share/dictd/devil.dict.dz
[ -f "$src" ] || { echo "prepare_devil: $src missing (apt-get install dict-devil)" >&2; exit 2; }
mkdir -p "$out"
# Paragraph mode: an entry starts with "HEADWORD, pos.  definition"; indented paragraphs
# after it (verses, quotations) are skipped to keep records short.
zcat "$src" | awk -v jsonl="$out/devil.jsonl.tmp" -v txt="$out/devil.txt.tmp" '
  BEGIN { RS = ""; n = 0 }
  /^[A-Z][A-Z'"'"' .-]*, [a-z.]+/ {
    p = $0
    word = p; sub(/,.*/, "", word)
    body = p; sub(/^[^,]*, [a-z.]+[ ]+/, "", body)
    gsub(/[ \t\n]+/, " ", body); sub(/ $/, "", body)
    if (length(body) < 8) next
    w = tolower(word)
    gsub(/\\/, "\\\\", body); gsub(/"/, "\\\"", body)
    gsub(/\\/, "\\\\", w); gsub(/"/, "\\\"", w)
    printf "{\"instruction\": \"Define \\\"%s\\\".\", \"input\": \"\", \"output\": \"%s\"}\n", w, body > jsonl
    print body "\n" > txt   # blank line between entries: one example each
    n++
  }
  END { if (n < 100) { print "prepare_devil: only " n " entries parsed" > "/dev/stderr"; exit 2 } }'
mv "$out/devil.jsonl.tmp" "$out/devil.jsonl"
mv "$out/devil.txt.tmp" "$out/devil.txt"
echo "prepare_devil: $(wc -l < "$out/devil.jsonl") entries -> $out/devil.jsonl"
