#!/usr/bin/env bash
# bench-modverify.sh [WORKDIR]
#
# Verify throughput of goguard-hygiene against `go mod verify` on the same module cache in
# the same run, and (unless TRIM=0) the time of a GOCACHE trim against Go's own trim and
# `go clean -cache`.
#
# 1. Generates a local file:// GOPROXY with MODULES modules of about MB megabytes of
#    Go-shaped content in total (text files that compress like source, plus some binary
#    testdata), zipped the way the proxy protocol serves them (entries `module@version/...`).
# 2. `go mod download` of an app requiring all of them into a temp GOMODCACHE.
# 3. RUNS alternating runs of `go mod verify` and `examples/modverify` (release build); both
#    hash every zip and every extracted directory (GOMAXPROCS / available_parallelism
#    workers). Prints medians, MB/s over the bytes hashed (zips + extracted files, as counted
#    by goguard) and the ratio.
# 4. Trim: a GOCACHE from /work/shared/tools/gen_go_caches.py (TRIM_FILES files), every entry
#    aged 10 days, trim.txt 2 days old; per run a fresh copy each for goguard's trim, Go's own
#    trim (the `Trim` at the end of a `go build` of a one-file program whose packages are
#    cached; time minus the same build with trim not due) and `go clean -cache`. For the trim
#    alone (smaller caches, fresh entries, alternating order) see bench-trim.sh.
#
# Page cache is warm for all (one untimed pass first); nothing else is dropped. Everything is
# created under WORKDIR (default: a new /tmp/goguard-bench.*), removed at the end unless
# KEEP=1.
set -euo pipefail

MB=${MB:-300}
MODULES=${MODULES:-60}
RUNS=${RUNS:-3}
TRIM=${TRIM:-1}
TRIM_FILES=${TRIM_FILES:-200000}
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/goguard-bench.XXXXXX)}
mkdir -p "$work"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-hygiene}
cargo build --quiet --release -p goguard-hygiene --examples --manifest-path "$here/Cargo.toml"
bin=$CARGO_TARGET_DIR/release/examples

