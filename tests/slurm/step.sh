#!/usr/bin/env bash
# Test stand-in for the vistune subcommands that the Slurm templates launch
# but that are not on main yet (train, eval, report). It follows only their
# process contract, so the templates' own logic (array indices, USR1 trap and
# forwarding, exit 3 -> requeue, nightly resubmission) runs for real:
#   train RUN --resume auto ...  waits for SIGUSR1, writes <run dir>/ckpt and
#                                exits 3; started again with that checkpoint,
#                                exits 0 (the "finished from checkpoint" path)
#   eval RUN --shard I --num-shards N ...   appends "shard I of N" to <run dir>/shards.txt
#   sched RUN --checkpoint latest --results DIR ...   records its arguments in DIR/args
#   report --results DIR --out DIR [--previous DIR] --gate   records its arguments in
#                                OUT/args and exits with the number in
#                                <cwd>/gate.<job id> (0 if absent)
set -uo pipefail
mode=$1
run=${2:-}
dir=$(dirname -- "$run")
rank=${SLURM_PROCID:-0}
case "$mode" in
  train)
    shift 2
    if [ -e "$dir/ckpt" ]; then
      echo "step rank $rank: resumed from $(cat "$dir/ckpt"), finishing"
      exit 0
    fi
    got=0
    trap 'got=1' USR1
    for _ in $(seq 1 1200); do
      [ "$got" = 1 ] && break
      sleep 0.1
    done
    [ "$got" = 1 ] || { echo "step rank $rank: no USR1 within 120 s" >&2; exit 1; }
    [ "$rank" = 0 ] && echo "restart ${SLURM_RESTART_COUNT:-0}" > "$dir/ckpt"
    echo "step rank $rank: USR1, checkpoint written, exit 3"
    exit 3 ;;
  eval)
    shift 2
    shard= n=
    while [ $# -gt 0 ]; do
      case "$1" in --shard) shard=$2; shift ;; --num-shards) n=$2; shift ;; esac
      shift
    done
    echo "shard $shard of $n job ${SLURM_JOB_ID:-} rank $rank" >> "$dir/shards.txt" ;;
  sched)
    shift 2
    args="$*" out=
    while [ $# -gt 0 ]; do [ "$1" = --results ] && out=$2; shift; done
    mkdir -p "$out" && echo "sched $run $args" > "$out/args" ;;
  report)
    shift
    args="$*" out=
    while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
    mkdir -p "$out" && echo "$args" > "$out/args"
    rc=0
    [ -s "gate.${SLURM_JOB_ID:-}" ] && rc=$(cat "gate.$SLURM_JOB_ID")
    echo "report: gate $rc"
    exit "$rc" ;;
  *) echo "step.sh: unknown mode $mode" >&2; exit 2 ;;
esac
