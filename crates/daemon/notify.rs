//! What goguardd tells systemd: readiness, status lines, watchdog pings,
//! reloads and stopping (sd_notify(3)).
//!
//! Without `NOTIFY_SOCKET` every call is a no-op, so the daemon runs the same
//! under systemd, in a terminal and in tests. A failed notification is logged
//! and never stops the daemon.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Sent before a reload starts; `ready` follows when it is done.
pub fn reloading() {
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading configuration"),
    ];
    // systemd 253+ wants the monotonic time with RELOADING=1 (Type=notify-reload).
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining and stopping"),
    ]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The interval to ping the watchdog at: half of `WatchdogSec`, when set.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|d| d / 2)
        .filter(|d| !d.is_zero())
}
