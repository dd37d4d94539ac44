//! goguardd: keeps Go build caches healthy on this host.
//!
//! Layout of the daemon's sources (crates/daemon/):
//! - `config`: the TOML configuration, validated with line and column errors;
//! - `audit_task`: follows the audit log into the store (`audit_resume`
//!   keeps the crash-safe resume point);
//! - `run`: the supervisor (start order, signals, reload, drain, watchdog);
//!   `schedule`: periodic scans, discovery's inputs, retention and a reload's
//!   rescan, in a task of their own so the supervisor never waits for them;
//! - `socket`: the control socket (socket activation or a safe bind);
//! - `authz`: callers and roles; `connections`: the caps and
//!   deadlines of control-socket connections, and the interceptor that
//!   turns their peer credentials into callers;
//! - `service`: the goguard.v1 gRPC service; `pb`: the one place domain
//!   values become goguard.v1 messages; `api_error`: the one place
//!   errors become gRPC codes; `paging`: reply budgets and
//!   page tokens of its listings. Only `service`, `pb`, `run` and this file
//!   name `goguard_proto`; the modules below return domain values;
//! - `daemon_state`: what the tasks share (status, components, roots);
//!   `events`: the live events the tasks announce (`DaemonEvent`);
//!   `stop`: the stop flag long work polls;
//! - `roots`: cache-root discovery and state; `repair`: scans and repairs of
//!   one root through goguard-fs; `healing`: scans, self-healing and
//!   requested repairs across roots, journaled; `watch_task`: inotify on
//!   every root and self-healing of each changed path;
//! - `policy_follower`: follows SELinux policy loads and boolean changes
//!   (verdicts and expected labels re-read without a restart);
//! - `ledger`: write-ahead journaling of every change (intents before,
//!   outcomes after, intents of an unclean stop settled at the next start);
//!   `journal_writer`: the thread that writes self-healing's outcomes;
//!   `heal_pool`: the self-healing workers;
//! - `hygiene_task`: trims and module-cache verifications; `diagnosis`: the
//!   facts and verdict for each stored denial; `resolve`: targets found by
//!   inode;
//! - `metrics`: Prometheus registry and HTTP endpoint;
//! - `notify`: sd_notify messages; `logging`: tracing setup.
//!
//! The `crate::` imports between these modules form no circle; the `layers`
//! test (tests only) checks it, and that no module below the API layer names
//! `goguard_proto`.
//!
//! Exit codes: 0 after a clean stop or a valid `--check-config`; 1 on a
//! startup failure, an invalid configuration or a task that died.

mod api_error;
mod audit_resume;
mod audit_task;
mod authz;
mod config;
mod connections;
mod daemon_state;
mod diagnosis;
mod events;
mod heal_pool;
mod healing;
mod hygiene_task;
mod journal_writer;
#[cfg(test)]
mod layers;
mod ledger;
mod logging;
mod metrics;
mod notify;
mod paging;
mod pb;
mod policy_follower;
mod repair;
mod resolve;
mod roots;
mod run;
mod schedule;
mod service;
mod socket;
mod stop;
mod watch_task;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use goguard_layout::Mode;

#[derive(Parser, Debug)]
#[command(
    name = "goguardd",
    version,
    about = "Keeps Go build caches healthy: watches owners, modes, ACLs and SELinux labels, \
             follows go-related SELinux denials, repairs and explains them",
    after_help = "As root it guards every user's caches (socket /run/goguard/goguard.sock, \
                  state /var/lib/goguard, config /etc/goguard/goguard.toml). As an ordinary \
                  user it guards only that user's caches (socket $XDG_RUNTIME_DIR/goguard/, \
                  state ~/.local/state/goguard, config ~/.config/goguard/goguard.toml)."
)]
struct Args {
    /// Configuration file. Without it, the mode's default file is read if it
    /// exists, else built-in defaults apply.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Validate the configuration and exit: 0 when valid, 1 when not.
    #[arg(long)]
    check_config: bool,

    /// system: guard the host (the default for root); user: guard only the
    /// invoking user's caches (the default for everyone else).
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    mode: ModeArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Auto,
    System,
    User,
}

/// A user daemon binds its socket in `$XDG_RUNTIME_DIR`: refused when another
/// user owns it or may write to it (goguard_layout::check_runtime_dir). A
/// directory that does not exist yet is created by goguardd itself.
fn check_runtime_dir(dir: &std::path::Path, euid: u32) -> Result<(), goguard_layout::LayoutError> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(dir) {
        Ok(m) => goguard_layout::check_runtime_dir(
            dir,
            goguard_layout::DirFacts {
                is_dir: m.is_dir(),
                is_symlink: m.file_type().is_symlink(),
                owner_uid: m.uid(),
                mode: m.mode() & 0o7777,
            },
            euid,
        ),
        Err(_) => Ok(()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let euid = nix::unistd::geteuid().as_raw();
    let mode = match args.mode {
        ModeArg::Auto => Mode::for_euid(euid),
        ModeArg::System => Mode::System,
        ModeArg::User => Mode::User,
    };
    let env = goguard_layout::Env::from_process(euid);
    let (config_path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => match goguard_layout::default_config(mode, &env) {
            Ok(p) => (p, false),
            Err(e) => {
                eprintln!("goguardd: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let (config, source) = match config::load(&config_path, required) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("goguardd: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check_config {
        if source.loaded {
            println!("{}: configuration is valid", config_path.display());
        } else {
            println!(
                "{}: no such file; goguardd would run on built-in defaults",
                config_path.display()
            );
        }
        return ExitCode::SUCCESS;
    }

    if mode == Mode::User
        && config.daemon.socket.0.is_none()
        && let Some(dir) = &env.xdg_runtime_dir
        && let Err(e) = check_runtime_dir(dir, euid)
    {
        eprintln!("goguardd: {e}");
        return ExitCode::from(1);
    }

    let log = logging::init(&config.daemon.log_level.0);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("goguardd")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("goguardd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let opts = run::StartOptions {
        mode,
        config_path,
        config_required: required,
    };
    match runtime.block_on(run::run(opts, config, source, log)) {
        Ok(()) => {
            tracing::info!("goguardd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One plain line on stderr: journald keeps it, a terminal shows it.
            eprintln!("goguardd: {e:#}");
            ExitCode::from(1)
        }
    }
}
