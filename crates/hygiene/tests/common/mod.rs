//! Shared helpers of the real-Go tests: a `go` command with a sealed environment (temp HOME,
//! GOCACHE, GOMODCACHE; no network, no user go env file), and a module proxy directory
//! builder. Must never touch the invoking user's caches or reach the network.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A sealed Go environment rooted in a temp directory.
pub struct GoEnv {
    pub home: PathBuf,
    pub gocache: PathBuf,
    pub gomodcache: PathBuf,
    pub proxy: Option<PathBuf>,
}

impl GoEnv {
    pub fn new(base: &Path) -> GoEnv {
        let env = GoEnv {
            home: base.join("home"),
            gocache: base.join("gocache"),
            gomodcache: base.join("gomodcache"),
            proxy: None,
        };
        for d in [&env.home, &env.gocache, &env.gomodcache] {
            std::fs::create_dir_all(d).unwrap();
        }
        env
    }

    /// `go ARGS` in `dir`, output captured.
    pub fn go(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new("go");
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GOCACHE", &self.gocache)
            .env("GOMODCACHE", &self.gomodcache)
            .env("GOPATH", self.home.join("go"))
            .env("GOENV", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("GOSUMDB", "off")
            .env("CGO_ENABLED", "0")
            .args(args);
        match &self.proxy {
            Some(p) => cmd.env("GOPROXY", format!("file://{}", p.display())),
            None => cmd.env("GOPROXY", "off"),
        };
        cmd.output().expect("run go")
    }

    /// `go ARGS`, which must succeed.
    pub fn go_ok(&self, dir: &Path, args: &[&str]) -> Output {
        let out = self.go(dir, args);
        assert!(
            out.status.success(),
            "go {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Writes `files` (relative path → content) under `dir`.
pub fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

/// Go's module path escaping, written out independently for the tests.
pub fn esc(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                format!("!{}", c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A module zip as the proxy protocol serves it: entries `module@version/<file>`, deflated.
pub fn module_zip(module: &str, version: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        w.start_file(format!("{module}@{version}/{name}"), opts)
            .unwrap();
        w.write_all(content).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Adds `module@version` to a `file://` proxy directory: `@v/list`, `.info`, `.mod`, `.zip`.
/// `files` must contain `go.mod`.
pub fn add_to_proxy(proxy: &Path, module: &str, version: &str, files: &[(&str, Vec<u8>)]) {
    let dir = proxy.join(esc(module)).join("@v");
    std::fs::create_dir_all(&dir).unwrap();
    let ev = esc(version);
    let mut list = std::fs::read_to_string(dir.join("list")).unwrap_or_default();
    list.push_str(version);
    list.push('\n');
    std::fs::write(dir.join("list"), list).unwrap();
    std::fs::write(
        dir.join(format!("{ev}.info")),
        format!("{{\"Version\":\"{version}\",\"Time\":\"2024-01-01T00:00:00Z\"}}"),
    )
    .unwrap();
    let gomod = files.iter().find(|(n, _)| *n == "go.mod").expect("go.mod");
    std::fs::write(dir.join(format!("{ev}.mod")), &gomod.1).unwrap();
    std::fs::write(
        dir.join(format!("{ev}.zip")),
        module_zip(module, version, files),
    )
    .unwrap();
}
