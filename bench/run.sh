#!/bin/sh
# Benchmark jobflow-tui --headless beside the baselines of ../shared/bench, interleaved in
# one run (shuffled order per round, medians of paired ratios), then write the tables
# into bench/results/.
#   sh bench/run.sh [--runs 5 --warmup 1 --tools ... --workloads ...]
# Needs: python3 with venv, make, /usr/bin/time (Debian: apt-get install -y time).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SHARED=${JOBFLOW_BENCH_SHARED:-$ROOT/../shared/bench}
B=${BENCH_TMP:-/tmp/jobflow-bench}
mkdir -p "$B"
[ -x "$B/jobflow-venv/bin/python" ] || python3 -m venv "$B/jobflow-venv"
"$B/jobflow-venv/bin/pip" install -q --force-reinstall --no-deps "$ROOT" >/dev/null
"$B/jobflow-venv/bin/pip" install -q "$ROOT" >/dev/null
BENCH_TMP="$B" sh "$SHARED/run_baselines.sh" \
    --jobflow "$B/jobflow-venv/bin/jobflow-tui --headless" \
    --jobflow-log-glob '.jobflow/**/firehose.*.log' \
    --tools "${TOOLS:-make,xargs,raw,doit,flowmancer,ref-asyncio,jobflow}" "$@"
day=$(date +%Y-%m-%d)
mkdir -p "$HERE/results"
cp "$B/results/results.json" "$HERE/results/jobflow-$day.json"
cp "$B/results/results.md" "$HERE/results/jobflow-$day.md"
echo "wrote $HERE/results/jobflow-$day.md"
