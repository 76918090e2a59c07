#!/usr/bin/env bash
# Builds the pretraining text of the embedded default from the WordNet 3.0 glosses
# (Princeton University; permissive WordNet license, notice in models/README.md; Debian
# package dict-wn): one line per synset gloss, "headword: definition; "example"; ...",
# with the dictd markup removed (sense numbers, part of speech, [syn: ...] and [ant: ...]
# lists, {cross-reference} braces, line wrapping). A gloss is listed under every lemma of
# its synset in the dictionary; it is kept once, under the synset's first lemma (the first
# name of its [syn: ...] list). Lines are separated by blank lines, so abmlora's .txt
# reader (one example per blank-line-separated paragraph) sees one example per gloss.
#
# Usage: data/prepare_wordnet.sh OUT_DIR     -> OUT_DIR/wordnet.txt (all glosses, file order)
#        HELDOUT=N (default 2000): also OUT_DIR/wordnet_train.txt and wordnet_heldout.txt,
#        every K-th gloss held out (K = total / N), for evaluation on text never trained on.
set -euo pipefail
out="${1:?usage: data/prepare_wordnet.sh OUT_DIR}"
heldout="${HELDOUT:-2000}"
src=/usr/share/dictd/wn.dict.dz
[ -f "$src" ] || { echo "prepare_wordnet: $src missing (apt-get install dict-wn)" >&2; exit 2; }
mkdir -p "$out"
# Entries: a headword line at column 0, then senses. A sense starts with exactly four spaces
# ("    n 1: ..." or "    2: ..."); deeper-indented lines continue it. The 00-database-*
# entries (license text, no senses) produce nothing.
zcat "$src" | LC_ALL=C awk -v txt="$out/wordnet.txt.tmp" '
  function flush(   s, syn, head) {
    if (sense == "") return
    s = sense; sense = ""
    gsub(/[ \t]+/, " ", s)
    syn = ""
    if (match(s, /\[syn: [^]]*\]/)) syn = substr(s, RSTART + 6, RLENGTH - 7)
    gsub(/ *\[(syn|ant|also): [^]]*\]/, "", s)
    gsub(/[{}]/, "", s); gsub(/`/, "'"'"'", s)
    sub(/^ +/, "", s); sub(/ +$/, "", s); sub(/;$/, "", s)
    if (length(s) < 3 || (s in seen)) return
    seen[s] = 1
    head = word
    if (syn != "" && match(syn, /^\{[^}]*\}/)) head = substr(syn, 2, RLENGTH - 2)
    print head ": " s "\n" > txt
    n++
  }
  /^[^ ]/ { flush(); word = $0; sub(/[ \t\r]+$/, "", word); insense = 0; next }
  /^    [^ ]/ {
    flush()
    line = $0
    if (sub(/^    ((n|v|adj|adv) )?[0-9]+: /, "", line)) { sense = line; insense = 1 }
    else insense = 0
    next
  }
  /^     / { if (insense) sense = sense " " $0; next }
  END {
    flush()
    if (n < 50000) { print "prepare_wordnet: only " n " glosses parsed" > "/dev/stderr"; exit 2 }
  }'
mv "$out/wordnet.txt.tmp" "$out/wordnet.txt"
n=$(grep -c . "$out/wordnet.txt")
if [ "$heldout" -gt 0 ]; then
  k=$(( n / heldout )); [ "$k" -ge 2 ] || k=2
  awk -v k="$k" -v tr="$out/wordnet_train.txt" -v ho="$out/wordnet_heldout.txt" '
    NF { i++; f = (i % k == 0) ? ho : tr; print $0 "\n" > f }' "$out/wordnet.txt"
  echo "prepare_wordnet: $n glosses -> $out/wordnet.txt ($(grep -c . "$out/wordnet_train.txt") train, $(grep -c . "$out/wordnet_heldout.txt") held out: every ${k}th)"
else
  echo "prepare_wordnet: $n glosses -> $out/wordnet.txt"
fi
