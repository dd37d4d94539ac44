#!/usr/bin/env python3
"""Parallel root scans: goguardd's full scan (`goguardctl rescan`, the RPC that runs discovery
and scans every root) with `[scan] parallel_roots = 1` (one root after another, the old way)
against the default (one thread per CPU, at most 4), in the same run, on the same trees.

Makes --roots roots of --entries entries each (Go-shaped: 256 two-hex-digit directories of
`-a`/`-d` files), all owned by root as their `[[root]]` says (nothing to repair: the walk and
the evaluation are what is measured). For each setting: starts goguardd (release), waits for
READY, runs `goguardctl rescan --json` --runs times (warm page cache; the start-up scan
warmed it) and prints the median and each run, then the ratio.

Run as root from the workspace:
  crates/daemon/scripts/bench-parallel-scan.py [--roots 8] [--entries 25000] [--runs 5]
`--no-build` uses target/release as it is. Touches only a temp dir.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def make_root(path, entries):
    os.makedirs(path)
    per_dir = max(1, entries // 256)
    made = 0
    for d in range(256):
        sub = os.path.join(path, f"{d:02x}")
        os.mkdir(sub)
        made += 1
        for f in range(per_dir):
            if made >= entries:
                break
            with open(os.path.join(sub, f"{d:02x}{f:06x}-{'a' if f % 2 else 'd'}"), "wb") as fh:
                fh.write(b"x")
            made += 1
    return made


def wait_ready(ctl, socket, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"goguardd exited with {proc.returncode}")
        r = subprocess.run([ctl, "--socket", socket, "status", "--json"], capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    sys.exit("goguardd did not become ready")


def measure(bins, tmp, roots, parallel, runs):
    state = os.path.join(tmp, f"state-{parallel}")
    socket = os.path.join(tmp, f"gg-{parallel}.sock")
    config = os.path.join(tmp, f"goguard-{parallel}.toml")
    with open(config, "w") as f:
        f.write(f'[daemon]\nsocket = "{socket}"\nstate_dir = "{state}"\nmetrics_listen = ""\n')
        f.write("[audit]\nenabled = false\n[discovery]\nenabled = false\n")
        f.write(f"[scan]\ninterval_secs = 0\nparallel_roots = {parallel}\n[heal]\nauto = false\n")
        for r in roots:
            f.write(f'[[root]]\npath = "{r}"\nkind = "custom"\nowner = "root"\ngroup = "root"\n')
    ctl = os.path.join(bins, "goguardctl")
    env = dict(os.environ, RUST_LOG="warn")
    proc = subprocess.Popen([os.path.join(bins, "goguardd"), "--config", config], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(ctl, socket, proc)
        times = []
        entries = None
        for _ in range(runs):
            t = time.monotonic()
            r = subprocess.run([ctl, "--socket", socket, "rescan", "--json"], capture_output=True)
            if r.returncode not in (0, 1):  # 1: findings were left
                sys.exit(f"rescan failed: {r.stderr.decode()}")
            times.append(time.monotonic() - t)
            entries = json.loads(r.stdout).get("entries")
        return times, entries
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--roots", type=int, default=8)
    ap.add_argument("--entries", type=int, default=25000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the roots are root's, as their [[root]] says)")
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--bins"], cwd=REPO, check=True)
    bins = os.path.join(REPO, "target", "release")
    cpus = os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="gg-parscan-") as tmp:
        roots = [os.path.join(tmp, f"root{i}") for i in range(a.roots)]
        total = sum(make_root(r, a.entries) for r in roots)
        print(f"{a.roots} roots, {total} entries in all, {cpus} CPUs, {a.runs} rescans each")
        results = {}
        for parallel in (1, 0):
            times, entries = measure(bins, tmp, roots, parallel, a.runs)
            results[parallel] = times
            name = "one root at a time (parallel_roots = 1)" if parallel == 1 else \
                f"side by side (parallel_roots = 0: {min(cpus, 4, a.roots)} threads)"
            print(f"{name:55} median {statistics.median(times):.3f} s  "
                  f"runs {' '.join(f'{t:.3f}' for t in times)}  entries {entries}")
        ratio = statistics.median(results[1]) / statistics.median(results[0])
        print(f"side by side is {ratio:.2f}x as fast as one at a time (medians)")


if __name__ == "__main__":
    main()
