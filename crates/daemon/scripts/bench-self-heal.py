#!/usr/bin/env python3
"""Self-healing benchmark: goguardd (release) against the shell peer admins write
(`inotifywait -m -r | while read f; do chown ...; done`), in the same run, on the same trees.

Measures, for each tool:
  * heal latency during a burst: N root-owned files written as fast as possible into a
    user's GOCACHE (what `sudo go build` leaves) by a writer process of its own; for each
    file, the time from the end of its write to the IN_ATTRIB of its chown, seen by this
    script's own inotify watch (so queueing inside the tool counts). Prints median, p90, p99,
    max, the time from the first write until the last file was given back, and the writer's
    own time (the floor of that);
  * idle memory while watching a Go-shaped tree of --dirs directories (VmRSS, VmHWM), and the
    time until the tool is ready (goguardd: READY after its start-up scan; the peer: its
    "Watches established." line).

Run as root from the workspace (creates a throwaway user `ggbench<pid>`, removes it at the
end):  crates/daemon/scripts/bench-self-heal.py [--files 2000] [--dirs 100000] [--runs 3]
Needs: cargo, useradd/userdel, inotifywait (Debian inotify-tools). Touches only the test
user's home and a temp dir. `--no-build` uses target/release as it is; `--tmpfs` puts the
user's ~/.cache on a tmpfs, so the writer runs at full speed whatever the disk's state.
`--bin-dir DIR` takes the binaries from DIR (to compare two builds).
"""

import argparse
import ctypes
import ctypes.util
import os
import pwd
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

IN_ATTRIB = 0x00000004
BIN_DIR = None  # --bin-dir
IN_NONBLOCK = 0o4000

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class AttribWatch:
    """Records the first IN_ATTRIB time (monotonic) of each file name in some directories."""

    def __init__(self, dirs):
        self.fd = libc.inotify_init1(0)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wd = {}
        for d in dirs:
            wd = libc.inotify_add_watch(self.fd, d.encode(), IN_ATTRIB)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {d}")
            self.wd[wd] = d
        self.seen = {}
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            data = os.read(self.fd, 1 << 16)
            now = time.monotonic()
            off = 0
            while off < len(data):
                wd, _mask, _cookie, ln = struct.unpack_from("iIII", data, off)
                name = data[off + 16 : off + 16 + ln].rstrip(b"\0").decode()
                off += 16 + ln
                key = os.path.join(self.wd.get(wd, "?"), name)
                self.seen.setdefault(key, now)

    def close(self):
        self.stop = True
        os.close(self.fd)


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    return 0


WRITER = r"""
import os, sys, time
dirs, files, rnd = sys.argv[1].split(":"), int(sys.argv[2]), sys.argv[3]
out = [repr(time.monotonic())]
for i in range(files):
    path = os.path.join(dirs[i % len(dirs)], f"r{rnd}-{i:06d}-d")
    with open(path, "wb") as f:
        f.write(b"x" * 64)
    out.append(f"{time.monotonic()!r} {path}")
print("\n".join(out))
"""


