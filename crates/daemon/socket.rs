//! The control socket: taken from systemd socket activation, or created so
//! that it never exists with looser permissions than configured.
//!
//! Created sockets are bound inside a fresh private directory (mode 0700)
//! next to the final path, given their mode and group there, and then renamed
//! into place. The rename also replaces a stale socket left by a crashed run
//! atomically. A socket on which another goguardd still answers is never
//! replaced. This module never follows a symlink at the socket path and
//! removes only the socket it created itself.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The listening control socket and how it was obtained.
pub struct ControlSocket {
    pub listener: tokio::net::UnixListener,
    pub path: PathBuf,
    /// True when systemd passed it (LISTEN_FDS); then systemd owns the file.
    pub activated: bool,
    /// (dev, ino) of the file we created, to remove only our own at exit.
    created: Option<(u64, u64)>,
}

/// What to create when the socket is not socket-activated.
pub struct SocketSpec<'a> {
    pub path: &'a Path,
    pub mode: u32,
    /// Group to give the socket (system mode), if it exists.
    pub group: Option<nix::unistd::Gid>,
    /// Mode for the parent directory if goguardd has to create it.
    pub parent_mode: u32,
}

impl ControlSocket {
    /// Takes the activated socket if systemd passed one, else creates it.
    pub fn acquire(spec: &SocketSpec<'_>) -> anyhow::Result<ControlSocket> {
        if let Some(listener) = activated_listener()? {
            return Ok(ControlSocket {
                listener,
                path: spec.path.to_owned(),
                activated: true,
                created: None,
            });
        }
        create(spec)
    }

    /// Removes the socket file if it is still the one this process created.
    pub fn remove_if_ours(&self) {
        let Some((dev, ino)) = self.created else {
            return;
        };
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == dev && meta.ino() == ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "could not remove the socket");
                }
            }
            _ => {}
        }
    }
}

/// The first socket systemd passed, if any.
fn activated_listener() -> anyhow::Result<Option<tokio::net::UnixListener>> {
    let fds: Vec<_> = sd_notify::listen_fds()
        .context("reading LISTEN_FDS")?
        .collect();
    let Some(&fd) = fds.first() else {
        return Ok(None);
    };
    if fds.len() > 1 {
        tracing::warn!(
            count = fds.len(),
            "systemd passed several sockets; using the first"
        );
    }
    // SAFETY: systemd passed this fd to us (LISTEN_PID matched) and nothing
    // else in the process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let kind = nix::sys::socket::getsockopt(&owned, nix::sys::socket::sockopt::SockType)
        .context("the fd systemd passed is not a socket")?;
    if kind != nix::sys::socket::SockType::Stream {
        bail!("the socket systemd passed is not a stream socket (use ListenStream=)");
    }
    let std_listener = StdUnixListener::from(owned);
    std_listener.set_nonblocking(true)?;
    Ok(Some(tokio::net::UnixListener::from_std(std_listener)?))
}

fn create(spec: &SocketSpec<'_>) -> anyhow::Result<ControlSocket> {
    let path = spec.path;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .with_context(|| format!("socket path {} has no directory", path.display()))?;
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(spec.parent_mode)
            .create(parent)
            .with_context(|| format!("creating the socket directory {}", parent.display()))?;
    }
    check_existing(path)?;

    let private = private_dir(parent)?;
    let result = (|| -> anyhow::Result<ControlSocket> {
        let tmp = private.join("goguard.sock");
        let listener = StdUnixListener::bind(&tmp)
            .with_context(|| format!("binding the control socket in {}", private.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(spec.mode))?;
        if let Some(gid) = spec.group {
            nix::unistd::chown(&tmp, None, Some(gid))
                .with_context(|| format!("giving the socket to gid {gid}"))?;
        }
        std::fs::rename(&tmp, path).with_context(|| {
            format!("moving the control socket into place at {}", path.display())
        })?;
        let meta = std::fs::symlink_metadata(path)?;
        listener.set_nonblocking(true)?;
        Ok(ControlSocket {
            listener: tokio::net::UnixListener::from_std(listener)?,
            path: path.to_owned(),
            activated: false,
            created: Some((meta.dev(), meta.ino())),
        })
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Refuses a live socket or a non-socket at `path`; a stale socket is left
/// for the rename to replace.
fn check_existing(path: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; remove it or set daemon.socket to another path",
            path.display()
        );
    }
    match StdUnixStream::connect(path) {
        Ok(_) => bail!(
            "another goguardd is already serving on {}; stop it first (systemctl stop goguardd, \
             or systemctl --user stop goguardd) or set daemon.socket to another path",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing a stale socket left by an earlier run");
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("checking whether {} is live", path.display())),
    }
}

/// A new directory only this process can enter, beside the socket.
fn private_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    let pid = std::process::id();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = parent.join(format!(".goguardd-bind.{pid}.{nanos:x}.{attempt}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("creating a private directory in {}", parent.display())
                });
            }
        }
    }
    bail!(
        "could not create a private directory in {}",
        parent.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &Path) -> SocketSpec<'_> {
        SocketSpec {
            path,
            mode: 0o660,
            group: None,
            parent_mode: 0o755,
        }
    }

    #[tokio::test]
    async fn creates_with_the_configured_mode_and_replaces_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/goguard.sock");
        std::fs::create_dir(dir.path().join("run")).unwrap();
        // A stale socket: bound, then its listener dropped.
        drop(StdUnixListener::bind(&path).unwrap());
        let sock = create(&spec(&path)).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
        // No private directory is left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("run")).unwrap().count(),
            1
        );
        // It accepts connections at the final path.
        StdUnixStream::connect(&path).unwrap();
        sock.remove_if_ours();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn refuses_a_live_socket_and_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("goguard.sock");
        let _live = StdUnixListener::bind(&path).unwrap();
        let err = create(&spec(&path)).err().unwrap().to_string();
        assert!(err.contains("another goguardd is already serving"), "{err}");

        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let err = create(&spec(&file)).err().unwrap().to_string();
        assert!(err.contains("is not a socket"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    #[tokio::test]
    async fn never_follows_a_symlink_at_the_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        let path = dir.path().join("goguard.sock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = create(&spec(&path)).err().unwrap().to_string();
        assert!(err.contains("is not a socket"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
