#!/bin/sh
# `goguardctl explain` against `ausearch -if LOG -m AVC --raw`, side by side, on the same
# generated logs, in the same run (issue 15's target: `explain --all --json` >= 3x faster
# than ausearch, peak RSS under 50 MB, text and --json in constant memory too).
#
#   crates/cli/scripts/bench-explain.sh                  # the two logs below, 3 runs each
#   RUNS=5 BENCH_DIR=/var/tmp/gg crates/cli/scripts/bench-explain.sh
#   LOGS="200:default" crates/cli/scripts/bench-explain.sh
#   BASELINE=/path/to/older/goguardctl crates/cli/scripts/bench-explain.sh   # adds its rows
#
# LOGS is a list of SIZE_MB:KIND, KIND one of
#   default  gen_audit_log.py's defaults (about 5% AVC events, a third from Go tools)
#   dense    --avc-pct 100 --go-share 0.4 (every event an AVC: the most output per MB)
# default: "62:dense 1000:default". Logs are generated once (deterministic seed) and kept in
# BENCH_DIR (default /tmp/goguard-bench). Every tool runs RUNS times round-robin, so a busy
# neighbour hurts all alike; the table shows medians of wall time, CPU time (user+sys) and
# peak RSS (/usr/bin/time's maximum resident set size). Output goes to /dev/null.
# WORKERS=1 pins goguardctl's --json worker threads (default: one per core, at most 4).
set -eu

runs="${RUNS:-3}"
logs="${LOGS:-62:dense 1000:default}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
work="${BENCH_DIR:-/tmp/goguard-bench}"
gen="$repo/crates/audit/scripts/gen_audit_log.py"
mkdir -p "$work"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"

command -v ausearch >/dev/null || { echo "ausearch not found (Debian: apt-get install auditd)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 2; }

echo "building goguardctl (release)" >&2
(cd "$repo" && cargo build --release --bin goguardctl >&2)
ctl="$CARGO_TARGET_DIR/release/goguardctl"
[ -x "$ctl" ] || { echo "no $ctl" >&2; exit 2; }
[ -n "${WORKERS:-}" ] && export GOGUARD_EXPLAIN_WORKERS="$WORKERS"

results="$work/explain-results.tsv"
: > "$results"

measure() { # log-name tool-name command...
    lname=$1 name=$2
    shift 2
    status=0
    /usr/bin/time -f '%e %U %S %M' -o "$work/time.out" "$@" > /dev/null 2> "$work/err.out" || status=$?
    # explain exits 1 when it found go-related denials.
    if [ "$status" -gt 1 ] || { [ "$status" -eq 1 ] && [ "$name" = ausearch ]; }; then
        echo "$name failed ($status):" >&2
        cat "$work/err.out" >&2
        exit 1
    fi
    printf '%s\t%s\t%s\n' "$lname" "$name" "$(tail -n 1 "$work/time.out")" >> "$results"
}

for spec in $logs; do
    size=${spec%%:*} kind=${spec#*:}
    log="$work/audit-${size}MB-$kind.log"
    case "$kind" in
        default) genargs="" ;;
        dense) genargs="--avc-pct 100 --go-share 0.4" ;;
        *) echo "unknown log kind $kind" >&2; exit 2 ;;
    esac
    if [ ! -s "$log" ] || [ ! -s "$log.stats.json" ]; then
        echo "generating $log" >&2
        # shellcheck disable=SC2086
        python3 "$gen" "$size" $genargs -o "$log" >&2
    fi
    cat "$log" > /dev/null   # warm the page cache for everyone
    i=1
    while [ "$i" -le "$runs" ]; do
        echo "$spec: run $i/$runs" >&2
        measure "$spec" ausearch ausearch -if "$log" -m AVC --raw
        measure "$spec" "explain --all --json" "$ctl" explain --all --json "$log"
        measure "$spec" "explain --json" "$ctl" explain --json "$log"
        measure "$spec" "explain (text)" "$ctl" explain --color never "$log"
        if [ -n "${BASELINE:-}" ]; then
            measure "$spec" "baseline --all --json" "$BASELINE" explain --all --json "$log"
            measure "$spec" "baseline --json" "$BASELINE" explain --json "$log"
            measure "$spec" "baseline (text)" "$BASELINE" explain --color never "$log"
        fi
        i=$((i + 1))
    done
done

python3 - "$results" "$runs" "$work" <<'PY'
import json, os, statistics, sys

results, runs, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
order = []
for line in open(results):
    lname, name, t = line.rstrip("\n").split("\t")
    wall, user, system, rss = t.split()
    if (lname, name) not in rows:
        order.append((lname, name))
    rows.setdefault((lname, name), []).append((float(wall), float(user) + float(system), int(rss)))

def med(key, i):
    return statistics.median(r[i] for r in rows[key])

print(f"\nmedians of {runs} runs; load average now {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores\n")
print("| log | tool | wall s | CPU s | peak RSS MB | x ausearch (wall) | x ausearch (CPU) |")
print("|---|---|---:|---:|---:|---:|---:|")
for lname, name in order:
    size, kind = lname.split(":")
    log = os.path.join(work, f"audit-{size}MB-{kind}.log")
    stats = json.load(open(log + ".stats.json"))
    desc = f"{os.path.getsize(log) / 1e6:.0f} MB {kind} ({stats['avc_records']} AVC records)"
    base = (lname, "ausearch")
    wall, cpu, rss = med((lname, name), 0), med((lname, name), 1), med((lname, name), 2)
    print(f"| {desc} | {name} | {wall:.2f} | {cpu:.2f} | {rss / 1024:.1f} | "
          f"{med(base, 0) / wall:.2f} | {med(base, 1) / max(cpu, 1e-9):.2f} |")
PY
