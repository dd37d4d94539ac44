#!/bin/sh
# Throughput of goguard-audit's parser against its peers, on the same generated log, in the
# same run:
#   goguard    the `parse` bench binary: streams the log through EventAssembler (keeping AVC
#              events), builds every AVC, matches Go relevance, builds dedup keys, and checks
#              its counts against the generator's (the daemon's whole read path)
#   goguard-parse  the same with --no-avcs: parsing and event assembly only (the work
#              comparable to ausearch selecting and printing AVC events)
#   ausearch   ausearch -if LOG -m AVC --raw > /dev/null
#   libauparse scripts/auparse_count.py (libauparse's own `type = AVC` search, via Debian's
#              python3-audit; installed with apt-get if missing)
#
#   crates/audit/scripts/bench-vs-ausearch.sh [SIZE_MB]        # default 200
#   RUNS=5 BENCH_DIR=/var/tmp/gg crates/audit/scripts/bench-vs-ausearch.sh 1000
#
# Each tool runs RUNS times (default 3), round-robin so a noisy neighbour hurts all alike;
# the table shows medians of wall time (MB/s, events/s), of CPU time (user+sys, which
# moves less when other jobs share the cores) and of peak RSS (/usr/bin/time's max RSS).
# The log is generated once per size by scripts/gen_audit_log.py and kept in BENCH_DIR.
set -eu

size="${1:-200}"
runs="${RUNS:-3}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
work="${BENCH_DIR:-/tmp/goguard-bench}"
mkdir -p "$work"
log="$work/audit-${size}MB.log"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target-audit}"

command -v ausearch >/dev/null || { echo "ausearch not found (Debian: apt-get install auditd)" >&2; exit 2; }
if ! /usr/bin/python3 -c 'import auparse' 2>/dev/null; then
    echo "installing python3-audit for libauparse" >&2
    apt-get install -y python3-audit >/dev/null
fi

if [ ! -s "$log" ] || [ ! -s "$log.stats.json" ]; then
    echo "generating $log ($size MB)" >&2
    python3 "$here/gen_audit_log.py" "$size" -o "$log" >&2
fi

echo "building the bench binary" >&2
bench=$(cd "$repo" && cargo bench -p goguard-audit --bench parse --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "parse":
        print(m["executable"])')
[ -x "$bench" ] || { echo "could not build the bench binary" >&2; exit 2; }

cat "$log" > /dev/null   # warm the page cache for everyone
results="$work/results-${size}MB.tsv"
: > "$results"

measure() { # name, command...
    name=$1
    shift
    /usr/bin/time -f '%e %U %S %M' -o "$work/time.out" "$@" > "$work/out.$name" 2> "$work/err.$name" || {
        echo "$name failed:" >&2
        cat "$work/err.$name" >&2
        exit 1
    }
    printf '%s %s\n' "$name" "$(tail -n 1 "$work/time.out")" >> "$results"
}

i=1
while [ "$i" -le "$runs" ]; do
    echo "run $i/$runs" >&2
    measure goguard "$bench" "$log"
    measure goguard-parse "$bench" "$log" --no-avcs
    measure ausearch ausearch -if "$log" -m AVC --raw
    measure libauparse /usr/bin/python3 "$here/auparse_count.py" "$log"
    i=$((i + 1))
done

echo "goguard check: $(grep -h 'check:' "$work/err.goguard" || true)"
echo "libauparse found (events records): $(cat "$work/out.libauparse")"

python3 - "$log" "$results" "$runs" <<'EOF'
import json, os, statistics, sys

log, results, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = os.path.getsize(log)
stats = json.load(open(log + ".stats.json"))
events = stats["events"]
rows = {}
for line in open(results):
    name, wall, user, system, rss = line.split()
    rows.setdefault(name, []).append((float(wall), float(user) + float(system), int(rss)))

def med(name, i):
    return statistics.median(r[i] for r in rows[name])

print(f"\nlog {log}: {size / 1e6:.0f} MB, {events} events, {stats['avc_records']} AVC records; "
      f"medians of {runs} runs; load average now {os.getloadavg()[0]:.1f}\n")
print(f"{'tool':<13} {'wall s':>8} {'MB/s':>8} {'events/s':>11} {'CPU s':>7} {'CPU MB/s':>9} "
      f"{'peak RSS MB':>12} {'x ausearch (wall)':>18} {'x ausearch (CPU)':>17}")
base_wall, base_cpu = med("ausearch", 0), med("ausearch", 1)
for name in ("goguard", "goguard-parse", "ausearch", "libauparse"):
    wall, cpu, rss = med(name, 0), med(name, 1), med(name, 2)
    print(f"{name:<13} {wall:>8.2f} {size / 1e6 / wall:>8.0f} {events / wall:>11.0f} {cpu:>7.2f} "
          f"{size / 1e6 / max(cpu, 1e-9):>9.0f} {rss / 1024:>12.1f} {base_wall / wall:>18.2f} "
          f"{base_cpu / max(cpu, 1e-9):>17.2f}")
EOF
