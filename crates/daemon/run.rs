//! The supervisor: starts every task in order, tells systemd when the daemon
//! serves, and handles SIGHUP (reload), SIGTERM/SIGINT (drain and stop) and
//! the watchdog. If a task dies, the daemon stops with an error so systemd
//! restarts it (Restart=on-failure).
//!
//! Start order: config → logging → state directory and instance lock →
//! metrics → control socket → gRPC server → self-check over the socket →
//! READY=1.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use goguard_layout::Mode;
use goguard_proto::v1::go_guard_server::GoGuardServer;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::audit_task;
use crate::authz::Authorizer;
use crate::config::{self, Config, ConfigSource};
use crate::connections::{self, Authenticate};
use crate::daemon_state::{
    AUDIT, CONTROL_SOCKET, ComponentState, Components, DaemonState, METRICS, ReloadHistory, STORE,
};
use crate::logging::LogControl;
use crate::metrics::{self, Metrics};
use crate::notify;
use crate::service::GoGuardService;
use crate::socket::{ControlSocket, SocketSpec};

/// How goguardd was asked to start.
pub struct StartOptions {
    pub mode: Mode,
    pub config_path: PathBuf,
    /// True when the admin named the file: then it must exist.
    pub config_required: bool,
}

/// Runs the daemon until it is told to stop. Errors are startup failures or
/// a task that died; the caller prints them and exits non-zero.
pub async fn run(
    opts: StartOptions,
    config: Config,
    source: ConfigSource,
    log: LogControl,
) -> anyhow::Result<()> {
    let started = Instant::now();
    // Signals are handled from the first moment: SIGTERM/SIGINT set the stop flag (every
    // scan, repair and walk checks it between entries) and end the supervisor; a SIGHUP
    // during start-up waits in its stream and reloads once serving.
    let mut hup = signal(SignalKind::hangup())?;
    let mut stop_requested = stop_on_signal()?;
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let euid = nix::unistd::geteuid().as_raw();
    let env = goguard_layout::Env::from_process(euid);
    let socket_path = match &config.daemon.socket.0 {
        Some(p) => p.clone(),
        None => goguard_layout::default_socket(opts.mode, &env)?,
    };
    let state_dir = match &config.daemon.state_dir.0 {
        Some(p) => p.clone(),
        None => goguard_layout::default_state_dir(opts.mode, &env)?,
    };
    let private_mode = if opts.mode == Mode::System {
        0o750
    } else {
        0o700
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(private_mode)
        .create(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    let _lock = InstanceLock::take(&state_dir)?;
    raise_fd_limit(&config);

    let authorizer = Authorizer::new(&config.daemon.admin_group.0);
    if !authorizer.admin_group_exists() {
        tracing::warn!(
            group = authorizer.admin_group(),
            "the admin group does not exist; only root is an admin (create it with systemd-sysusers or groupadd)"
        );
    }
    let admin_gid = Authorizer::gid_of(authorizer.admin_group());
    let authorizer = Arc::new(RwLock::new(authorizer));

    let metrics = Arc::new(Metrics::new(started, started_unix));
    let components = Components::new(metrics.clone());
    components.set(
        CONTROL_SOCKET,
        ComponentState::Starting,
        socket_path.display().to_string(),
    );

    let store_path = state_dir.join("goguard.db");
    // Commits never checkpoint the WAL (a checkpoint waits for the disk): the journal
    // writer thread does, through its own connection (see journal_writer).
    let store = goguard_store::Store::open_with(
        &store_path,
        &goguard_store::StoreOptions {
            checkpoint_on_commit: false,
            ..Default::default()
        },
    )
    .with_context(|| format!("opening the store {}", store_path.display()))?;
    let checkpointer = store
        .checkpointer()
        .with_context(|| format!("opening the store {}", store_path.display()))?;
    let store = Arc::new(Mutex::new(store));
    let (events, _) = tokio::sync::broadcast::channel(1024);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut metrics_task = MetricsTask::start(
        config.daemon.metrics_address(opts.mode),
        &metrics,
        &components,
    )
    .await?;

    let socket = ControlSocket::acquire(&SocketSpec {
        path: &socket_path,
        mode: config.daemon.socket_mode.0,
        group: if opts.mode == Mode::System {
            admin_gid
        } else {
            None
        },
        parent_mode: if opts.mode == Mode::System {
            0o755
        } else {
            0o700
        },
    })?;
    let check_path = if socket.activated {
        socket
            .listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_owned))
            .unwrap_or_else(|| socket_path.clone())
    } else {
        socket_path.clone()
    };

    let diagnoser = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || crate::diagnosis::Diagnoser::load(&config)).await?
    };
    let state = Arc::new(DaemonState {
        started,
        started_unix,
        mode: opts.mode,
        source: RwLock::new(source),
        config: RwLock::new(Arc::new(config)),
        socket_path: socket_path.clone(),
        socket_activated: socket.activated,
        state_dir: state_dir.clone(),
        metrics: metrics.clone(),
        metrics_address: RwLock::new(metrics_task.addr),
        authorizer: authorizer.clone(),
        components,
        reload: Mutex::new(ReloadHistory::default()),
        store: store.clone(),
        journal: crate::journal_writer::JournalWriter::start(store.clone(), Some(checkpointer))?,
        unsettled: Mutex::new(unsettled_intents(&store)),
        events,
        caches: RwLock::new(crate::roots::CacheState::default()),
        roots_generation: tokio::sync::watch::channel(0).0,
        roots_ready: tokio::sync::watch::channel(false).0,
        loop_guard: Mutex::new(restored_loop_guard(&store, started)),
        modules_bad: Mutex::new(Default::default()),
        caps_unmet: Mutex::new(Default::default()),
        diagnoser: RwLock::new(Arc::new(diagnoser)),
    });
    state.components.set(
        STORE,
        ComponentState::Running,
        store_path.display().to_string(),
    );

    let listener = clone_listener(&socket.listener)?;
    let mut server = tokio::spawn(serve_grpc(listener, state.clone(), stop_rx.clone()));
    // The first scan (and self-heal) of every root, before the audit follower
    // starts (it needs the roots to judge denials) and before READY=1.
    state.components.set(
        crate::daemon_state::SCAN,
        ComponentState::Starting,
        "first scan",
    );
    if let Err(e) = crate::healing::rescan_all(&state).await {
        tracing::warn!(error = %format!("{e:#}"), "the first scan failed");
    }
    if crate::stop::stopping() {
        // Stopped during the first scan: what it changed is journaled (rescan_all journals
        // the partial walk); nothing else was started.
        tracing::info!("stopping during start-up");
        notify::stopping();
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut server).await;
        let st = state.clone();
        let _ = tokio::task::spawn_blocking(move || st.journal.flush()).await;
        metrics_task.stop();
        socket.remove_if_ours();
        return Ok(());
    }
    // Calls that judge paths against the roots waited for this (the socket
    // serves from the start, so `status` answers while the first scan runs).
    state.roots_ready.send_replace(true);
    state
        .components
        .set(crate::daemon_state::WATCHER, ComponentState::Starting, "");
    let mut watcher = tokio::spawn(crate::watch_task::run(state.clone(), stop_rx.clone()));
    // Trims and module-cache verifications on the [hygiene] schedules; ends on stop.
    let mut hygiene = tokio::spawn(crate::hygiene_task::run(state.clone(), stop_rx.clone()));
    // SELinux policy loads and boolean changes, followed without a restart.
    state
        .components
        .set(crate::daemon_state::SELINUX, ComponentState::Starting, "");
    let mut follower = tokio::spawn(crate::policy_follower::run(state.clone(), stop_rx.clone()));
    let audit_config = state.config().audit.clone();
    let mut audit = if audit_config.enabled_in(opts.mode) {
        state.components.set(
            AUDIT,
            ComponentState::Starting,
            audit_config.log.0.display().to_string(),
        );
        let settings = audit_task::AuditSettings {
            log: audit_config.log.0.clone(),
            go_tools: audit_config.go_tools.0.clone(),
            event_timeout: Duration::from_millis(audit_config.event_timeout_ms.0),
        };
        Some(tokio::spawn(audit_task::run(
            settings,
            store.clone(),
            state.clone(),
            state.events.clone(),
            stop_rx.clone(),
        )))
    } else {
        state.components.set(
            AUDIT,
            ComponentState::Disabled,
            "off ([audit] enabled; off by default in user mode)",
        );
        None
    };
    // Periodic scans, discovery's inputs, retention and a reload's rescan: in their own task,
    // so that nothing here waits for a scan.
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(8);
    let mut schedule = tokio::spawn(crate::schedule::run(
        state.clone(),
        stop_rx.clone(),
        reload_rx,
    ));
    wait_until_serving(&check_path).await?;
    state.components.set(
        CONTROL_SOCKET,
        ComponentState::Running,
        format!(
            "{}{}",
            socket_path.display(),
            if socket.activated {
                " (socket-activated)"
            } else {
                ""
            }
        ),
    );
    let summary = format!(
        "serving on {} ({} mode){}",
        socket_path.display(),
        opts.mode.as_str(),
        metrics_task
            .addr
            .map(|a| format!(", metrics on {a}"))
            .unwrap_or_default()
    );
    tracing::info!(
        socket = %socket_path.display(),
        mode = opts.mode.as_str(),
        state_dir = %state_dir.display(),
        config = %state.source.read().expect("source lock").path.display(),
        "goguardd is ready"
    );
    notify::ready(&summary);

    let watchdog = notify::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));

    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = hup.recv() => {
                notify::reloading();
                match reload(&opts, &state, &mut metrics_task, &log).await {
                    Ok(()) => {
                        // The whole config applies: roots added or dropped take effect once
                        // the schedule task has run discovery again; it sends READY=1. With
                        // its queue full, a queued rediscovery reads this config too.
                        let reloaded = crate::schedule::Reloaded { summary: summary.clone() };
                        if reload_tx.try_send(reloaded).is_err() {
                            tracing::info!("a rediscovery is already queued; it applies this reload too");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reload failed; the previous configuration stays in force");
                        notify::ready(&format!("reload failed, previous configuration kept: {e}"));
                    }
                }
            }
            _ = stop_requested.changed() => break Ok(()),
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify::watchdog(),
            ended = &mut watcher => {
                break match ended {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the watcher stopped unexpectedly")),
                    Ok(Err(e)) => Err(e.context("the watcher failed")),
                    Err(e) => Err(anyhow::anyhow!("the watcher task panicked: {e}")),
                };
            }
            ended = async { audit.as_mut().expect("guarded").await }, if audit.is_some() => {
                audit = None;
                break match ended {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the audit follower stopped unexpectedly")),
                    Ok(Err(e)) => Err(e.context("the audit follower failed")),
                    Err(e) => Err(anyhow::anyhow!("the audit follower task panicked: {e}")),
                };
            }
            // These return only once asked to stop: ending earlier is a bug, and a daemon
            // that stopped scanning, trimming or following the policy must not look healthy.
            ended = &mut schedule => {
                break Err(match ended {
                    Ok(()) => anyhow::anyhow!("the periodic work task stopped unexpectedly"),
                    Err(e) => anyhow::anyhow!("the periodic work task panicked: {e}"),
                });
            }
            ended = &mut hygiene => {
                break Err(match ended {
                    Ok(()) => anyhow::anyhow!("the hygiene task stopped unexpectedly"),
                    Err(e) => anyhow::anyhow!("the hygiene task panicked: {e}"),
                });
            }
            ended = &mut follower => {
                break Err(match ended {
                    Ok(()) => anyhow::anyhow!("the SELinux policy follower stopped unexpectedly"),
                    Err(e) => anyhow::anyhow!("the SELinux policy follower panicked: {e}"),
                });
            }
            ended = &mut server => {
                break match ended {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the gRPC server stopped unexpectedly")),
                    Ok(Err(e)) => Err(e.context("the gRPC server failed")),
                    Err(e) => Err(anyhow::anyhow!("the gRPC server task panicked: {e}")),
                };
            }
        }
    };

    notify::stopping();
    tracing::info!("stopping: draining in-flight calls");
    let _ = stop_tx.send(true);
    let drain = Duration::from_secs(state.config().daemon.drain_timeout_secs.0);
    if !server.is_finished() {
        match tokio::time::timeout(drain, &mut server).await {
            Ok(_) => tracing::info!("all calls drained"),
            Err(_) => {
                tracing::warn!(
                    seconds = drain.as_secs(),
                    "drain timed out; closing the remaining connections"
                );
                server.abort();
            }
        }
    }
    if let Some(audit) = audit {
        let _ = tokio::time::timeout(Duration::from_secs(5), audit).await;
    }
    // A scan in progress stops at its next entry; what it changed is journaled.
    if !schedule.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut schedule).await;
    }
    // The watcher announces what its workers are still healing, then the
    // journal writer writes every row handed to it.
    if !watcher.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut watcher).await;
    }
    let st = state.clone();
    let _ = tokio::task::spawn_blocking(move || st.journal.flush()).await;
    metrics_task.stop();
    socket.remove_if_ours();
    outcome
}

