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
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// Connects to the first candidate that answers.
pub async fn connect(
    explicit: Option<&Path>,
) -> Result<(GoGuardClient<Channel>, PathBuf), Unreachable> {
    let mut tried = Vec::new();
    for path in candidates(explicit) {
        match connect_one(&path).await {
            Ok(channel) => return Ok((GoGuardClient::new(channel), path)),
            Err(why) => tried.push((path, why)),
        }
    }
    Err(Unreachable { tried })
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
