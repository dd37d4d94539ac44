#!/usr/bin/env bash
# bench-trim.sh [WORKDIR]
#
# GOCACHE trim time of goguard-hygiene (`examples/trim`, release build) against Go's own
# trim, on copies of the same generated, aged cache, in the same run.
#
# 1. A GOCACHE of ENTRIES files from /work/shared/tools/gen_go_caches.py (57% `-a`, 43% `-d`,
#    `-d` sizes log-normal capped at 64 KiB); every entry aged 10 days except FRESH percent
#    of the `-a` files (and their `-d` when present), which keep a fresh mtime; trim.txt 2 days
#    old (a trim is due).
# 2. RUNS rounds; each round times, on a fresh `cp -a` copy each (then `sync`, untimed):
#    - goguard: `examples/trim GOCACHE`;
#    - Go's own `Trim` (cache.go l.309–371, the `defer c.Trim()` at the end of every build):
#      a `go build` of a one-file program whose packages are already cached, with trim.txt
#      due, minus the same build right after (trim.txt now fresh: no trim);
#    - with CLEAN=1 also `go clean -cache` (removes everything, no stat).
#    The order of goguard and Go alternates between rounds.
# 3. Prints the medians side by side, the ratio (Go / goguard: > 1 means goguard is faster),
#    what each left behind (Go's trim also leaves tiny's own fresh entries), and the load
#    average before and after.
#
# Knobs: ENTRIES (default 50000), FRESH (percent, default 0), RUNS (3), CLEAN (0), KEEP (1
# keeps WORKDIR). Everything lives under WORKDIR (default: a new /tmp/goguard-bench-trim.*).
set -euo pipefail

ENTRIES=${ENTRIES:-50000}
FRESH=${FRESH:-0}
RUNS=${RUNS:-3}
CLEAN=${CLEAN:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/goguard-bench-trim.XXXXXX)}
mkdir -p "$work"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-hygiene}
cargo build --quiet --release -p goguard-hygiene --example trim --manifest-path "$here/Cargo.toml"
bin=$CARGO_TARGET_DIR/release/examples

cleanup() {
    if [ "${KEEP:-0}" != 1 ]; then
        chmod -R u+w "$work" 2>/dev/null || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT

export HOME=$work/home GOPATH=$work/home/go GOENV=off GOTOOLCHAIN=local GOPROXY=off \
    GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$HOME"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== generating a GOCACHE of $ENTRIES files ($FRESH% of the -a fresh) in $work" >&2
python3 /work/shared/tools/gen_go_caches.py "$work/gen" --files "$ENTRIES" --users bench \
    --gocache-share 1.0 --max-file-bytes 65536 >/dev/null 2>&1
src=$work/gen/home/bench/.cache/go-build
python3 - "$src" "$FRESH" <<'PY'
import os, random, sys, time
root, fresh = sys.argv[1], int(sys.argv[2])
rng = random.Random(11)
now = time.time(); old = now - 10 * 86400
keep = set()
for d in sorted(os.listdir(root)):
    p = os.path.join(root, d)
    if not os.path.isdir(p):
        continue
    for n in sorted(os.listdir(p)):
        if n.endswith("-a") and rng.randrange(100) < fresh:
            keep.add(os.path.join(p, n))
            with open(os.path.join(p, n)) as f:
                out = f.read().split()[2]
            keep.add(os.path.join(root, out[:2], out + "-d"))
for d in os.listdir(root):
    p = os.path.join(root, d)
    if os.path.isdir(p):
        for n in os.listdir(p):
            q = os.path.join(p, n)
            t = now - 600 if q in keep else old
            os.utime(q, (t, t))
with open(os.path.join(root, "trim.txt"), "w") as f:
    f.write(str(int(now - 2 * 86400)))
PY
entries=$(find "$src" -name '*-[ad]' | wc -l); size_mb=$(du -sm "$src" | cut -f1)
mkdir -p "$work/tiny" && printf 'module tiny\n\ngo 1.19\n' >"$work/tiny/go.mod" \
    && printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println() }\n' >"$work/tiny/main.go"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fresh_copy() { rm -rf "$work/c"; cp -a "$src" "$work/c"; sync; }
left() { find "$work/c" -name '*-[ad]' | wc -l; }

run_goguard() {
    fresh_copy
    local t0 t1
    t0=$(now); "$bin/trim" "$work/c" >"$work/goguard.out"; t1=$(now)
    gg+=("$(echo "$t1 - $t0" | bc -l)"); gg_left=$(left)
}
run_go() {
    fresh_copy
    local t0 t1 t2 t3
    date +%s >"$work/c/trim.txt"                                   # not due: no trim yet
    (cd "$work/tiny" && GOCACHE=$work/c go build -o /dev/null .)   # fills tiny's entries
    cp "$src/trim.txt" "$work/c/trim.txt"                          # due again
    t0=$(now); (cd "$work/tiny" && GOCACHE=$work/c go build -o /dev/null .); t1=$(now)
    t2=$(now); (cd "$work/tiny" && GOCACHE=$work/c go build -o /dev/null .); t3=$(now)
    gotrim+=("$(echo "($t1 - $t0) - ($t3 - $t2)" | bc -l)"); go_left=$(left)
}

gg=(); gotrim=(); clean=()
for r in $(seq "$RUNS"); do
    if [ $((r % 2)) = 1 ]; then run_goguard; run_go; else run_go; run_goguard; fi
    if [ "$CLEAN" = 1 ]; then
        fresh_copy
        t0=$(now); GOCACHE=$work/c go clean -cache; t1=$(now)
        clean+=("$(echo "$t1 - $t0" | bc -l)")
    fi
done
rm -rf "$work/c"
gg_m=$(printf '%s\n' "${gg[@]}" | median)
go_m=$(printf '%s\n' "${gotrim[@]}" | median)

echo
echo "trim: $entries entries, $size_mb MB, $FRESH% of -a fresh (the rest aged 10 days);" \
    "$RUNS runs, $(nproc) CPUs, fs $(stat -f -c %T "$work")"
printf '  %-16s median %7.3f s   runs: %s   (left %s entries)\n' \
    "goguard trim" "$gg_m" "${gg[*]}" "$gg_left"
printf '  %-16s median %7.3f s   runs: %s   (left %s entries, tiny'"'"'s own included)\n' \
    "go's own Trim" "$go_m" "${gotrim[*]}" "$go_left"
if [ "$CLEAN" = 1 ]; then
    printf '  %-16s median %7.3f s   runs: %s\n' "go clean -cache" \
        "$(printf '%s\n' "${clean[@]}" | median)" "${clean[*]}"
fi
echo "  ratio (go time / goguard time): $(echo "scale=2; $go_m / $gg_m" | bc -l)"
echo "  goguard: $(cat "$work/goguard.out")"
echo "  load average: before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
