//! Finding and connecting to goguardd's control socket.
//!
//! Order: `--socket`, then `GOGUARD_SOCKET`, then the sockets goguardd itself
//! would use (the caller's own user daemon first, then the system daemon;
//! see `goguard_layout::client_socket_candidates`). A daemon that cannot be
//! reached is reported in one line naming the socket and what to check.

use std::path::{Path, PathBuf};
use std::time::Duration;

use goguard_proto::v1::go_guard_client::GoGuardClient;
use tonic::transport::{Channel, Endpoint};

/// A failure to reach the daemon, rendered as one actionable line.
#[derive(Debug)]
pub struct Unreachable {
    pub tried: Vec<(PathBuf, String)>,
    /// Set when the user's runtime directory is unsafe: nothing was tried.
    pub refused: Option<goguard_layout::LayoutError>,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = &self.refused {
            return write!(f, "{}", crate::render::term_safe(&e.to_string()));
        }
        let sockets: Vec<String> = self
            .tried
            .iter()
            .map(|(p, why)| {
                format!(
                    "{} ({})",
                    crate::render::term_safe(&p.display().to_string()),
                    crate::render::term_safe(why)
                )
            })
            .collect();
        write!(
            f,
            "cannot reach goguardd at {}; is it running? check `systemctl status goguardd` \
             (or `systemctl --user status goguardd`), or name the socket with --socket or \
             GOGUARD_SOCKET",
            sockets.join(", ")
        )
    }
}

/// Where to look for the daemon.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_owned()];
    }
    let euid = nix::unistd::geteuid().as_raw();
    goguard_layout::client_socket_candidates(&goguard_layout::Env::from_process(euid))
}

/// The user's runtime directory, when goguardctl would look for the user's own
/// daemon in it, refused if another user could have put a socket there.
fn check_runtime_dir(explicit: Option<&Path>) -> Result<(), goguard_layout::LayoutError> {
    let euid = nix::unistd::geteuid().as_raw();
    if explicit.is_some() || euid == 0 {
        return Ok(());
    }
    let env = goguard_layout::Env::from_process(euid);
    let Some(dir) = env.xdg_runtime_dir else {
        return Ok(());
    };
    match std::fs::symlink_metadata(&dir) {
        Ok(m) => goguard_layout::check_runtime_dir(&dir, dir_facts(&m), euid),
        // Nothing there: no daemon to trust, the system socket is tried.
        Err(_) => Ok(()),
    }
}

/// `lstat`'s answer as the layout's facts.
pub fn dir_facts(m: &std::fs::Metadata) -> goguard_layout::DirFacts {
    use std::os::unix::fs::MetadataExt;
    goguard_layout::DirFacts {
        is_dir: m.is_dir(),
        is_symlink: m.file_type().is_symlink(),
        owner_uid: m.uid(),
        mode: m.mode() & 0o7777,
    }
}

/// Connects to the first candidate that answers.
pub async fn connect(
    explicit: Option<&Path>,
) -> Result<(GoGuardClient<Channel>, PathBuf), Unreachable> {
    if let Err(e) = check_runtime_dir(explicit) {
        return Err(Unreachable {
            tried: Vec::new(),
            refused: Some(e),
        });
    }
    let mut tried = Vec::new();
    for path in candidates(explicit) {
        match connect_one(&path).await {
            Ok(channel) => return Ok((GoGuardClient::new(channel), path)),
            Err(why) => tried.push((path, why)),
        }
    }
    Err(Unreachable {
        tried,
        refused: None,
    })
}

async fn connect_one(path: &Path) -> Result<Channel, String> {
    if !path.exists() {
        return Err("no such socket".into());
    }
    let endpoint = Endpoint::from_shared(format!("unix://{}", path.display()))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5));
    endpoint.connect().await.map_err(|e| {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg = s.to_string();
            source = s.source();
        }
        msg
    })
}
