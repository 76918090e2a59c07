# prepare_jargon: data/prepare_jargon.sh builds the second fine-tuning set (issue 18) from
# Debian's dict-jargon: at least 1000 records, every line a JSON object with the alpaca
# fields, no braces and no usage tags left (one source entry never closes its bracket) (label unit).
add_test(NAME prepare_jargon
         COMMAND bash -c "set -e; out=$(mktemp -d); trap 'rm -rf $out' EXIT; \
bash ${PROJECT_SOURCE_DIR}/data/prepare_jargon.sh $out; \
${Python3_EXECUTABLE} -c 'import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; \
assert len(rows) >= 1000, len(rows); \
assert all(set(r) == {\"instruction\", \"input\", \"output\"} and r[\"output\"] for r in rows); \
assert not any(\"{\" in r[\"output\"] for r in rows); \
assert sum(r[\"output\"].startswith(\"[\") for r in rows) <= 2; \
print(len(rows), \"records\")' $out/jargon.jsonl")
set_tests_properties(prepare_jargon PROPERTIES LABELS unit TIMEOUT 60)
