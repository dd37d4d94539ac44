//! Throwaway login users for tests that need an unprivileged user with a home (created with
//! useradd, removed with userdel on drop), and `go build` as such a user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::*;

/// A throwaway login user with a home, removed on drop.
pub(crate) struct TestUser {
    pub(crate) name: String,
    pub(crate) home: PathBuf,
}

impl TestUser {
    pub(crate) fn create(tag: &str) -> TestUser {
        let name = format!("gg{tag}{}", std::process::id() % 100_000);
        let home = PathBuf::from(format!("/home/{name}"));
        let _ = Command::new("userdel").args(["-r", &name]).output();
        // Tests run in parallel: another useradd/userdel may hold the passwd lock.
        let mut tries = 0;
        loop {
            let out = Command::new(require_tool("useradd", "passwd"))
                .args(["-m", "-d"])
                .arg(&home)
                .args(["-s", "/bin/sh", &name])
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            tries += 1;
            assert!(
                tries < 20 && stderr(&out).contains("lock"),
                "useradd failed: {}",
                stderr(&out)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        TestUser { name, home }
    }

    /// Gives `path` and everything beneath it to this user (`chown -R user: path`).
    pub(crate) fn give(&self, path: &Path) {
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{0}:{0}", self.name))
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "chown: {}", stderr(&out));
    }

    /// The user's GOCACHE (`~/.cache/go-build`) with these subdirectories, made by root
    /// and given to the user.
    pub(crate) fn gocache_with(&self, dirs: &[&str]) -> PathBuf {
        let gocache = self.home.join(".cache/go-build");
        for d in dirs {
            std::fs::create_dir_all(gocache.join(d)).unwrap();
        }
        self.give(&self.home.join(".cache"));
        gocache
    }

    pub(crate) fn uid(&self) -> u32 {
        nix::unistd::User::from_name(&self.name)
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    }

    /// A tiny module in the user's home, owned by the user.
    pub(crate) fn project(&self) -> PathBuf {
        let dir = self.home.join("src/hello");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("go.mod"), "module example.com/hello\n\ngo 1.19\n").unwrap();
        std::fs::write(
            dir.join("main.go"),
            "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
        )
        .unwrap();
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{0}:{0}", self.name))
            .arg(self.home.join("src"))
            .output()
            .unwrap();
        assert!(out.status.success());
        dir
    }

    /// `go build` as this user, in their own environment.
    pub(crate) fn go_build(&self, project: &Path) -> Output {
        use std::os::unix::process::CommandExt;
        let gid = nix::unistd::User::from_name(&self.name)
            .unwrap()
            .unwrap()
            .gid;
        go_build_command(project, &self.home, &[])
            .uid(self.uid())
            .gid(gid.as_raw())
            .output()
            .unwrap()
    }

    pub(crate) fn ctl_as(&self, socket: &Path, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", &self.name, "--"])
            .arg(GOGUARDCTL)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").args(["-r", &self.name]).output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// `go build [extra] -o /dev/null .` in `project` with a clean environment
/// whose HOME is `home` (no network, the installed toolchain only).
pub(crate) fn go_build_command(project: &Path, home: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(require_tool("go", "golang-go"));
    c.current_dir(project)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .arg("build")
        .args(extra)
        .args(["-o", "/dev/null", "."]);
    c
}