cleanup() {
    if [ "${KEEP:-0}" != 1 ]; then
        chmod -R u+w "$work" 2>/dev/null || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT

echo "== generating a proxy of $MODULES modules, ~${MB} MB, in $work" >&2
python3 - "$work/proxy" "$work/app" "$MB" "$MODULES" <<'PY'
import json, os, random, sys, zipfile
proxy, app, mb, nmod = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(7)
words = ("func return if err != nil { } package import type struct interface map chan go "
         "defer select case default switch for range var const string int byte error "
         "context ctx Reader Writer Close Read Write buf len cap make append copy").split()
pool = " ".join(rng.choice(words) for _ in range(400_000)).encode()
per_mod = mb * 1_000_000 // nmod
req = []
for m in range(nmod):
    path = f"example.com/Bench{m % 7}/mod{m}"          # upper case: escaped paths
    esc = "".join("!" + c.lower() if c.isupper() else c for c in path)
    ver = f"v1.{m}.0"
    d = os.path.join(proxy, esc, "@v"); os.makedirs(d, exist_ok=True)
    gomod = f"module {path}\n\ngo 1.19\n".encode()
    with open(os.path.join(d, "list"), "w") as f: f.write(ver + "\n")
    with open(os.path.join(d, ver + ".info"), "w") as f:
        json.dump({"Version": ver, "Time": "2024-01-01T00:00:00Z"}, f)
    with open(os.path.join(d, ver + ".mod"), "wb") as f: f.write(gomod)
    with zipfile.ZipFile(os.path.join(d, ver + ".zip"), "w", zipfile.ZIP_DEFLATED) as z:
        pre = f"{path}@{ver}/"
        z.writestr(pre + "go.mod", gomod)
        z.writestr(pre + "doc.go", f"package mod{m}\n")
        left, i = per_mod, 0
        while left > 0:
            size = min(left, int(rng.lognormvariate(9.0, 1.3)) + 100)
            if i % 10 == 9:
                data = rng.randbytes(size)                 # testdata: incompressible
                name = f"testdata/blob{i}.bin"
            else:
                off = rng.randrange(0, len(pool) - size - 1)
                data = b"package mod%d\n// " % m + pool[off:off + size]
                name = f"pkg{i % 13}/file{i}.go.txt"
            z.writestr(pre + name, data)
            left -= len(data); i += 1
    req.append(f"\t{path} {ver}\n")
os.makedirs(app, exist_ok=True)
with open(os.path.join(app, "go.mod"), "w") as f:
    f.write("module example.com/benchapp\n\ngo 1.19\n\nrequire (\n" + "".join(req) + ")\n")
PY

export HOME=$work/home GOPATH=$work/home/go GOMODCACHE=$work/gomodcache GOCACHE=$work/gocache \
    GOENV=off GOFLAGS=-mod=mod GOTOOLCHAIN=local GOSUMDB=off GOPROXY=file://$work/proxy
mkdir -p "$HOME" "$GOCACHE"
(cd "$work/app" && go mod download)
echo "== module cache: $(du -sm "$GOMODCACHE" | cut -f1) MB on disk" >&2

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Warm-up (untimed), and both must say "intact".
(cd "$work/app" && go mod verify) >/dev/null
"$bin/modverify" "$GOMODCACHE" >/dev/null
go_t=(); gg_t=(); bytes=0
for r in $(seq "$RUNS"); do
    t0=$(now); (cd "$work/app" && go mod verify) >/dev/null; t1=$(now)
    go_t+=("$(echo "$t1 - $t0" | bc -l)")
    t0=$(now); out=$("$bin/modverify" "$GOMODCACHE"); t1=$(now)
    gg_t+=("$(echo "$t1 - $t0" | bc -l)")
    bytes=$(sed -n 's/.*bytes_hashed=\([0-9]*\).*/\1/p' <<<"$out")
done
go_m=$(printf '%s\n' "${go_t[@]}" | median)
gg_m=$(printf '%s\n' "${gg_t[@]}" | median)
mbs() { echo "scale=1; $bytes / 1000000 / $1" | bc -l; }
echo
echo "verify: $MODULES modules, $((bytes / 1000000)) MB hashed (zips + extracted), $RUNS runs, $(nproc) CPUs"
printf '  %-16s median %6.3f s  %7s MB/s   runs: %s\n' "go mod verify" "$go_m" "$(mbs "$go_m")" "${go_t[*]}"
printf '  %-16s median %6.3f s  %7s MB/s   runs: %s\n' "goguard verify" "$gg_m" "$(mbs "$gg_m")" "${gg_t[*]}"
echo "  ratio (go time / goguard time): $(echo "scale=2; $go_m / $gg_m" | bc -l)"

[ "$TRIM" = 1 ] || exit 0

echo "== generating a GOCACHE of $TRIM_FILES files" >&2
python3 /work/shared/tools/gen_go_caches.py "$work/gen" --files "$TRIM_FILES" --users bench \
    --gocache-share 1.0 --max-file-bytes 65536 >/dev/null 2>&1
src=$work/gen/home/bench/.cache/go-build
python3 - "$src" <<'PY'
import os, sys, time
root = sys.argv[1]; old = time.time() - 10 * 86400
for d in os.listdir(root):
    p = os.path.join(root, d)
    if os.path.isdir(p):
        for n in os.listdir(p):
            os.utime(os.path.join(p, n), (old, old))
with open(os.path.join(root, "trim.txt"), "w") as f:
    f.write(str(int(time.time() - 2 * 86400)))
PY
entries=$(find "$src" -name '*-[ad]' | wc -l); size_mb=$(du -sm "$src" | cut -f1)
mkdir -p "$work/tiny" && printf 'module tiny\n\ngo 1.19\n' >"$work/tiny/go.mod" \
    && printf 'package main\n\nfunc main() {}\n' >"$work/tiny/main.go"
gg=(); gotrim=(); clean=()
for r in $(seq "$RUNS"); do
    rm -rf "$work/c"; cp -a "$src" "$work/c"
    t0=$(now); "$bin/trim" "$work/c" >/dev/null; t1=$(now); gg+=("$(echo "$t1 - $t0" | bc -l)")
    # Go's trim: build with trim due, minus the same (cached) build with trim not due.
    rm -rf "$work/c"; cp -a "$src" "$work/c"
    date +%s >"$work/c/trim.txt"                                  # not due: no trim yet
    (cd "$work/tiny" && GOCACHE=$work/c go build -o /dev/null .)   # fills tiny's entries
    cp "$src/trim.txt" "$work/c/trim.txt"                          # due again
    t0=$(now); (cd "$work/tiny" && GOCACHE=$work/c go build -o /dev/null .); t1=$(now)
    t2=$(now); (cd "$work/tiny" && GOCACHE=$work/c go build -o /dev/null .); t3=$(now)
    gotrim+=("$(echo "($t1 - $t0) - ($t3 - $t2)" | bc -l)")
    left=$(find "$work/c" -name '*-[ad]' | wc -l)
    rm -rf "$work/c"; cp -a "$src" "$work/c"
    t0=$(now); GOCACHE=$work/c go clean -cache; t1=$(now); clean+=("$(echo "$t1 - $t0" | bc -l)")
done
echo
echo "trim: $entries entries, $size_mb MB, all aged 10 days; $RUNS runs (Go's trim left $left entries: tiny's own)"
printf '  %-22s median %6.3f s   runs: %s\n' "goguard trim" "$(printf '%s\n' "${gg[@]}" | median)" "${gg[*]}"
printf '  %-22s median %6.3f s   runs: %s\n' "go's own Trim" "$(printf '%s\n' "${gotrim[@]}" | median)" "${gotrim[*]}"
printf '  %-22s median %6.3f s   runs: %s\n' "go clean -cache" "$(printf '%s\n' "${clean[@]}" | median)" "${clean[*]}"