def burst(gocache, uid, files, rnd):
    """Writes `files` root-owned files across the 256 dirs from a separate process (so this
    script's inotify thread never slows the writer); returns per-file latencies (s), the
    writer's own time and the time from the first write until the last was given back."""
    dirs = [os.path.join(gocache, f"{i:02x}") for i in range(256)]
    watch = AttribWatch(dirs)
    out = subprocess.run([sys.executable, "-c", WRITER, ":".join(dirs), str(files), rnd],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    first = float(out[0])  # the writer's first write began
    written = {}
    for line in out[1:]:
        t, path = line.split(" ", 1)
        written[path] = float(t)  # CLOCK_MONOTONIC: the same clock in every process
    writer = max(written.values()) - first
    deadline = time.monotonic() + 120
    for path in written:
        while os.lstat(path).st_uid != uid:
            if time.monotonic() > deadline:
                watch.close()
                raise SystemExit(f"{path} was never given back")
            time.sleep(0.001)
    time.sleep(0.05)
    watch.close()
    lat = [watch.seen[p] - t for p, t in written.items() if p in watch.seen]
    last = max((watch.seen[p] for p in written if p in watch.seen), default=first)
    missing = len(written) - len(lat)
    if missing:
        print(f"  note: {missing} chowns not seen as IN_ATTRIB (coalesced)", file=sys.stderr)
    return lat, last - first, writer


def make_tree(home, uid, ndirs):
    gocache = os.path.join(home, ".cache/go-build")
    for i in range(256):
        os.makedirs(os.path.join(gocache, f"{i:02x}"), exist_ok=True)
    # A module cache: modules with nested package directories, about ndirs in all.
    mod = os.path.join(home, "go/pkg/mod")
    made = 256
    m = 0
    while made < ndirs:
        base = os.path.join(mod, f"example.com/org{m // 100}/mod{m}@v1.{m % 7}.0")
        for j in range(50):
            os.makedirs(os.path.join(base, f"pkg{j // 10}", f"sub{j}"), exist_ok=True)
        made += 50 + 5 + 1
        m += 1
    sh("chown", "-R", f"{uid}:{uid}", os.path.join(home, ".cache"), os.path.join(home, "go"))
    return gocache


def count_dirs(top):
    return sum(1 for _ in os.walk(top))


def start_goguardd(ws, sandbox, user, port):
    conf = os.path.join(sandbox, "goguard.toml")
    with open(conf, "w") as f:
        f.write(
            f'[daemon]\nsocket = "{sandbox}/run/goguard.sock"\nstate_dir = "{sandbox}/state"\n'
            f'metrics_listen = "127.0.0.1:{port}"\n'
            f'[audit]\nenabled = false\n[discovery]\nusers = ["{user}"]\n'
            f"[scan]\ninterval_secs = 0\n[heal]\nauto = true\n"
        )
    t = time.monotonic()
    proc = subprocess.Popen(
        [f"{BIN_DIR or ws + '/target/release'}/goguardd", "--config", conf],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(sandbox, "goguardd.log"), "w"),
        env={**os.environ, "RUST_LOG": "warn"},
    )
    ctl = [f"{BIN_DIR or ws + '/target/release'}/goguardctl", "--socket", f"{sandbox}/run/goguard.sock"]
    while subprocess.run(ctl + ["status"], capture_output=True).returncode != 0:
        if proc.poll() is not None:
            raise SystemExit("goguardd exited; see " + os.path.join(sandbox, "goguardd.log"))
        time.sleep(0.05)
    return proc, time.monotonic() - t


def start_peer(home, user):
    script = (
        "inotifywait -m -r -q -e create,attrib --format '%w%f' "
        f"'{home}/.cache/go-build' '{home}/go/pkg/mod' | "
        f"while read -r f; do [ \"$(stat -c %u \"$f\")\" = 0 ] && chown -h {user}: \"$f\"; done"
    )
    t = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "-c", script], stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    # `-q` hides "Watches established."; wait until the watch count settles instead.
    inw = None
    last, stable = -1, 0
    while stable < 5:
        time.sleep(0.2)
        out = subprocess.run(["pgrep", "-s", str(proc.pid), "inotifywait"],
                             capture_output=True, text=True).stdout.split()
        if not out:
            continue
        inw = int(out[0])
        n = sum(1 for line in open(f"/proc/{inw}/fdinfo/3") if line.startswith("inotify"))
        stable = stable + 1 if n == last and n > 0 else 0
        last = n
    return proc, inw, time.monotonic() - t - 1.0


