//! Test harness: a real `goguardd` process on a temp socket and temp state
//! directory, and the real `goguardctl` to talk to it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const GOGUARDD: &str = env!("CARGO_BIN_EXE_goguardd");
pub const GOGUARDCTL: &str = env!("CARGO_BIN_EXE_goguardctl");

/// How long a test waits for the daemon before failing. Generous: CI
/// machines are small and debug binaries slow.
pub const STARTUP: Duration = Duration::from_secs(30);

/// A temp directory laid out for one daemon: `run/` for the socket,
/// `state/`, and `goguard.toml`.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("goguard-test.")
            .tempdir()
            .unwrap();
        // Other users (the unprivileged-client tests) must reach the socket.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run/goguard.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("goguard.toml")
    }

    /// Writes a config whose `[daemon]` table points into the sandbox, plus
    /// `daemon_extra` lines inside `[daemon]` (which may open later tables).
    /// The audit follower and user discovery are off unless `daemon_extra`
    /// configures `[audit]` / `[discovery]`, so tests never read the host's
    /// audit log nor touch the host's (or other tests') users' caches.
    pub fn write_config(&self, daemon_extra: &str) {
        let mut defaults = String::new();
        if !daemon_extra.contains("[audit]") {
            defaults.push_str("[audit]\nenabled = false\n");
        }
        // Other tests' users must never be healed by this daemon.
        if !daemon_extra.contains("[discovery]") {
            defaults.push_str("[discovery]\nenabled = false\n");
        }
        let text = format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n{daemon_extra}\n{defaults}",
            self.socket().display(),
            self.state_dir().display()
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Starts goguardd with this sandbox's config and waits until
    /// `goguardctl status` answers.
    pub fn start(&self) -> Daemon {
        let daemon = self.spawn(&[]);
        daemon.wait_ready(&self.socket());
        daemon
    }

    /// Starts goguardd without waiting; `env` is added to its environment.
    pub fn spawn(&self, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(GOGUARDD);
        cmd.arg("--config").arg(self.config_path());
        self.spawn_command(cmd, env)
    }

    pub fn spawn_command(&self, mut cmd: Command, env: &[(&str, &str)]) -> Daemon {
        let log = self.path().join(format!("goguardd.{}.log", unique()));
        let stderr = std::fs::File::create(&log).unwrap();
        cmd.env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("goguardd starts");
        Daemon {
            child: Some(child),
            log,
        }
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A running goguardd; killed when dropped.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `goguardctl status` answers on `socket`; panics with the
    /// daemon's log if it exits or never answers.
    pub fn wait_ready(&self, socket: &Path) {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Some(child) = &self.child {
                // try_wait needs &mut; poll the pid's existence instead.
                if !Path::new(&format!("/proc/{}", child.id())).exists() {
                    panic!("goguardd exited during startup:\n{}", self.log_text());
                }
            }
            if socket.exists() && ctl(socket, &["status", "--json"]).status.code() == Some(0) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "goguardd did not answer on {} in time:\n{}",
            socket.display(),
            self.log_text()
        );
    }

    /// Waits until the control socket exists (bound before the first scan; nothing
    /// answers on it yet), panicking with the daemon's log after [`STARTUP`].
    pub fn wait_socket_bound(&self, socket: &Path) {
        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < STARTUP,
                "no socket:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// Waits for the process to exit (up to `timeout`), returning its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!("goguardd did not exit in {timeout:?}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs goguardctl against `socket`.
pub fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(GOGUARDCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("GOGUARD_SOCKET")
        .env("NO_COLOR", "1")
        .output()
        .expect("goguardctl runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A command's stdout as JSON, after checking its exit code (both streams shown on failure).
pub fn json_with_code(out: &Output, code: i32) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(out),
        stderr(out)
    );
    json(out)
}

/// A command's stdout as JSON (both streams shown when it is not).
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

/// `goguardctl status --json`, parsed.
pub fn status_json(socket: &Path) -> serde_json::Value {
    let out = ctl(socket, &["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "status failed: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

/// A plain HTTP/1.0 GET, returning (status line, headers, body).
pub fn http_get(addr: &str, path: &str, accept: Option<&str>) -> (String, String, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

/// Finds a program or fails naming the Debian package that provides it.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is not installed: install the Debian package `{package}` (tests/run-all.sh does)"
    );
}

/// `s` with the characters that are special in a POSIX extended regex escaped (for
/// file_contexts lines naming a test directory).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether the test runs as root. When not, it says why root is needed and returns false
/// (the test then returns) — unless `GOGUARD_TESTS_STRICT=1` (set by `tests/run-all.sh`),
/// where a test that cannot run is a failure, never a silent pass.
pub fn require_root(why: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("GOGUARD_TESTS_STRICT").is_none_or(|v| v != "1"),
        "needs root ({why}) and GOGUARD_TESTS_STRICT=1: run tests/run-all.sh as root"
    );
    eprintln!("skipped: needs root ({why}); tests/run-all.sh runs it as root");
    false
}

/// Fails the test unless it runs as root, whatever the environment (for tests that have no
/// meaningful unprivileged part).
pub fn assert_root(why: &str) {
    assert!(nix::unistd::geteuid().is_root(), "{why}");
}

/// A tmpfs mounted for a test; unmounted (lazily, so a test's open fds never keep it)
/// when dropped.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// Mounts a tmpfs of `size` (mount's syntax: `24k`, `1m`) with mode 0755 at `at`, made
/// first if missing.
pub fn mount_tmpfs(at: &Path, size: &str) -> Unmount {
    std::fs::create_dir_all(at).unwrap();
    let out = Command::new(require_tool("mount", "mount"))
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0755"),
            "tmpfs",
        ])
        .arg(at)
        .output()
        .unwrap();
    assert!(out.status.success(), "mount tmpfs: {}", stderr(&out));
    Unmount(at.to_owned())
}
