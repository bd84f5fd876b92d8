#!/usr/bin/env bash
# Dependencies with --kill-on-invalid-dep=yes: a job after a failed one is
# cancelled instead of pending forever (also through `vistune submit --after`);
# an afterany job still runs.
. "$(dirname "$0")/lib.sh"
need_cluster
cd "$VT_TEST_TMP"
rm -rf b.out c.out logs
a=$(sbatch --parsable -J vt-dep-a -t 1 -o /dev/null --wrap 'exit 1')
b=$(sbatch --parsable -J vt-dep-b -t 1 -o b.out --dependency=afterok:"$a" --kill-on-invalid-dep=yes --wrap 'echo ran')
c=$(sbatch --parsable -J vt-dep-c -t 1 -o c.out --dependency=afterany:"$a" --kill-on-invalid-dep=yes --wrap 'echo ran')
printf 'slurm:\n  time: "1"\n  eval: {array: 2}\n' > run.yaml
d=$("$VISTUNE" submit eval run.yaml --after "$a") || fail "submit --after"
for j in "$a" "$b" "$c" "$d"; do wait_done "$j" 60; done
[ "$(job_field "$a" JobState)" = FAILED ] || fail "a: $(job_field "$a" JobState)"
[ "$(job_field "$b" JobState)" = CANCELLED ] || fail "b: $(job_field "$b" JobState)"
[ "$(job_field "$c" JobState)" = COMPLETED ] || fail "c: $(job_field "$c" JobState)"
[ "$(job_field "$d" JobState)" = CANCELLED ] || fail "d: $(job_field "$d" JobState)"
[ ! -e b.out ] || fail "b ran"
[ -z "$(ls logs/vistune-eval-"$d"_* 2>/dev/null)" ] || fail "d ran"
grep -qx ran c.out || fail "c did not run"
