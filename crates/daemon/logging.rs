//! Logging through `tracing`: human output in a terminal, journald-friendly
//! output (no timestamps, no colours) when systemd started us, which it says
//! by setting `JOURNAL_STREAM`. The filter comes from `RUST_LOG` when set,
//! else from `daemon.log_level`, and a reload can change the latter.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// Changes the log filter after start (on a config reload).
pub struct LogControl {
    handle: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    /// True when RUST_LOG was set: it wins over the config.
    from_env: bool,
}

impl LogControl {
    pub fn set_level(&self, directive: &str) {
        if self.from_env {
            return;
        }
        match EnvFilter::builder().parse(directive) {
            Ok(filter) => {
                if let Err(e) = self.handle.reload(filter) {
                    tracing::warn!(error = %e, "could not change the log filter");
                }
            }
            Err(e) => tracing::warn!(error = %e, "invalid log filter kept out"),
        }
    }
}

pub fn init(directive: &str) -> LogControl {
    let env = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
    let from_env = env.is_some();
    let filter = env
        .as_deref()
        .and_then(|s| EnvFilter::builder().parse(s).ok())
        .unwrap_or_else(|| EnvFilter::builder().parse_lossy(directive));
    let (filter, handle) = reload::Layer::new(filter);
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let registry = tracing_subscriber::registry().with(filter);
    if journald {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .without_time()
                    .with_ansi(false)
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        use std::io::IsTerminal;
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .init();
    }
    LogControl { handle, from_env }
}
