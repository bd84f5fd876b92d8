#!/usr/bin/env bash
# `vistune shift` end to end: the listing, image and text forms, the contact
# sheet, determinism through files, and one clear line + exit code for each
# bad input.
. "$(dirname "$0")/lib.sh"
d=$VT_TEST_TMP/cli
rm -rf "$d" && mkdir -p "$d"

list=$("$VISTUNE" shift --list)
n=$(printf '%s\n' "$list" | grep -Ec '^[a-z_]+ +[a-z]+ +(image|text|joint) ')
[ "$n" -ge 30 ] || fail "--list shows $n shifts, expected >= 30"
# No pipes into head/grep -q here: the listing is > 4 KiB, so printf writes it
# twice, and under pipefail a reader that has already exited fails it (SIGPIPE).
header=${list%%$'\n'*}
[[ "$header" =~ ^shift\ catalog\ version\ [0-9]+:\ $n\ shifts\ x\ 5\ severities ]] || fail "--list header: $header"
grep -Eq '^gaussian_noise +noise +image +sigma=\.08/\.12/\.18/\.26/\.38' <<< "$list" \
  || fail "--list lacks gaussian_noise's parameters"

# image form: scene in, PNG out; same seed -> same bytes, other seed -> other bytes
"$VISTUNE" shift gaussian_noise --severity 3 --in scene --size 64 --out "$d/a.png" --seed 5
"$VISTUNE" shift gaussian_noise --severity 3 --in scene --size 64 --out "$d/b.png" --seed 5
"$VISTUNE" shift gaussian_noise --severity 3 --in scene --size 64 --out "$d/c.png" --seed 6
cmp -s "$d/a.png" "$d/b.png" || fail "same seed gave different files"
cmp -s "$d/a.png" "$d/c.png" && fail "different seeds gave the same file"
head -c 8 "$d/a.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" || fail "output is not a PNG"
# a real file as input, fitted to model resolution
"$VISTUNE" shift fog --severity 2 --in "$d/a.png" --size 32 --out "$d/fog.png"
[ -s "$d/fog.png" ] || fail "no fog output"

# text form prints the result; protected tokens survive; item ids are honoured
t='<image> What is the man holding in 2 hands? A. phone B. "a red cup"'
o1=$("$VISTUNE" shift keyboard --severity 5 --text "$t" --item coco/1)
o2=$("$VISTUNE" shift keyboard --severity 5 --text "$t" --item coco/1)
[ "$o1" = "$o2" ] || fail "text form not deterministic"
[ "$o1" != "$t" ] || fail "keyboard s5 left the text unchanged"
for tok in '<image>' ' 2 ' 'A.' 'B.' '"a red cup"'; do
  case "$o1" in *"$tok"*) ;; *) fail "lost '$tok': $o1" ;; esac
done
# a joint shift takes both forms at once
o=$("$VISTUNE" shift joint_noise_keyboard --severity 2 --in scene --size 32 --out "$d/j.png" --text "$t")
[ -s "$d/j.png" ] && [ -n "$o" ] || fail "joint shift did not produce both outputs"

# contact sheet
"$VISTUNE" shift --sheet "$d/sheet.png" --tile 16 --severities 1,5
[ -s "$d/sheet.png" ] || fail "no contact sheet"

# bad inputs: one line each, exit 2 for usage, 1 for failures
expect_fail 2 "unknown shift 'gausian_noise' \(did you mean gaussian_noise" -- "$VISTUNE" shift gausian_noise --severity 1 --text x
expect_fail 2 "--severity '9': expected 1\.\.5" -- "$VISTUNE" shift fog --severity 9 --in scene --out "$d/x.png"
expect_fail 2 "fog: --severity 1\.\.5 is required" -- "$VISTUNE" shift fog --in scene --out "$d/x.png"
expect_fail 2 "fog changes images only" -- "$VISTUNE" shift fog --severity 1 --text hello
expect_fail 2 "keyboard changes instructions only" -- "$VISTUNE" shift keyboard --severity 1 --in scene --out "$d/x.png"
expect_fail 2 "--in and --out go together" -- "$VISTUNE" shift fog --severity 1 --in scene
expect_fail 2 "expected one shift NAME" -- "$VISTUNE" shift
expect_fail 1 "missing\.png" -- "$VISTUNE" shift fog --severity 1 --in "$d/missing.png" --out "$d/x.png"
printf 'not an image' > "$d/junk.png"
expect_fail 1 "junk\.png" -- "$VISTUNE" shift fog --severity 1 --in "$d/junk.png" --out "$d/x.png"
expect_fail 1 "wordnet-base" -- "$VISTUNE" shift synonym_replace --severity 1 --text "a nice picture" --wordnet "$d/nowhere"
[ ! -e "$d/x.png" ] || fail "a failed run left an output file"
echo "shift cli: $n shifts listed, all forms checked"
