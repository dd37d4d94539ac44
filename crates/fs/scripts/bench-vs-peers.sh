#!/usr/bin/env bash
# goguard-fs against setfiles, setfacl and chown on one generated Go-shaped tree on tmpfs.
#
# Builds the vs_peers bench (release) and runs it: it generates the tree with
# tests/data/gen_go_caches.py, times each peer and the matching goguard-fs pass in the same
# run (resets outside the timings), and prints a Markdown table of medians and ratios.
#
#   crates/fs/scripts/bench-vs-peers.sh [--files 200000] [--runs 3] [--dir /dev/shm/goguard-bench]
#
# Needs root (labels, ACLs, chown), python3, setfiles (policycoreutils), acl, a tmpfs.
# Only touches the --dir directory, which it removes at the end (--keep to leave it).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ws="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ws/target-fs}"
for tool in setfiles setfacl getfacl python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
cd "$ws"
cargo bench -p goguard-fs --bench vs_peers -- "$@"
