#!/usr/bin/env bash
# Per-step wall time of `dos pretrain` through the command line, this tree against another commit, alternating.
#
#   scripts/bench_pretrain_cli.sh [REF] [ROUNDS]      (default: 7392490, 2)
#
# Each round runs `dos pretrain` at make reproduce's mini pretraining settings (one thread, batches built in the
# training process, as `make reproduce` runs it) for 5 and for 35 steps in fresh folders, on both trees; the
# per-step time is (T35 - T5) / 30, so start-up and the final export cancel. Prints each measurement and the
# ratio of the medians. Needs data/mini/synthetic (`dos data generate --scale mini ...`).
set -euo pipefail
ref=${1:-7392490}
rounds=${2:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/ref" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$repo" worktree add --detach "$work/ref" "$ref" >/dev/null 2>&1
data=$repo/data/mini/synthetic/synthetic-nuscenes
[ -d "$data" ] || { echo "no $data: run dos data generate --scale mini first" >&2; exit 2; }
mapfile -t sets < <(cd "$repo" && "$python" -c "
from dos.bench.step import scale_overrides
for item in scale_overrides('mini', '$data'): print(item)")
args=()
for item in "${sets[@]}"; do args+=(--set "$item"); done

run() {  # tree steps -> seconds
    local tree=$1 steps=$2 out=$work/run_$RANDOM
    local start end
    start=$(date +%s%N)
    (cd "$tree" && PYTHONPATH=$tree OMP_NUM_THREADS=1 "$python" -m dos pretrain dos/config/pretrain/dos_outdoor.yaml \
        --out "$out" "${args[@]}" --set train.max_steps="$steps" --set train.num_threads=1 >"$out.log" 2>&1) \
        || { echo "dos pretrain failed in $tree:" >&2; tail -3 "$out.log" >&2; exit 1; }
    end=$(date +%s%N)
    rm -rf "$out" "$out.log"
    echo $(( (end - start) / 1000000 ))  # milliseconds
}

this=() against=()
for round in $(seq "$rounds"); do
    for tree in "$repo" "$work/ref"; do
        short=$(run "$tree" 5); long=$(run "$tree" 35)
        per_step=$(( (long - short) / 30 ))  # milliseconds
        printf 'round %d %-8s %d ms/step (5 steps %d ms, 35 steps %d ms)\n' "$round" \
            "$([ "$tree" = "$repo" ] && echo this || echo "$ref")" "$per_step" "$short" "$long"
        if [ "$tree" = "$repo" ]; then this+=("$per_step"); else against+=("$per_step"); fi
    done
done
"$python" - "${#this[@]}" "${this[@]}" "${against[@]}" <<'PY'
import statistics, sys
n = int(sys.argv[1]); values = [float(v) / 1000 for v in sys.argv[2:]]
this, against = statistics.median(values[:n]), statistics.median(values[n:])
print(f"median s/step: this {this:.3f}, against {against:.3f}, ratio {this / against:.3f}")
PY
