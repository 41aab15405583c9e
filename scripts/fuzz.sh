#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a budget and prints, per target, the cases run,
# executions per second and findings (crash inputs under fuzz/artifacts/TARGET/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 0     # a number of cases per target instead of a time
#
# Stable Rust, no sanitizer (`-s none`): the targets check their own properties (each head
# returned once, used lengths within what the guest offered, a memory bound) besides
# panics. Installs cargo-fuzz if it is missing. Corpora grow under fuzz/corpus/TARGET and
# are reused by the next run. Each target runs on one core at the lowest priority (the
# machine is shared); FUZZ_JOBS=N runs N targets at once. The exit status is 1 if any
# target found something.
#
# The targets are built without libFuzzer's compare tracing unless FUZZ_TRACE_COMPARES=1:
# every generator turns the input into choices (`strato_fuzzgen::Source`), so there are few
# magic values for compare tracing to solve, and it costs most of the time (on `virtqueue`,
# 5.4k execs/s with it, 18.7k without, measured in one session). Set FUZZ_TRACE_COMPARES=1
# for coverage-hungry exploration from an empty corpus.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
jobs="${FUZZ_JOBS:-1}"
runs="${FUZZ_RUNS:-}"
build_flags=(-s none)
if [ "${FUZZ_TRACE_COMPARES:-0}" != 1 ]; then
    build_flags+=(--no-trace-compares)
fi
limits=(-max_total_time="$seconds")
if [ -n "$runs" ]; then
    limits=(-runs="$runs")
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

nice -n 19 cargo fuzz build "${build_flags[@]}"
logs="$(mktemp -d /tmp/strato-fuzz.XXXXXX)"
trap 'rm -rf "$logs"' EXIT

run_one() {
    local t="$1"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    # -rss_limit_mb: a case that leaks past the targets' own bounds still ends the run.
    nice -n 19 cargo fuzz run "${build_flags[@]}" "$t" "fuzz/corpus/$t" -- \
        "${limits[@]}" -rss_limit_mb=1024 -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$logs/$t.log" 2>&1 || true
}

running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

found=0
printf '%-14s %12s %10s %9s\n' target cases execs/s findings
for t in "${targets[@]}"; do
    log="$logs/$t.log"
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    printf '%-14s %12s %10s %9s\n' "$t" "${runs:-?}" "${speed:-?}" "$crashes"
    if [ "$crashes" -gt 0 ] || [ -z "${runs:-}" ]; then
        found=1
        echo "--- $t (log tail)" >&2
        tail -n 30 "$log" >&2
    fi
done
exit "$found"
