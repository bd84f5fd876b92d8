#!/usr/bin/env bash
# synth -> ingest -> inspect end to end, checked with an independent decoder
# (PIL in Debian's python3): synth determinism, exact lossless round trip,
# lossy within tolerance, JPEG/WebP inputs, output independent of the thread
# count, every bad input rejected with its reason and counted, and every
# fatal error leaving no store (nor temporary directory) behind.
source "$(dirname "$0")/lib.sh"
PY=${VT_TORCH_PYTHON:-/usr/bin/python3}
T=$VT_TEST_TMP
rm -rf "$T"/*

# --- synth determinism ---
"$VISTUNE" synth --out "$T/s1" --count 60 --seed 7 --size 48 >/dev/null
"$VISTUNE" synth --out "$T/s2" --count 60 --seed 7 --size 48 >/dev/null
"$VISTUNE" synth --out "$T/s3" --count 60 --seed 8 --size 48 >/dev/null
diff -r "$T/s1" "$T/s2" >/dev/null || fail "same seed gave different output"
cmp -s "$T/s1/data.json" "$T/s3/data.json" && fail "different seeds gave the same data.json"
[ "$(ls "$T/s1/images" | wc -l)" = 60 ] || fail "expected 60 images"
expect_fail 1 "already exists" -- "$VISTUNE" synth --out "$T/s1" --count 5 --seed 1
expect_fail 2 "--count" -- "$VISTUNE" synth --out "$T/x" --count zero --seed 1
expect_fail 2 "required" -- "$VISTUNE" synth --out "$T/x"
expect_fail 2 "bad option '--colour'" -- "$VISTUNE" synth --colour red
expect_fail 2 "--max-shapes '5'" -- "$VISTUNE" synth --out "$T/x" --count 5 --seed 1 --max-shapes 5
expect_fail 2 "unknown task 'colour'" -- "$VISTUNE" synth --out "$T/x" --count 5 --seed 1 --tasks count,colour
"$VISTUNE" synth --out "$T/s4" --count 40 --seed 7 --size 32 --tasks count --max-shapes 2 >/dev/null \
  || fail "synth --tasks count --max-shapes 2"
python3 - "$T/s4/data.json" <<'PY' || fail "synth --tasks count --max-shapes 2: wrong items"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d) == 40 and all(x["task"] == "count" and x["group"] == 2 for x in d)
assert {x["answer_raw"] for x in d} == {"1", "2"}
PY

# --- lossless round trip: pixels identical to the source PNGs (read by PIL) ---
"$VISTUNE" ingest --json "$T/s1/data.json" --images "$T/s1" --out "$T/db_ll" --size 48 \
  --lossless --threads 2 >/dev/null
"$VISTUNE" inspect "$T/db_ll" --index 5 --dump-image "$T/r5.png" > "$T/inspect.txt"
grep -q "records: 60 (input 60, rejected 0)" "$T/inspect.txt" || fail "inspect counts: $(cat "$T/inspect.txt")"
grep -q "schema_version: 1" "$T/inspect.txt" || fail "inspect: no schema version"
grep -q "id=shapes-000000005" "$T/inspect.txt" || fail "inspect: wrong record"
grep -q "^  \[user\] <image>" "$T/inspect.txt" || fail "inspect: no user turn"
"$PY" - "$T/s1/images/000000005.png" "$T/r5.png" <<'EOF' || fail "lossless pixels differ"
import sys
from PIL import Image
a = Image.open(sys.argv[1]).convert("RGB").tobytes()
b = Image.open(sys.argv[2]).convert("RGB").tobytes()
sys.exit(0 if a == b else 1)
EOF

# --- lossy, with JPEG and WebP sources written by PIL, resized 48 -> 32 ---
"$PY" - "$T/s1" <<'EOF'
import json, sys
from PIL import Image
d = sys.argv[1]
data = json.load(open(d + "/data.json"))
for i, e in enumerate(data[:20]):
    im = Image.open(d + "/" + e["image"]).convert("RGB")
    if i % 2 == 0:
        e["image"] = e["image"].replace(".png", ".jpg"); im.save(d + "/" + e["image"], quality=95)
    else:
        e["image"] = e["image"].replace(".png", ".webp"); im.save(d + "/" + e["image"], lossless=True)
json.dump(data[:20], open(d + "/mixed.json", "w"))
EOF
"$VISTUNE" ingest --json "$T/s1/mixed.json" --images "$T/s1" --out "$T/db_lossy" --size 32 \
  --quality 90 --threads 1 >/dev/null
for i in 2 3; do
  "$VISTUNE" inspect "$T/db_lossy" --index $i --dump-image "$T/l$i.png" >/dev/null
  src=$(printf '%s/s1/images/%09d.png' "$T" $i)
  "$PY" - "$src" "$T/l$i.png" <<'EOF' || fail "lossy record $i too far from PIL's own resize"
import sys
from PIL import Image
import numpy as np
ref = np.asarray(Image.open(sys.argv[1]).convert("RGB").resize((32, 32), Image.BILINEAR), dtype=float)
got = np.asarray(Image.open(sys.argv[2]).convert("RGB"), dtype=float)
mad = np.abs(ref - got).mean()
print("mean abs diff vs PIL bilinear resize: %.2f" % mad)
sys.exit(0 if mad < 6 else 1)
EOF
done

# --- same output for any thread count ---
"$VISTUNE" ingest --json "$T/s1/data.json" --images "$T/s1" --out "$T/db_t1" --size 32 --threads 1 \
  --val-fraction 0.25 >/dev/null
"$VISTUNE" ingest --json "$T/s1/data.json" --images "$T/s1" --out "$T/db_t3" --size 32 --threads 3 \
  --val-fraction 0.25 --commit-every 7 >/dev/null
h1=$(grep content_sha256 "$T/db_t1/manifest.json")
h3=$(grep content_sha256 "$T/db_t3/manifest.json")
[ "$h1" = "$h3" ] || fail "thread count changed the records: $h1 vs $h3"
grep -q '"val":' "$T/db_t1/manifest.json" || fail "no val count"

# --- bad inputs become rejects with reasons; counts add up ---
B=$T/bad
mkdir -p "$B/img"
cp "$T/s1/images/000000000.png" "$B/img/good.png"
: > "$B/img/empty.png"
head -c 300 "$T/s1/images/000000001.png" > "$B/img/trunc.png"
cp "$T/s1/images/000000002.png" "$B/img/corrupt.png"
printf 'XXXXXXXXXXXXXXXX' | dd of="$B/img/corrupt.png" bs=1 seek=60 conv=notrunc 2>/dev/null
printf 'GIF89a not an image' > "$B/img/fake.png"
"$PY" - "$B/img/bomb.png" <<'EOF'
import struct, sys, zlib
ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk)
EOF
conv() { printf '[{"from":"human","value":"%s"},{"from":"gpt","value":"%s"}]' "$1" "$2"; }
{
  printf '['
  printf '{"id":"ok","image":"img/good.png","conversations":%s},' "$(conv '<image>\nQ?' 'A')"
  printf '{"id":"missing","image":"img/nope.png","conversations":%s},' "$(conv '<image>\nQ?' 'A')"
  printf '{"id":"empty","image":"img/empty.png","conversations":%s},' "$(conv '<image>\nQ?' 'A')"
  printf '{"id":"trunc","image":"img/trunc.png","conversations":%s},' "$(conv '<image>\nQ?' 'A')"
  printf '{"id":"corrupt","image":"img/corrupt.png","conversations":%s},' "$(conv '<image>\nQ?' 'A')"
  printf '{"id":"fake","image":"img/fake.png","conversations":%s},' "$(conv '<image>\nQ?' 'A')"
  printf '{"id":"bomb","image":"img/bomb.png","conversations":%s},' "$(conv '<image>\nQ?' 'A')"
  printf '{"id":"utf8","image":"img/good.png","conversations":%s},' "$(conv "<image>\\nQ"$'\xff'"?" 'A')"
  printf '{"id":"notoken","image":"img/good.png","conversations":%s},' "$(conv 'Q?' 'A')"
  printf '{"id":"twotokens","image":"img/good.png","conversations":%s},' "$(conv '<image><image>\nQ?' 'A')"
  printf '{"id":"escape","image":"../etc/passwd","conversations":%s},' "$(conv '<image>\nQ?' 'A')"
  printf '{"id":"noimage","conversations":%s},' "$(conv '<image>\nQ?' 'A')"
  printf '{"id":"ok2","image":"img/good.png","conversations":%s}' "$(conv 'Q? <image>' 'A')"
  printf ']'
} > "$B/data.json"
"$VISTUNE" ingest --json "$B/data.json" --images "$B" --out "$T/db_bad" --size 32 > "$T/bad.txt"
grep -q "13 input, 2 accepted, 11 rejected" "$T/bad.txt" || fail "bad-input counts: $(cat "$T/bad.txt")"
R=$T/db_bad/rejects.jsonl
[ "$(wc -l < "$R")" = 11 ] || fail "rejects.jsonl should have 11 lines"
check_reject() { grep "\"id\":\"$1\"" "$R" | grep -q "\"reason\":\"$2\"" || fail "$1: expected reason $2 in: $(grep "\"id\":\"$1\"" "$R")"; }
check_reject missing missing_image
check_reject empty corrupt_image
check_reject trunc corrupt_image
check_reject corrupt corrupt_image
check_reject fake corrupt_image
check_reject bomb image_too_large
check_reject utf8 invalid_utf8
check_reject notoken no_image_token
check_reject twotokens image_token_count
check_reject escape bad_image_path
check_reject noimage no_image
grep '"id":"empty"' "$R" | grep -q "0 bytes" || fail "empty image detail"
grep '"id":"trunc"' "$R" | grep -q "truncated PNG" || fail "truncated image detail"
grep '"id":"bomb"' "$R" | grep -q "100000x100000" || fail "bomb detail"
"$PY" -c "
import json,sys; m=json.load(open('$T/db_bad/manifest.json'))
sys.exit(0 if (m['input_count'], m['count'], m['rejected']) == (13, 2, 11) else 1)" || fail "manifest counts"

# --- fatal errors: one line, exit 1, no store and no temporary directory ---
no_output() { [ ! -e "$1" ] || fail "$1 exists after a failure"; ls -d "$1".tmp.* 2>/dev/null && fail "temporary directory left for $1"; return 0; }
expect_fail 1 "strict.*|entry 1 \('id'=missing\): .*image file not found" -- \
  "$VISTUNE" ingest --json "$B/data.json" --images "$B" --out "$T/db_strict" --strict
no_output "$T/db_strict"
printf '[{"id": "a", "image": "x.png",\n "conversations": [}]' > "$T/broken.json"
expect_fail 1 "broken.json: malformed JSON at line 2, column" -- \
  "$VISTUNE" ingest --json "$T/broken.json" --images "$B" --out "$T/db_json"
no_output "$T/db_json"
expect_fail 1 "top level must be an array" -- bash -c "echo '{}' > '$T/obj.json'; '$VISTUNE' ingest --json '$T/obj.json' --images '$B' --out '$T/db_obj'"
no_output "$T/db_obj"
if [ "$(id -u)" = 0 ]; then unwritable=/proc/vt-db; else mkdir -p "$T/ro"; chmod 555 "$T/ro"; unwritable=$T/ro/db; fi
expect_fail 1 "vt-db|ro/db" -- "$VISTUNE" ingest --json "$T/s1/data.json" --images "$T/s1" --out "$unwritable"
expect_fail 1 "map full" -- "$VISTUNE" ingest --json "$T/s1/data.json" --images "$T/s1" --out "$T/db_full" \
  --size 256 --lossless --map-size 65536 --max-map-size 131072 --commit-every 5
no_output "$T/db_full"
# A full disk, simulated with a file-size limit: LMDB's write fails with EFBIG.
expect_fail 1 "file size limit|disk full|File too large" -- bash -c "trap '' XFSZ; ulimit -f 64; exec '$VISTUNE' ingest --json '$T/s1/data.json' --images '$T/s1' --out '$T/db_disk' --size 256 --lossless --commit-every 5"
no_output "$T/db_disk"
expect_fail 1 "images directory does not exist" -- "$VISTUNE" ingest --json "$B/data.json" --images "$T/nowhere" --out "$T/db_x"
expect_fail 1 "already exists" -- "$VISTUNE" ingest --json "$B/data.json" --images "$B" --out "$T/db_bad"
"$VISTUNE" ingest --json "$B/data.json" --images "$B" --out "$T/db_bad" --force --size 16 >/dev/null || fail "--force"

# --- bad command lines: one line, exit 2 ---
expect_fail 2 "--quality" -- "$VISTUNE" ingest --json a --images b --out c --quality 101
expect_fail 2 "exclusive" -- "$VISTUNE" ingest --json a --images b --out c --quality 50 --lossless
expect_fail 2 "pad or crop" -- "$VISTUNE" ingest --json a --images b --out c --resize stretch
expect_fail 2 "required" -- "$VISTUNE" ingest --json a
expect_fail 2 "val-fraction" -- "$VISTUNE" ingest --json a --images b --out c --val-fraction 2
expect_fail 2 "exactly one store" -- "$VISTUNE" inspect
expect_fail 2 "--index" -- "$VISTUNE" inspect "$T/db_ll" --index -1
expect_fail 1 "key 000000000060: index 60 is out of range" -- "$VISTUNE" inspect "$T/db_ll" --index 60
expect_fail 1 "no such store" -- "$VISTUNE" inspect "$T/nowhere"
echo "data pipeline: ok"
