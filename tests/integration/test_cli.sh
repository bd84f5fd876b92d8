#!/usr/bin/env bash
# The command line itself: --help/--version, every subcommand's --help, and
# one clear line + non-zero exit for bad usage.
. "$(dirname "$0")/lib.sh"

"$VISTUNE" --help | grep -q "^usage: vistune <command>" || fail "--help has no usage line"
"$VISTUNE" --version | grep -Eq "^vistune [0-9]+\.[0-9]+\.[0-9]+$" || fail "--version format"
"$VISTUNE" --version | grep -Eq "^backends: cpu \(OpenBLAS\)" || fail "--version lists no backends"

expect_fail 2 "unknown command 'frobnicate'" -- "$VISTUNE" frobnicate
rc=0; "$VISTUNE" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "no arguments exited $rc, expected 2"

# Every listed subcommand answers --help on stdout with exit 0, and rejects an
# unknown option with one line and exit 2.
commands=$("$VISTUNE" --help | awk '/^commands:/{on=1; next} on && NF {print $1}')
for c in $commands; do
  out=$("$VISTUNE" "$c" --help) || fail "vistune $c --help exited non-zero"
  grep -q "usage: vistune $c" <<< "$out" || fail "vistune $c --help has no usage line"
  expect_fail 2 "vistune $c" -- "$VISTUNE" "$c" --no-such-option
done
echo "cli: $(echo "$commands" | wc -w) subcommands checked"
