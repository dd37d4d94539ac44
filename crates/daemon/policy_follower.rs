//! Follows SELinux policy changes while goguardd runs: a `semodule -i`, a
//! `load_policy` or a boolean flipped with `setsebool` bumps the kernel's policy
//! load counter in its status page (`/sys/fs/selinux/status`, the page
//! libselinux's `selinux_status_policyload` reads). When the counter moves,
//! goguardd takes the new policy as it would on SIGHUP, without a restart:
//! denial verdicts consult the newly loaded binary policy, and a rediscovery and
//! scan of every root re-reads file_contexts, so expected labels (and
//! self-healing) follow the policy in force.
//!
//! The page is read every second (20 bytes, a read of selinuxfs: no syscall that
//! can block on a disk). Without SELinux there is no page: the component says so
//! and the task idles. `[selinux] status` points elsewhere for tests.
//!
//! Never changes a file itself; the scan it triggers journals what it repairs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::daemon_state::{ComponentState, DaemonState, SELINUX};

/// Where the kernel exposes its SELinux status page.
pub const KERNEL_STATUS: &str = "/sys/fs/selinux/status";
/// How often the page is read.
const PERIOD: Duration = Duration::from_secs(1);

/// The fields of `struct selinux_kernel_status` goguardd follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelStatus {
    /// Odd while the kernel is updating the page.
    pub sequence: u32,
    pub enforcing: bool,
    /// Policy loads (and boolean commits) since boot.
    pub policyload: u32,
}

/// Parses the status page (native-endian u32s: version, sequence, enforcing,
/// policyload, deny_unknown). `None` for a short page, an unknown layout version or
/// a page caught mid-update (odd sequence: read it again).
pub fn parse_status(page: &[u8]) -> Option<KernelStatus> {
    let word = |i: usize| -> Option<u32> {
        let b = page.get(i * 4..i * 4 + 4)?;
        Some(u32::from_ne_bytes(b.try_into().ok()?))
    };
    let version = word(0)?;
    if version != 1 {
        return None;
    }
    let sequence = word(1)?;
    if sequence % 2 == 1 {
        return None;
    }
    Some(KernelStatus {
        sequence,
        enforcing: word(2)? != 0,
        policyload: word(3)?,
    })
}

/// What changed between two readings that goguardd must act on.
pub fn policy_changed(before: &KernelStatus, now: &KernelStatus) -> bool {
    before.policyload != now.policyload
}

fn read_status(path: &Path) -> std::io::Result<Option<KernelStatus>> {
    use std::io::Read;
    let mut page = [0u8; 20];
    let mut f = std::fs::File::open(path)?;
    let mut got = 0;
    while got < page.len() {
        let n = f.read(&mut page[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(parse_status(&page[..got]))
}

/// The status page this daemon follows.
pub fn status_path(state: &DaemonState) -> PathBuf {
    state
        .config()
        .selinux
        .status
        .0
        .clone()
        .unwrap_or_else(|| PathBuf::from(KERNEL_STATUS))
}

/// Runs until `stop` turns true.
pub async fn run(state: Arc<DaemonState>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<KernelStatus> = None;
    let mut followed = 0u64;
    let mut missing_reported = false;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let path = status_path(&state);
        let now = match read_status(&path) {
            Ok(Some(s)) => s,
            // Mid-update or an unknown layout: the next tick reads it again.
            Ok(None) => continue,
            Err(e) => {
                if !missing_reported {
                    missing_reported = true;
                    state.components.set(
                        SELINUX,
                        ComponentState::Disabled,
                        format!(
                            "no SELinux status page at {} ({e}): policy loads are not followed",
                            path.display()
                        ),
                    );
                }
                last = None;
                continue;
            }
        };
        missing_reported = false;
        let Some(before) = last.replace(now) else {
            state.components.set(
                SELINUX,
                ComponentState::Running,
                detail(&now, &path, followed),
            );
            continue;
        };
        if !policy_changed(&before, &now) {
            if before.enforcing != now.enforcing {
                tracing::info!(enforcing = now.enforcing, "SELinux mode changed");
                state.components.set(
                    SELINUX,
                    ComponentState::Running,
                    detail(&now, &path, followed),
                );
            }
            continue;
        }
        followed += 1;
        state.metrics.policy_loads.inc();
        tracing::info!(
            policyload = now.policyload,
            "SELinux policy changed (policy load or boolean): reloading verdicts and expected labels"
        );
        follow_policy_load(&state).await;
        state.components.set(
            SELINUX,
            ComponentState::Running,
            detail(&now, &path, followed),
        );
    }
}

/// The component's detail: the mode, the kernel's policy-load count as last followed, the
/// page and how many changes were followed.
fn detail(now: &KernelStatus, path: &Path, followed: u64) -> String {
    format!(
        "{}, policy load {} (following {}; {followed} changes followed since start)",
        if now.enforcing {
            "enforcing"
        } else {
            "permissive"
        },
        now.policyload,
        path.display()
    )
}

/// Takes the policy in force: a new diagnoser, then a rediscovery and scan of every
/// root with the file_contexts now installed.
async fn follow_policy_load(state: &Arc<DaemonState>) {
    let config = state.config();
    match tokio::task::spawn_blocking(move || crate::diagnosis::Diagnoser::load(&config)).await {
        Ok(diagnoser) => {
            *state.diagnoser.write().expect("diagnoser lock") = Arc::new(diagnoser);
        }
        Err(e) => tracing::warn!(error = %e, "reloading the policy for verdicts failed"),
    }
    if let Err(e) = crate::healing::rescan_all(state).await {
        tracing::warn!(error = %format!("{e:#}"), "rescan after a policy load failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(version: u32, sequence: u32, enforcing: u32, policyload: u32) -> Vec<u8> {
        [version, sequence, enforcing, policyload, 0]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect()
    }

    #[test]
    fn a_status_page_is_read_field_by_field() {
        assert_eq!(
            parse_status(&page(1, 4, 1, 7)),
            Some(KernelStatus {
                sequence: 4,
                enforcing: true,
                policyload: 7
            })
        );
        assert!(!parse_status(&page(1, 0, 0, 0)).unwrap().enforcing);
    }

    #[test]
    fn a_page_mid_update_short_or_of_another_version_is_not_trusted() {
        assert_eq!(parse_status(&page(1, 5, 1, 7)), None, "odd sequence");
        assert_eq!(parse_status(&page(2, 4, 1, 7)), None, "unknown version");
        assert_eq!(parse_status(&page(1, 4, 1, 7)[..12]), None, "short");
        assert_eq!(parse_status(&[]), None);
    }

    #[test]
    fn only_a_new_policy_load_counts_as_a_change() {
        let a = parse_status(&page(1, 4, 1, 7)).unwrap();
        let mode = parse_status(&page(1, 6, 0, 7)).unwrap();
        let load = parse_status(&page(1, 8, 1, 8)).unwrap();
        assert!(!policy_changed(&a, &a));
        assert!(
            !policy_changed(&a, &mode),
            "setenforce is not a policy change"
        );
        assert!(policy_changed(&a, &load));
    }
}
