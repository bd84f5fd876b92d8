#!/usr/bin/env bash
# `vistune tokenize`: output format, special-token flag, round-trip check and
# one clear error line for bad tokenizers and bad input lines.
. "$(dirname "$0")/lib.sh"

out=$("$VISTUNE" tokenize --tokenizer builtin:bytes --text 'hi<|im_end|>')
[ "$out" = "[104,105,60,124,105,109,95,101,110,100,124,62]" ] || fail "plain bytes: $out"
out=$("$VISTUNE" tokenize --tokenizer builtin:bytes --special --text 'hi<|im_end|>')
[ "$out" = "[104,105,260]" ] || fail "special: $out"

printf '"a\\nb"\n"\\u00e9\\ud83e\\udd17"\n' > "$VT_TEST_TMP/ok.jsonl"
out=$("$VISTUNE" tokenize --tokenizer builtin:bytes --roundtrip --input "$VT_TEST_TMP/ok.jsonl")
[ "$out" = $'[97,10,98]\n[195,169,240,159,164,151]' ] || fail "jsonl: $out"

expect_fail 2 "--tokenizer is required" -- "$VISTUNE" tokenize --text x
expect_fail 1 "missing/tokenizer.json" -- "$VISTUNE" tokenize --tokenizer "$VT_TEST_TMP/missing/tokenizer.json" --text x
printf '{"model": {"type": "Unigram"}}' > "$VT_TEST_TMP/unigram.json"
expect_fail 1 "unigram.json: model.type: unsupported 'Unigram'" -- \
  "$VISTUNE" tokenize --tokenizer "$VT_TEST_TMP/unigram.json" --text x
printf '"fine"\n[1, 2]\n' > "$VT_TEST_TMP/bad.jsonl"
expect_fail 1 "bad.jsonl:2: not a JSON string" -- \
  "$VISTUNE" tokenize --tokenizer builtin:bytes --input "$VT_TEST_TMP/bad.jsonl"
echo "tokenize: ok"
