#!/usr/bin/env python3
"""What write-ahead journaling costs (issue 17): two builds of goguardd side by side, in the
same run, on the same trees, runs interleaved.

For each build (`--before DIR`, `--after DIR`, each holding goguardd and goguardctl):
  * first-scan self-heal: a [[root]] of --files files (in 256-file directories), each owned
    by uid 1 and mode 0666; goguardd gives every one back to root and clears o+w (two
    changes, two journal rows per file). Timed from spawn until `goguardctl roots` answers
    (RPCs wait for the first scan), and the rows are counted;
  * requested repair: the same tree with self-healing off; `goguardctl repair ROOT` wall time.
Prints medians of --runs, and after/before ratios.

Run as root from anywhere:
  crates/daemon/scripts/bench-journal-cost.py --before /work/bench-before --after target/release
"""

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time


def make_tree(root, files):
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    for i in range(0, files, 256):
        d = os.path.join(root, f"{i // 256:04x}")
        os.mkdir(d)
        for j in range(min(256, files - i)):
            p = os.path.join(d, f"{j:04x}-d")
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o666)
            os.fchmod(fd, 0o666)
            os.fchown(fd, 1, 1)
            os.close(fd)


def config(sandbox, root, auto):
    conf = os.path.join(sandbox, "goguard.toml")
    with open(conf, "w") as f:
        f.write(
            f'[daemon]\nsocket = "{sandbox}/run/goguard.sock"\nstate_dir = "{sandbox}/state"\n'
            f'metrics_listen = ""\n[audit]\nenabled = false\n[discovery]\nenabled = false\n'
            f"[scan]\ninterval_secs = 0\n[heal]\nauto = {'true' if auto else 'false'}\n"
            f'[[root]]\npath = "{root}"\nkind = "custom"\nowner = "root"\ngroup = "root"\n'
            f'heal = {{ owner = "auto", world_writable = "auto" }}\n'
        )
    return conf


def start(bindir, sandbox, conf):
    shutil.rmtree(os.path.join(sandbox, "state"), ignore_errors=True)
    t = time.monotonic()
    proc = subprocess.Popen(
        [f"{bindir}/goguardd", "--config", conf],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(sandbox, "goguardd.log"), "w"),
        env={**os.environ, "RUST_LOG": "warn"},
    )
    ctl = [f"{bindir}/goguardctl", "--socket", f"{sandbox}/run/goguard.sock"]
    while subprocess.run(ctl + ["roots", "--json"], capture_output=True).returncode != 0:
        if proc.poll() is not None:
            raise SystemExit("goguardd exited; see " + os.path.join(sandbox, "goguardd.log"))
        time.sleep(0.02)
    return proc, ctl, time.monotonic() - t


def stop(proc, sandbox):
    proc.terminate()
    proc.wait(timeout=30)
    db = sqlite3.connect(os.path.join(sandbox, "state/goguard.db"))
    rows = db.execute("select count(*) from journal").fetchone()[0]
    db.close()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    builds = {"before": os.path.abspath(a.before), "after": os.path.abspath(a.after)}
    sandbox = tempfile.mkdtemp(prefix="gg-journal-bench.")
    root = os.path.join(sandbox, "root")
    scan = {k: [] for k in builds}
    repair = {k: [] for k in builds}
    rows = {k: set() for k in builds}
    for run in range(a.runs):
        for name, bindir in builds.items():
            make_tree(root, a.files)
            proc, _, took = start(bindir, sandbox, config(sandbox, root, True))
            scan[name].append(took)
            rows[name].add(stop(proc, sandbox))

            make_tree(root, a.files)
            proc, ctl, _ = start(bindir, sandbox, config(sandbox, root, False))
            t = time.monotonic()
            out = subprocess.run(ctl + ["repair", root], capture_output=True, text=True)
            repair[name].append(time.monotonic() - t)
            # Builds before the bounded repair reply answer a 100k-change repair with a
            # reply over the client's 4 MiB limit; the repair itself was done (timed).
            if out.returncode != 0 and "message length too large" not in out.stderr:
                raise SystemExit(f"repair failed: {out.stderr}")
            rows[name].add(stop(proc, sandbox))
            print(f"run {run + 1} {name}: first-scan heal {scan[name][-1]:.2f} s, "
                  f"repair {repair[name][-1]:.2f} s", flush=True)
    shutil.rmtree(sandbox)
    print(f"\n{a.files} files, 2 changes each, medians of {a.runs} (load {os.getloadavg()[0]:.1f}):")
    print(f"{'':28}{'before':>10}{'after':>10}{'after/before':>14}")
    for label, data in (("first-scan self-heal (s)", scan), ("requested repair (s)", repair)):
        b, f = statistics.median(data["before"]), statistics.median(data["after"])
        print(f"{label:28}{b:10.2f}{f:10.2f}{f / b:14.2f}")
    print(f"journal rows per run: before {sorted(rows['before'])}, after {sorted(rows['after'])}")


if __name__ == "__main__":
    main()
