#!/usr/bin/env bash
# `vistune submit` without a cluster: dry runs of all kinds, a site template,
# and one clear line with the right exit code for every bad input.
. "$(dirname "$0")/lib.sh"
cd "$VT_TEST_TMP"
rm -rf logs
cat > run.yaml <<'YAML'
train:
  steps: 10
model: {layers: 2}
slurm:
  partition: gpu
  time: "02:00:00"
YAML
for kind in train eval nightly; do
  "$VISTUNE" submit "$kind" run.yaml --dry-run > "$kind.sh" || fail "$kind dry run"
  bash -n "$kind.sh" || fail "$kind: not valid bash"
  grep -q "^#SBATCH --partition=gpu$" "$kind.sh" || fail "$kind: partition"
done
[ ! -e logs ] || fail "--dry-run wrote files"

# A site's own template (slurm.template), relative to the submission directory.
printf '#!/bin/bash\n#SBATCH --job-name={{job_name}}\n#SBATCH --time={{time}}\nsrun {{vistune}} train {{run_config}}\n' > site.sbatch
printf 'slurm:\n  template: site.sbatch\n  job_name: mine\n' > site.yaml
out=$("$VISTUNE" submit train site.yaml --dry-run)
[ "$(printf '%s\n' "$out" | sed -n 2p)" = "#SBATCH --job-name=mine" ] || fail "site template: $out"
printf '#!/bin/bash\n{{nope}}\n' > bad.sbatch
printf 'slurm:\n  template: bad.sbatch\n' > bad-tmpl.yaml
expect_fail 1 "bad.sbatch:2: unknown placeholder '\{\{nope\}\}'" -- "$VISTUNE" submit train bad-tmpl.yaml --dry-run
printf 'slurm:\n  template: missing.sbatch\n' > missing-tmpl.yaml
expect_fail 1 "slurm.template: .*missing.sbatch" -- "$VISTUNE" submit train missing-tmpl.yaml --dry-run

expect_fail 2 "expected a job kind" -- "$VISTUNE" submit
expect_fail 2 "expected a job kind" -- "$VISTUNE" submit train
expect_fail 2 "unknown job kind 'serve'" -- "$VISTUNE" submit serve run.yaml
expect_fail 2 "--after 'x1': expected a job id" -- "$VISTUNE" submit eval run.yaml --after x1
expect_fail 1 "nope.yaml" -- "$VISTUNE" submit train nope.yaml --dry-run
printf 'slurm:\n  time: "10"\n  partiton: gpu\n' > typo.yaml
expect_fail 1 "typo.yaml:3: unknown key 'slurm.partiton'" -- "$VISTUNE" submit train typo.yaml --dry-run
expect_fail 1 "slurm.time: '2h' is not a Slurm time" -- "$VISTUNE" submit train run.yaml --dry-run --set slurm.time=2h
expect_fail 1 "unknown key 'slurm.gpus'" -- "$VISTUNE" submit train run.yaml --dry-run --set slurm.gpus=2
printf 'slurm: [1, 2]\n' > list.yaml
expect_fail 1 "list.yaml" -- "$VISTUNE" submit train list.yaml --dry-run
# Without Slurm on PATH a real submission says what is missing.
expect_fail 1 "sbatch not found on PATH" -- env PATH=/nonexistent "$VISTUNE" submit train run.yaml
echo "submit: dry runs and bad inputs checked"