def summary(name, lat, totals, writers):
    ms = [x * 1000 for x in lat]
    return (name, statistics.median(ms), percentile(ms, 90), percentile(ms, 99), max(ms),
            statistics.median(totals) * 1000, statistics.median(writers) * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--dirs", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--port", type=int, default=19377)
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--bin-dir", help="take goguardd and goguardctl from here (implies --no-build)")
    ap.add_argument("--tmpfs", action="store_true",
                    help="put the user's ~/.cache on a tmpfs: the writer then does not depend on "
                         "the disk (ext4 creates files ~10x slower for minutes after a mass "
                         "delete, e.g. a previous run's cleanup)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    for tool in ("inotifywait", "useradd", "cargo"):
        if not shutil.which(tool):
            raise SystemExit(f"missing {tool} (inotifywait: apt-get install inotify-tools)")
    ws = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))
    global BIN_DIR
    BIN_DIR = a.bin_dir
    if not a.no_build and not a.bin_dir:
        sh("cargo", "build", "--release", "--bins", cwd=ws)
    user = f"ggbench{os.getpid() % 100000}"
    home = f"/home/{user}"
    subprocess.run(["userdel", "-r", user], capture_output=True)
    sh("useradd", "-m", "-d", home, "-s", "/bin/sh", user)
    sandbox = tempfile.mkdtemp(prefix="goguard-bench.")
    os.chmod(sandbox, 0o755)
    with open("/proc/sys/fs/inotify/max_user_watches") as f:
        old_watches = f.read().strip()
    procs = []
    try:
        with open("/proc/sys/fs/inotify/max_user_watches", "w") as f:
            f.write(str(max(int(old_watches), 4 * a.dirs)))
        uid = pwd.getpwnam(user).pw_uid
        if a.tmpfs:
            os.makedirs(os.path.join(home, ".cache"), exist_ok=True)
            sh("mount", "-t", "tmpfs", "-o", "size=1g", "goguard-bench", os.path.join(home, ".cache"))
        gocache = make_tree(home, uid, a.dirs)
        ndirs = count_dirs(os.path.join(home, ".cache/go-build")) + count_dirs(
            os.path.join(home, "go"))
        print(f"tree: {ndirs} directories; burst: {a.files} root-owned files; runs: {a.runs}")

        rows, mem = [], []
        # goguardd
        proc, ready = start_goguardd(ws, sandbox, user, a.port)
        procs.append(proc)
        time.sleep(2)
        mem.append(("goguardd (release)", ready, proc_status(proc.pid, "VmRSS"),
                    proc_status(proc.pid, "VmHWM")))
        lat, totals, writers = [], [], []
        for r in range(a.runs):
            lt, total, writer = burst(gocache, uid, a.files, f"g{r}")
            lat += lt
            totals.append(total)
            writers.append(writer)
        rows.append(summary("goguardd (release)", lat, totals, writers))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        # the peer
        proc, inw, ready = start_peer(home, user)
        mem.append(("inotifywait -r + chown loop", ready, proc_status(inw, "VmRSS"),
                    proc_status(inw, "VmHWM")))
        lat, totals, writers = [], [], []
        for r in range(a.runs):
            lt, total, writer = burst(gocache, uid, a.files, f"p{r}")
            lat += lt
            totals.append(total)
            writers.append(writer)
        rows.append(summary("inotifywait -r + chown loop", lat, totals, writers))
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

        print("\n| tool | median ms | p90 ms | p99 ms | max ms | burst all healed ms (median) "
              "| writer ms (median) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.0f} "
                  f"| {r[6]:.0f} |")
        g, p = rows
        print(f"\np99 ratio (peer / goguardd): {p[3] / g[3]:.1f}x; "
              f"burst ratio: {p[5] / g[5]:.1f}x")
        print("\n| tool | ready s | VmRSS MiB | VmHWM MiB |")
        print("|---|---:|---:|---:|")
        for m in mem:
            print(f"| {m[0]} | {m[1]:.2f} | {m[2] / 1024:.1f} | {m[3] / 1024:.1f} |")
    except BaseException:
        log = os.path.join(sandbox, "goguardd.log")
        if os.path.exists(log):
            print("goguardd's log (last lines):\n" + "".join(open(log).readlines()[-15:]))
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        with open("/proc/sys/fs/inotify/max_user_watches", "w") as f:
            f.write(old_watches)
        subprocess.run(["umount", os.path.join(home, ".cache")], capture_output=True)
        subprocess.run(["userdel", "-r", user], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(sandbox, ignore_errors=True)


if __name__ == "__main__":
    main()
