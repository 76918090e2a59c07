#!/usr/bin/env bash
# Builds a second fine-tuning set, from a different public-domain source than the default's
# Devil's Dictionary: the Jargon File 4.4.7 (2003, "in the public domain, to be freely
# used, shared, and modified"; Debian package dict-jargon). One alpaca JSONL record per
# entry — instruction "Define WORD.", output the entry's first definition paragraph, with
# the leading [usage tag] dropped, {cross-references} unbraced and typographic quotes
# made ASCII — in the default's format, so an init tuned on one set can be checked on the
# other (issue 18).
#
# Usage: data/prepare_jargon.sh OUT_DIR      -> OUT_DIR/jargon.jsonl
set -euo pipefail
out="${1:?usage: data/prepare_jargon.sh OUT_DIR}"
src=/usr/share/dictd/jargon.dict.dz
[ -f "$src" ] || { echo "prepare_jargon: $src missing (apt-get install dict-jargon)" >&2; exit 2; }
mkdir -p "$out"
# Entries: a headword at column 0, a pronunciation/part-of-speech line indented by one
# space, then paragraphs indented by four; the first such paragraph is the definition.
# Backslashes are escaped for JSON here (awk's gsub treats them differently per awk).
zcat "$src" | sed -e "s/[‘’]/'/g" -e 's/[“”]/"/g' -e 's/—/--/g' -e 's/·//g' -e 's/\\/\\\\/g' |
  awk -v jsonl="$out/jargon.jsonl.tmp" '
  function flush() {
    if (word != "" && word !~ /:$/ && body != "") {   # "...available from:": the header
      gsub(/[ \t]+/, " ", body); sub(/^ /, "", body); sub(/ $/, "", body)
      if (substr(body, 1, 1) == "[" && (p = index(body, "]")) > 0) {  # "[Usenet] ..." usage tag
        body = substr(body, p + 1); sub(/^[ \t]+/, "", body)
      }
      gsub(/[{}]/, "", body)
      if (length(body) >= 8 && length(body) <= 600) {
        w = tolower(word)
        gsub(/"/, "\\\"", body); gsub(/"/, "\\\"", w)
        printf "{\"instruction\": \"Define \\\"%s\\\".\", \"input\": \"\", \"output\": \"%s\"}\n", w, body > jsonl
        n++
      }
    }
    word = ""; body = ""; state = 0
  }
  BEGIN { n = 0 }
  /^00-database/ { flush(); skip = 1; next }
  /^[^ \t]/ && !/^$/ { flush(); skip = 0; word = $0; state = 1; next }   # headword
  skip || word == "" { next }
  /^$/ {                                                                 # paragraph end
    if (state != 2) next
    t = body; gsub(/[ \t]/, "", t)
    # A paragraph that is only a usage tag ("[very common]"): the definition comes next.
    if (substr(t, 1, 1) == "[" && index(t, "]") == length(t)) { body = ""; state = 1 } else state = 3
    next
  }
  /^    / { if (state == 1 || state == 2) { body = body " " $0; state = 2 } ; next }
  END {
    flush()
    if (n < 1000) { print "prepare_jargon: only " n " entries parsed" > "/dev/stderr"; exit 2 }
  }'
mv "$out/jargon.jsonl.tmp" "$out/jargon.jsonl"
echo "prepare_jargon: $(wc -l < "$out/jargon.jsonl") entries -> $out/jargon.jsonl"
