#!/usr/bin/env bash
# vistune serve: key generation (secret key private), usage and load errors
# as one line each; the service itself is covered by unit.serve.
. "$(dirname "$0")/lib.sh"
d=$VT_TEST_TMP/serve
rm -rf "$d" && mkdir -p "$d"
"$VISTUNE" serve --keygen "$d/srv"
[ "$(stat -c %a "$d/srv.key")" = 600 ] || fail "secret key is not mode 600"
[ "$(wc -c < "$d/srv.pub")" = 41 ] || fail "public key is not 40 z85 characters"
cmp -s "$d/srv.key" "$d/srv.pub" && fail "secret and public key are equal"
expect_fail 2 'vistune serve: expected CHECKPOINT and --bind' -- "$VISTUNE" serve "$d"
expect_fail 2 'vistune serve: --max-batch expects an integer >= 1' -- "$VISTUNE" serve "$d" --bind tcp://127.0.0.1:0 --max-batch 0
expect_fail 1 "vistune serve: .*$d/none/config.json" -- "$VISTUNE" serve "$d/none" --bind 'tcp://127.0.0.1:*'
expect_fail 2 'vistune serve: --curve-clients needs --curve-secret' -- "$VISTUNE" serve "$d" --bind 'tcp://127.0.0.1:*' --curve-clients "$d/srv.pub"
echo ok
