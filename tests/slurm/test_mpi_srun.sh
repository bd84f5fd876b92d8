#!/usr/bin/env bash
# A 2-task batch job runs the project's MPI program (vistune mpi-check) with
# srun --mpi=pmix: ranks come from MPI and match SLURM_PROCID, allreduce works.
. "$(dirname "$0")/lib.sh"
need_cluster
out=$VT_TEST_TMP/mpi.out
rm -f "$out"
sbatch --wait -J vt-mpi -n 2 -t 1 -o "$out" --wrap "srun --mpi=pmix '$VISTUNE' mpi-check --expect-ranks 2" ||
  fail "job failed: $(cat "$out" 2>/dev/null)"
cat "$out"
grep -q "^mpi-check: 2 ranks on .*, allreduce ok" "$out" || fail "no allreduce line"
grep -q "^rank 0/2 local 0/2 .* slurm_procid 0 " "$out" || fail "rank 0 line"
grep -q "^rank 1/2 local 1/2 .* slurm_procid 1 " "$out" || fail "rank 1 line"
! grep -q "warning" "$out" || fail "launch warning"