/// The intents of changes whose outcome was never recorded (goguardd stopped uncleanly
/// mid-change), read before anything can add new ones.
fn unsettled_intents(store: &Mutex<goguard_store::Store>) -> Vec<goguard_store::PendingIntent> {
    match store.lock().expect("store lock").pending_intents() {
        Ok(pending) => {
            if !pending.is_empty() {
                tracing::warn!(
                    count = pending.len(),
                    "goguardd stopped uncleanly while changing files; those changes are \
                     journaled from the files at the first scan"
                );
            }
            pending
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the journal intents of the last run");
            Vec::new()
        }
    }
}

/// A task that waits for SIGTERM or SIGINT, sets the process-wide stop flag (so a scan in
/// progress ends between two entries) and tells the supervisor.
fn stop_on_signal() -> anyhow::Result<watch::Receiver<bool>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        crate::stop::request_stop();
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// A second handle on the listening socket for the server task; the
/// supervisor keeps the original to remove the file at exit.
fn clone_listener(listener: &tokio::net::UnixListener) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::fd::AsFd;
    let fd = listener.as_fd().try_clone_to_owned()?;
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    std_listener.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(std_listener)?)
}

async fn serve_grpc(
    listener: tokio::net::UnixListener,
    state: Arc<DaemonState>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<GoGuardServer<GoGuardService>>()
        .await;
    let service = GoGuardServer::with_interceptor(
        GoGuardService {
            state: state.clone(),
        },
        Authenticate {
            authorizer: state.authorizer.clone(),
        },
    );
    let admission = Arc::new(connections::Admission::default());
    tokio::spawn(connections::trim_memory(
        state.clone(),
        admission.clone(),
        stop.clone(),
    ));
    let streams = state.config().daemon.max_streams_per_connection.0 as u32;
    let incoming = connections::incoming(listener, state.clone(), admission);
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
        health_reporter
            .set_not_serving::<GoGuardServer<GoGuardService>>()
            .await;
    };
    tonic::transport::Server::builder()
        // Calls per connection, refused by HTTP/2 itself beyond the cap.
        .max_concurrent_streams(streams)
        .concurrency_limit_per_connection(streams as usize)
        // Our requests carry a few short headers; hyper's default allows 16 MiB.
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .layer(connections::TrackCallsLayer)
        .add_service(health)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// The most header bytes a request may carry.
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Raises the soft limit on open files to the hard one (systemd's
/// `LimitNOFILE=` sets both; a shell usually keeps the soft limit at 1024),
/// and warns when the connection caps do not fit under it.
fn raise_fd_limit(config: &Config) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass. It may fail (a seccomp
        // filter without @resources); the old limit then stays.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    let d = &config.daemon;
    // Roots, the store, inotify, the audit log and libraries need fds too.
    let needed = d.max_user_connections.0 + d.max_admin_connections.0 + FD_RESERVE;
    if lim.rlim_cur < needed {
        tracing::warn!(
            limit = lim.rlim_cur,
            needed,
            "the open-file limit is below the connection caps plus a reserve of {FD_RESERVE}: \
             a connection flood could exhaust it; raise LimitNOFILE= or lower \
             daemon.max_user_connections / max_admin_connections"
        );
    }
}

/// File descriptors kept for everything but control-socket connections.
const FD_RESERVE: u64 = 1024;

/// Connects to our own socket and waits for the health service to answer
/// SERVING, so READY=1 means clients can be served.
async fn wait_until_serving(path: &Path) -> anyhow::Result<()> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let deadline = Instant::now() + Duration::from_secs(10);
    let uri = format!("unix://{}", path.display());
    let mut last_error = String::new();
    while Instant::now() < deadline {
        match tonic::transport::Endpoint::from_shared(uri.clone())?
            .connect()
            .await
        {
            Ok(channel) => {
                let mut client = HealthClient::new(channel);
                match client
                    .check(HealthCheckRequest {
                        service: "goguard.v1.GoGuard".into(),
                    })
                    .await
                {
                    Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
                    Ok(r) => last_error = format!("health is {:?}", r.get_ref().status),
                    Err(e) => last_error = e.to_string(),
                }
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "the control socket {} did not start serving: {last_error}",
        path.display()
    )
}

/// The HTTP metrics endpoint, restartable on reload.
struct MetricsTask {
    addr: Option<SocketAddr>,
    configured: Option<SocketAddr>,
    stop: Option<watch::Sender<bool>>,
}

impl MetricsTask {
    async fn start(
        listen: Option<SocketAddr>,
        metrics: &Arc<Metrics>,
        components: &Components,
    ) -> anyhow::Result<MetricsTask> {
        let Some(addr) = listen else {
            components.set(
                METRICS,
                ComponentState::Disabled,
                "daemon.metrics_listen is empty",
            );
            return Ok(MetricsTask {
                addr: None,
                configured: None,
                stop: None,
            });
        };
        let listener = metrics::bind(addr).await?;
        let bound = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(metrics::serve(listener, metrics.clone(), rx));
        components.set(
            METRICS,
            ComponentState::Running,
            format!("http://{bound}/metrics"),
        );
        Ok(MetricsTask {
            addr: Some(bound),
            configured: Some(addr),
            stop: Some(tx),
        })
    }

    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
    }
}

/// Re-reads the configuration and applies what can change live. On any
/// error nothing is applied and the running configuration stays.
async fn reload(
    opts: &StartOptions,
    state: &DaemonState,
    metrics_task: &mut MetricsTask,
    log: &LogControl,
) -> anyhow::Result<()> {
    let required = opts.config_required || state.source.read().expect("source lock").loaded;
    let result = async {
        let (new, source) = config::load(&opts.config_path, required)?;
        let old = state.config();
        let metrics_address = new.daemon.metrics_address(opts.mode);
        if metrics_address != metrics_task.configured {
            let replacement =
                MetricsTask::start(metrics_address, &state.metrics, &state.components).await?;
            metrics_task.stop();
            *metrics_task = replacement;
            *state.metrics_address.write().expect("metrics address lock") = metrics_task.addr;
        }
        for (what, changed) in [
            ("daemon.socket", new.daemon.socket != old.daemon.socket),
            (
                "daemon.socket_mode",
                new.daemon.socket_mode != old.daemon.socket_mode,
            ),
            (
                "daemon.state_dir",
                new.daemon.state_dir != old.daemon.state_dir,
            ),
        ] {
            if changed {
                tracing::warn!(
                    setting = what,
                    "this setting changes only when goguardd restarts"
                );
            }
        }
        if new.daemon.admin_group != old.daemon.admin_group {
            *state.authorizer.write().expect("authorizer lock") =
                Authorizer::new(&new.daemon.admin_group.0);
        }
        log.set_level(&new.daemon.log_level.0);
        let diagnoser = {
            let new = new.clone();
            tokio::task::spawn_blocking(move || crate::diagnosis::Diagnoser::load(&new)).await?
        };
        *state.diagnoser.write().expect("diagnoser lock") = Arc::new(diagnoser);
        *state.source.write().expect("source lock") = source;
        *state.config.write().expect("config lock") = Arc::new(new);
        anyhow::Ok(())
    }
    .await;
    let mut history = state.reload.lock().expect("reload lock poisoned");
    let label = match &result {
        Ok(()) => {
            history.reloads += 1;
            history.last_error = None;
            tracing::info!(config = %opts.config_path.display(), "configuration reloaded");
            "ok"
        }
        Err(e) => {
            history.last_error = Some(format!("{e:#}"));
            "error"
        }
    };
    state
        .metrics
        .reloads
        .get_or_create(&metrics::ResultLabels {
            result: label.to_owned(),
        })
        .inc();
    result
}

/// An exclusive lock on `goguardd.lock` in the state directory: one daemon
/// per state directory. Released by the kernel when the process exits, even
/// after kill -9.
struct InstanceLock {
    _lock: nix::fcntl::Flock<File>,
}

impl InstanceLock {
    fn take(state_dir: &Path) -> anyhow::Result<InstanceLock> {
        use std::io::{Read, Seek, Write};
        let path = state_dir.join("goguardd.lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        let mut lock =
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    bail!(
                        "another goguardd (pid {}) is already running with the state directory {}; \
                     stop it first (systemctl stop goguardd), or give this one another \
                     daemon.state_dir",
                        pid.trim(),
                        state_dir.display()
                    );
                }
                Err((_, e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            };
        lock.set_len(0)?;
        lock.rewind()?;
        writeln!(lock, "{}", std::process::id())?;
        Ok(InstanceLock { _lock: lock })
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// The repair loop guard with the quarantines stored before a restart still in force.
fn restored_loop_guard(
    store: &Mutex<goguard_store::Store>,
    started: Instant,
) -> goguard_policy::LoopGuard {
    let mut guard = goguard_policy::LoopGuard::new(Default::default());
    let now = crate::roots::unix_now();
    let rows = match store.lock().expect("store lock").active_quarantines(now) {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "could not read stored quarantines; starting without them");
            return guard;
        }
    };
    for q in rows {
        let Some(kind) = goguard_policy::DriftKind::ALL
            .into_iter()
            .find(|k| k.as_str() == q.kind)
        else {
            continue;
        };
        let until = started.elapsed() + Duration::from_secs_f64((q.until - now).max(0.0));
        tracing::info!(path = %q.path, kind = %q.kind, "quarantine restored from before the restart");
        guard.restore(std::path::Path::new(&q.path), kind, until);
    }
    guard
}
