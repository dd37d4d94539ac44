#!/bin/sh
# Fuzzes goguard-audit's parser and event assembler for a bounded time, for CI.
#
#   crates/audit/fuzz/run.sh                  # every target, FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=300 crates/audit/fuzz/run.sh parse
#
# Installs cargo-fuzz if missing. cargo-fuzz needs nightly flags (-Zsanitizer); on a stable
# toolchain RUSTC_BOOTSTRAP=1 enables them. Seeds come from the real-log corpus in
# ../tests/corpus (one line per seed file). Exits non-zero if a target finds a crash; the
# reproducer is left in fuzz/artifacts/<target>/.
set -eu
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-30}"
targets="${*:-parse assemble}"
export RUSTC_BOOTSTRAP=1
# Builds of the fuzz crate must not fight the workspace's target dir.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

seed_dir() {
    dir="corpus/$1"
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir"
        # One seed per corpus line (first 300 lines of each log), and whole small logs.
        for log in ../tests/corpus/*.log; do
            base=$(basename "$log" .log)
            head -n 300 "$log" | split -l 1 -a 3 - "$dir/$base-"
            if [ "$(wc -c < "$log")" -lt 20000 ]; then
                cp "$log" "$dir/$base-whole"
            fi
        done
    fi
    echo "$dir"
}

for target in $targets; do
    echo "== fuzzing $target for ${seconds}s"
    cargo fuzz run "$target" "$(seed_dir "$target")" -- \
        -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1
done
