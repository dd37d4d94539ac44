#!/usr/bin/env python3
"""Offline prefill benchmark (issue 16): `goguardctl bundle import` against what the guide
does (`rsync -a` of the `cache/download` tree, then `go mod verify`), in the same run, on the
same modules, runs interleaved.

Setup: --count modules of --size random (incompressible) bytes each, in a file:// proxy
written by fake-proxy.py, and a program importing all of them; `go mod tidy` through the proxy
fills a "connected" module cache, and `goguardctl bundle export` writes the bundle (directory
and tar). Each run then fills an empty module cache with:
  * goguardctl bundle import DIR      (verifies every zip and .mod against go.sum, fsyncs)
  * goguardctl bundle import TAR
  * rsync -a BUNDLE/cache/download/ → MODCACHE/cache/download/, then `go mod verify` in the
    program (GOPROXY=off): hashes each zip against its .ziphash; no go.sum check, no fsync;
    also with a `sync -f` of the target filesystem before the verify, which makes it as
    durable as the import (which fsyncs every file before renaming it into place).
The page cache is warm for all (nothing is dropped: the machine is shared). Prints medians of
--runs and checks once that `GOPROXY=off go build` works from each.

  crates/cli/scripts/bench-bundle.py --bin target/release/goguardctl [--count 30 --size 1048576]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env=None, cwd=None):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def timed(cmd, env=None, cwd=None):
    t = time.perf_counter()
    run(cmd, env=env, cwd=cwd)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/goguardctl")
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    ctl = os.path.abspath(a.bin)
    work = tempfile.mkdtemp(prefix="goguard-bench-bundle-", dir="/var/tmp")
    try:
        proxy, app = os.path.join(work, "proxy"), os.path.join(work, "app")
        run(["python3", os.path.join(HERE, "fake-proxy.py"), "--proxy", proxy, "--app", app,
             "many", "--count", str(a.count), "--size", str(a.size)])
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.path.join(work, "home"),
            "GOTOOLCHAIN": "local",
            "GOSUMDB": "off",
            "GOFLAGS": "-mod=mod",
        }
        os.makedirs(base["HOME"])
        online = dict(base, GOPROXY="file://" + proxy, GOMODCACHE=os.path.join(work, "connected"))
        run(["go", "mod", "tidy"], env=online, cwd=app)
        bdir, btar = os.path.join(work, "bundle"), os.path.join(work, "bundle.tar")
        for out in (bdir, btar):
            run([ctl, "bundle", "export", "--out", out, os.path.join(app, "go.mod")], env=online)
        zips = sum(
            os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(os.path.join(bdir, "cache"))
            for f in fs
            if f.endswith(".zip")
        )

        def offline(modcache):
            return dict(base, GOPROXY="off", GOMODCACHE=modcache)

        keys = ("import_dir", "import_tar", "verify_dir", "verify_tar", "rsync", "sync", "verify", "rsync_verify", "durable")
        times = {k: [] for k in keys}
        for i in range(a.runs):
            for kind, src in (("import_dir", bdir), ("import_tar", btar)):
                mc = os.path.join(work, f"mc-{kind}")
                shutil.rmtree(mc, ignore_errors=True)
                t = time.perf_counter()
                r = run([ctl, "bundle", "import", "--json", "--modcache", mc, src])
                times[kind].append(time.perf_counter() - t)
                times[kind.replace("import", "verify")].append(json.loads(r.stdout)["verify_seconds"])
            mc = os.path.join(work, "mc-rsync")
            shutil.rmtree(mc, ignore_errors=True)
            os.makedirs(os.path.join(mc, "cache"))
            r = timed(["rsync", "-a", os.path.join(bdir, "cache", "download") + "/",
                       os.path.join(mc, "cache", "download") + "/"])
            # What goguard guarantees on exit (every file on disk) costs rsync a sync.
            s = timed(["sync", "-f", mc])
            v = timed(["go", "mod", "verify"], env=offline(mc), cwd=app)
            times["rsync"].append(r)
            times["sync"].append(s)
            times["verify"].append(v)
            times["rsync_verify"].append(r + v)
            times["durable"].append(r + s + v)
        # Each way leaves a cache `go build` can use offline.
        for kind in ("import_dir", "import_tar", "rsync"):
            run(["go", "build", "-o", "/dev/null", "."],
                env=offline(os.path.join(work, f"mc-{kind}")), cwd=app)

        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{a.count} modules, {zips / (1 << 20):.1f} MiB of zips, medians of {a.runs} "
              f"(load {os.getloadavg()[0]:.1f}); every cache then built with GOPROXY=off")
        print(f"| way | median | runs |")
        print(f"|---|---:|---|")
        rows = [
            ("goguardctl bundle import (directory)", "import_dir"),
            ("  of which verifying before writing", "verify_dir"),
            ("goguardctl bundle import (tar)", "import_tar"),
            ("  of which verifying before writing", "verify_tar"),
            ("rsync -a cache/download", "rsync"),
            ("go mod verify", "verify"),
            ("sync -f (after rsync)", "sync"),
            ("rsync -a + go mod verify", "rsync_verify"),
            ("rsync -a + sync -f + go mod verify", "durable"),
        ]
        for label, k in rows:
            runs = ", ".join(f"{x:.3f}" for x in times[k])
            print(f"| {label} | {med[k]:.3f} s | {runs} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
