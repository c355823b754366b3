#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (seconds, default 120 each) on the seed corpus,
# one after the other, with one job each. New inputs go to fuzz/corpus/<target>/ (ignored by
# git), crashes to fuzz/artifacts/<target>/. Prints libFuzzer's last status line per target.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-120}"
targets=(sip_message proxy_core ils_frame)
cargo +nightly fuzz build -s none -a
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release"
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t (${secs}s)"
    if ! "$bin/$t" -max_total_time="$secs" -artifact_prefix="artifacts/$t/" \
        -print_final_stats=1 "corpus/$t" "seeds/$t" >"artifacts/$t.log" 2>&1; then
        status=1
        grep -E "panicked|SUMMARY|Test unit written" "artifacts/$t.log" || tail -20 "artifacts/$t.log"
    fi
    grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec" "artifacts/$t.log" || true
    echo "corpus/$t: $(ls "corpus/$t" | wc -l) inputs"
done
exit "$status"
