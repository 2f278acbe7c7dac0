#!/usr/bin/env bash
# Two `lrp` binaries side by side on the same input, run alternately so
# that the machine's drift falls on both: wall time of each run, then the
# median and the fastest of each and their ratio.
#
#   lrp-bench/scripts/side_by_side.sh OLD_LRP NEW_LRP TEXT_FILE [ROUNDS] [-- EXPLAIN_FLAGS...]
#
# For the SST test set: `python3 tools/sst.py`-style plain sentences, one a
# line (the tree files' leaves), with the built-in model; for example
#   git worktree add /tmp/old <commit> && cargo build --release --manifest-path /tmp/old/Cargo.toml
#   lrp-bench/scripts/side_by_side.sh /tmp/old/target/release/lrp target/release/lrp sentences.txt 21 -- --threads 1
# The outputs are compared too: a speed-up that changes the numbers is not one.
set -euo pipefail
old=$1 new=$2 input=$3 rounds=${4:-21}
shift $(( $# >= 4 ? 4 : 3 ))
[[ ${1:-} == -- ]] && shift
if ! cmp -s <("$old" explain --input "$input" "$@") <("$new" explain --input "$input" "$@"); then
    echo "the two binaries write different explanations" >&2
    exit 1
fi
times=$(mktemp)
trap 'rm -f "$times"' EXIT
for _ in $(seq "$rounds"); do
    for side in old new; do
        binary=$old
        [[ $side == new ]] && binary=$new
        start=$(date +%s%N)
        "$binary" explain --input "$input" "$@" > /dev/null
        echo "$side $(( ($(date +%s%N) - start) / 1000000 ))" >> "$times"
    done
done
python3 - "$times" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    side, ms = line.split()
    runs.setdefault(side, []).append(int(ms))
for side in ("old", "new"):
    print(f"{side}: median {statistics.median(runs[side]):.0f} ms, fastest {min(runs[side])} ms, {len(runs[side])} runs")
print(f"new / old: median {statistics.median(runs['new']) / statistics.median(runs['old']):.3f}, "
      f"fastest {min(runs['new']) / min(runs['old']):.3f}")
PY
