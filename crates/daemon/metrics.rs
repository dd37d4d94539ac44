//! Prometheus metrics: the registry every task reports into, and the HTTP
//! endpoint (`/metrics`, `/healthz`) that serves it.
//!
//! prometheus-client encodes OpenMetrics; Prometheus' classic text format
//! (0.0.4) differs in how counters and info metrics are named, and
//! `promtool check metrics` and older scrapers read only the classic one. So a
//! scrape that asks for OpenMetrics gets it, and every other scrape gets the
//! classic text made by [`to_classic_text`]. Label sets are bounded: method
//! names and status codes, never paths or uids.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
    /// The canonical gRPC status code name: `OK`, `PERMISSION_DENIED`, ...
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    pub tclass: String,
    pub permission: String,
    /// A Go tool's name, `*.test`, or `other`: bounded by the tool list.
    pub comm: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// The audit follower's metrics.
#[derive(Default)]
pub struct AuditMetrics {
    pub lines: Counter,
    pub bytes: Counter,
    pub events: Counter,
    pub avc_records: Counter,
    pub denials: Family<DenialLabels, Counter>,
    pub parse_errors: Family<KindLabels, Counter>,
    pub log_events: Family<KindLabels, Counter>,
    pub store_errors: Counter,
    pub lag_bytes: Gauge,
    pub last_event_time: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub pending_events: Gauge,
    pub watch_dropped: Counter,
}

impl AuditMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "goguard_audit_lines",
            "Audit log lines read",
            self.lines.clone(),
        );
        r.register(
            "goguard_audit_bytes",
            "Audit log bytes read",
            self.bytes.clone(),
        );
        r.register(
            "goguard_audit_events",
            "Audit events assembled",
            self.events.clone(),
        );
        r.register(
            "goguard_audit_avc_records",
            "AVC and USER_AVC records seen",
            self.avc_records.clone(),
        );
        r.register(
            "goguard_audit_denials",
            "Go-related SELinux denials by class, permission and command",
            self.denials.clone(),
        );
        r.register(
            "goguard_audit_parse_errors",
            "Malformed audit lines skipped, by kind",
            self.parse_errors.clone(),
        );
        r.register(
            "goguard_audit_log_events",
            "Rotations, truncations and other happenings of the audit log, by kind",
            self.log_events.clone(),
        );
        r.register(
            "goguard_audit_store_errors",
            "Batches the store refused (retried)",
            self.store_errors.clone(),
        );
        r.register_with_unit(
            "goguard_audit_lag",
            "Bytes of the audit log not yet read",
            Unit::Bytes,
            self.lag_bytes.clone(),
        );
        r.register(
            "goguard_audit_last_event_timestamp_seconds",
            "Time stamp of the last audit event read (unix seconds)",
            self.last_event_time.clone(),
        );
        r.register(
            "goguard_audit_pending_events",
            "Audit events waiting for their last record",
            self.pending_events.clone(),
        );
        r.register(
            "goguard_watch_events_dropped",
            "Events a slow WatchEvents client missed",
            self.watch_dropped.clone(),
        );
    }
}

/// The watcher's and self-healing's metrics.
pub struct WatchMetrics {
    pub watches: Gauge,
    pub overflows: Counter,
    pub limit_hits: Counter,
    /// Roots holding their whole share of the watch budget (checked by periodic scans).
    pub roots_over_share: Gauge,
    /// Scans of one root (every root of a full scan counts; so does each backstop scan of a
    /// root over its share): shows which rediscoveries scanned what.
    pub root_scans: Counter,
    pub repairs: Counter,
    pub quarantined: Counter,
    pub heal_latency: Histogram,
}

impl Default for WatchMetrics {
    fn default() -> Self {
        WatchMetrics {
            watches: Gauge::default(),
            overflows: Counter::default(),
            limit_hits: Counter::default(),
            roots_over_share: Gauge::default(),
            root_scans: Counter::default(),
            repairs: Counter::default(),
            quarantined: Counter::default(),
            heal_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
        }
    }
}

impl WatchMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "goguard_watches",
            "inotify watches held",
            self.watches.clone(),
        );
        r.register(
            "goguard_watch_overflows",
            "inotify queue overflows (each answered with a full rescan)",
            self.overflows.clone(),
        );
        r.register(
            "goguard_watch_limit_hits",
            "Directories left unwatched because the watch limit was reached",
            self.limit_hits.clone(),
        );
        r.register(
            "goguard_roots_over_watch_share",
            "Roots holding their whole share of the inotify watch budget (the rest of each is \
             checked by periodic scans)",
            self.roots_over_share.clone(),
        );
        r.register(
            "goguard_root_scans",
            "Scans of one root (a full scan counts each root)",
            self.root_scans.clone(),
        );
        r.register(
            "goguard_self_heal_repairs",
            "Changes made by self-healing",
            self.repairs.clone(),
        );
        r.register(
            "goguard_quarantined",
            "Paths quarantined because they kept drifting back",
            self.quarantined.clone(),
        );
        r.register_with_unit(
            "goguard_heal_latency",
            "From an inotify notice to the path repaired",
            Unit::Seconds,
            self.heal_latency.clone(),
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    /// `admin` or `user`.
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Control-socket connections: the caps of `[daemon]` and what they refused.
#[derive(Default)]
pub struct ConnectionMetrics {
    /// Connections open now, by the caller's role.
    pub open: Family<RoleLabels, Gauge>,
    /// Connections closed at accept: `per_user`, `users` or `admins` cap.
    pub refused: Family<ReasonLabels, Counter>,
    /// Connections closed by a deadline: `first_request` or `idle`.
    pub timed_out: Family<ReasonLabels, Counter>,
    /// accept(2) failures (EMFILE and the like), each followed by a short pause.
    pub accept_errors: Counter,
    /// malloc_trim calls after many connections closed.
    pub memory_trims: Counter,
}

impl ConnectionMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "goguard_connections",
            "Control-socket connections open, by role (admin, user)",
            self.open.clone(),
        );
        r.register(
            "goguard_connections_refused",
            "Control-socket connections closed at accept because a cap was reached, by cap \
             (per_user, users, admins)",
            self.refused.clone(),
        );
        r.register(
            "goguard_connections_timed_out",
            "Control-socket connections closed by a deadline (first_request, idle)",
            self.timed_out.clone(),
        );
        r.register(
            "goguard_accept_errors",
            "accept(2) failures on the control socket (EMFILE and the like)",
            self.accept_errors.clone(),
        );
        r.register(
            "goguard_memory_trims",
            "Times freed heap memory was returned to the system after connections closed",
            self.memory_trims.clone(),
        );
    }
}

/// Cache hygiene: trims and module-cache verifications.
#[derive(Default)]
pub struct HygieneMetrics {
    pub trims: Counter,
    pub trim_entries_removed: Counter,
    pub trim_bytes_freed: Counter,
    /// Trims whose size cap the rule could not meet (what was left was inside the grace).
    pub trim_caps_unmet: Counter,
    /// Bytes over their caps that the latest trim of each root kept, summed.
    pub trim_cap_excess_bytes: Gauge,
    pub verifications: Counter,
    pub modules_verified: Counter,
    /// Corrupt or incomplete modules found by the latest verification of each root, summed.
    pub modules_bad: Gauge,
}

impl HygieneMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "goguard_trims",
            "GOCACHE trims that ran (Go's rules or the size cap)",
            self.trims.clone(),
        );
        r.register(
            "goguard_trim_entries_removed",
            "GOCACHE entries removed by trims",
            self.trim_entries_removed.clone(),
        );
        r.register_with_unit(
            "goguard_trim_freed",
            "Bytes freed by GOCACHE trims",
            Unit::Bytes,
            self.trim_bytes_freed.clone(),
        );
        r.register(
            "goguard_trim_caps_unmet",
            "GOCACHE trims that could not meet a size cap without evicting entries used within \
             the grace (no running build is broken for a cap)",
            self.trim_caps_unmet.clone(),
        );
        r.register_with_unit(
            "goguard_trim_cap_excess",
            "Bytes over their size caps that the latest trim of each GOCACHE root had to keep, \
             summed",
            Unit::Bytes,
            self.trim_cap_excess_bytes.clone(),
        );
        r.register(
            "goguard_modcache_verifications",
            "Module-cache verifications that ran",
            self.verifications.clone(),
        );
        r.register(
            "goguard_modules_verified",
            "Module versions hashed and checked against their .ziphash",
            self.modules_verified.clone(),
        );
        r.register(
            "goguard_modules_bad",
            "Corrupt or incomplete module versions found by the latest verification of each root",
            self.modules_bad.clone(),
        );
    }
}

/// Every metric goguardd exports, with the registry that encodes them.
pub struct Metrics {
    pub registry: Registry,
    pub rpcs: Family<RpcLabels, Counter>,
    pub rpc_duration: Family<MethodLabels, Histogram>,
    pub reloads: Family<ResultLabels, Counter>,
    /// 1 when a component is running, 0 otherwise.
    pub component_up: Family<ComponentLabels, Gauge>,
    pub scrapes: Counter,
    /// SELinux policy loads (and boolean changes) followed without a restart.
    pub policy_loads: Counter,
    pub audit: AuditMetrics,
    pub watch: WatchMetrics,
    pub hygiene: HygieneMetrics,
    pub connections: ConnectionMetrics,
}

impl Metrics {
    pub fn new(started: Instant, started_unix: f64) -> Metrics {
        let mut registry = Registry::default();
        let build = Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION")),
            ("rustc_edition", "2024"),
        ]);
        registry.register("goguard_build", "goguardd build information", build);

        let rpcs = Family::<RpcLabels, Counter>::default();
        registry.register(
            "goguard_rpc_requests",
            "gRPC calls by method and status code",
            rpcs.clone(),
        );
        let rpc_duration = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 4.0, 10))
        });
        registry.register_with_unit(
            "goguard_rpc_duration",
            "gRPC call latency by method",
            Unit::Seconds,
            rpc_duration.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "goguard_config_reloads",
            "Configuration reloads by result (ok or error)",
            reloads.clone(),
        );
        let component_up = Family::<ComponentLabels, Gauge>::default();
        registry.register(
            "goguard_component_up",
            "Whether each daemon component is running (1) or not (0)",
            component_up.clone(),
        );
        let scrapes = Counter::default();
        registry.register(
            "goguard_metrics_scrapes",
            "Scrapes of this endpoint",
            scrapes.clone(),
        );
        let policy_loads = Counter::default();
        registry.register(
            "goguard_selinux_policy_loads",
            "SELinux policy loads and boolean changes goguardd followed (verdicts and expected labels re-read)",
            policy_loads.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector {
            started,
            started_unix,
        }));
        let audit = AuditMetrics::default();
        audit.register(&mut registry);
        let watch = WatchMetrics::default();
        watch.register(&mut registry);
        let hygiene = HygieneMetrics::default();
        hygiene.register(&mut registry);
        let connections = ConnectionMetrics::default();
        connections.register(&mut registry);

        Metrics {
            registry,
            rpcs,
            rpc_duration,
            reloads,
            component_up,
            scrapes,
            policy_loads,
            audit,
            watch,
            hygiene,
            connections,
        }
    }

    /// Records the outcome of one RPC.
    pub fn observe_rpc(&self, method: &str, code: tonic::Code, seconds: f64) {
        self.rpcs
            .get_or_create(&RpcLabels {
                method: method.to_owned(),
                code: code_name(code).to_owned(),
            })
            .inc();
        self.rpc_duration
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .observe(seconds);
    }

    /// The registry as OpenMetrics text.
    pub fn encode_openmetrics(&self) -> String {
        self.scrapes.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The canonical gRPC name of a status code, as other gRPC servers label it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Process metrics read from `/proc/self` at each scrape, under the
/// conventional unprefixed `process_*` names.
#[derive(Debug)]
struct ProcessCollector {
    started: Instant,
    started_unix: f64,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let uptime = ConstGauge::new(self.started.elapsed().as_secs_f64());
        uptime.encode(encoder.encode_descriptor(
            "goguard_uptime_seconds",
            "Seconds since goguardd started",
            None,
            uptime.metric_type(),
        )?)?;
        let start = ConstGauge::new(self.started_unix);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            None,
            start.metric_type(),
        )?)?;
        if let Some(stat) = ProcStat::read() {
            let rss = ConstGauge::new(stat.rss_bytes as i64);
            rss.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                rss.metric_type(),
            )?)?;
            let vsz = ConstGauge::new(stat.vsize_bytes as i64);
            vsz.encode(encoder.encode_descriptor(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                None,
                vsz.metric_type(),
            )?)?;
            let cpu = ConstCounter::new(stat.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
            let threads = ConstGauge::new(stat.threads);
            threads.encode(encoder.encode_descriptor(
                "process_threads",
                "Number of OS threads in the process",
                None,
                threads.metric_type(),
            )?)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let open = ConstGauge::new(fds.count() as i64);
            open.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                open.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// The few fields of `/proc/self/stat` the process metrics need.
#[derive(Debug, PartialEq)]
struct ProcStat {
    cpu_seconds: f64,
    threads: i64,
    vsize_bytes: u64,
    rss_bytes: u64,
}

impl ProcStat {
    fn read() -> Option<ProcStat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        ProcStat::parse(&text, ticks.max(1) as f64, page.max(1) as u64)
    }

    /// Parses `/proc/PID/stat`; `comm` may contain spaces and parentheses, so
    /// fields are counted from the last `)`.
    fn parse(text: &str, ticks_per_sec: f64, page_size: u64) -> Option<ProcStat> {
        let rest = &text[text.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After comm: state is field 3, so field N is at index N - 3.
        let field = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok());
        let utime = field(14)?;
        let stime = field(15)?;
        Some(ProcStat {
            cpu_seconds: (utime + stime) as f64 / ticks_per_sec,
            threads: field(20)? as i64,
            vsize_bytes: field(23)?,
            rss_bytes: field(24)? * page_size,
        })
    }
}

/// Rewrites OpenMetrics text as Prometheus' classic text format 0.0.4:
/// a counter family `x` whose samples are `x_total` is announced as
/// `x_total`; an info family `x` becomes the gauge `x_info`; `# UNIT` and
/// `# EOF` lines go.
pub fn to_classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (new_name, new_kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" | "gaugehistogram" | "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some((help_name, help)) = pending_help.take() {
                if help_name == name {
                    out.push_str(&format!("# HELP {new_name} {help}\n"));
                }
            }
            out.push_str(&format!("# TYPE {new_name} {new_kind}\n"));
            continue;
        }
        if let Some((name, help)) = pending_help.take() {
            out.push_str(&format!("# HELP {name} {help}\n"));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&req, &metrics)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(error = %e, "metrics: connection ended with an error");
            }
        });
    }
}

fn respond<B>(req: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    };
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let wants_openmetrics = req
                .headers()
                .get_all("accept")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("application/openmetrics-text"));
            let text = metrics.encode_openmetrics();
            if wants_openmetrics {
                reply(StatusCode::OK, OPENMETRICS, text)
            } else {
                reply(StatusCode::OK, CLASSIC, to_classic_text(&text))
            }
        }
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics or /healthz\n".into(),
        ),
    }
}

/// Binds the metrics address; the error names the address and what to do.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for metrics on {addr}: {e}; set daemon.metrics_listen to a free \
             address, or \"\" to turn metrics off"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_renames_counters_and_info() {
        let om = "# HELP goguard_build goguardd build information.\n\
                  # TYPE goguard_build info\n\
                  goguard_build_info{version=\"0.1.0\"} 1\n\
                  # HELP goguard_rpc_requests gRPC calls.\n\
                  # TYPE goguard_rpc_requests counter\n\
                  goguard_rpc_requests_total{method=\"GetStatus\",code=\"Ok\"} 2\n\
                  # HELP goguard_rpc_duration_seconds Latency.\n\
                  # TYPE goguard_rpc_duration_seconds histogram\n\
                  # UNIT goguard_rpc_duration_seconds seconds\n\
                  goguard_rpc_duration_seconds_sum 0.5\n\
                  # EOF\n";
        let classic = to_classic_text(om);
        assert_eq!(
            classic,
            "# HELP goguard_build_info goguardd build information.\n\
             # TYPE goguard_build_info gauge\n\
             goguard_build_info{version=\"0.1.0\"} 1\n\
             # HELP goguard_rpc_requests_total gRPC calls.\n\
             # TYPE goguard_rpc_requests_total counter\n\
             goguard_rpc_requests_total{method=\"GetStatus\",code=\"Ok\"} 2\n\
             # HELP goguard_rpc_duration_seconds Latency.\n\
             # TYPE goguard_rpc_duration_seconds histogram\n\
             goguard_rpc_duration_seconds_sum 0.5\n"
        );
    }

    #[test]
    fn proc_stat_parses_comm_with_spaces_and_parens() {
        // Fields 14, 15 (utime, stime) = 250, 150; 20 threads = 7;
        // 23 vsize = 4096000; 24 rss pages = 100.
        let stat = "42 (go (x) d) S 1 42 42 0 -1 4194560 10 0 0 0 250 150 0 0 20 0 7 0 \
                    1234 4096000 100 18446744073709551615";
        let s = ProcStat::parse(stat, 100.0, 4096).unwrap();
        assert_eq!(
            s,
            ProcStat {
                cpu_seconds: 4.0,
                threads: 7,
                vsize_bytes: 4_096_000,
                rss_bytes: 409_600
            }
        );
        assert_eq!(ProcStat::parse("garbage", 100.0, 4096), None);
    }

    #[test]
    fn registry_encodes_the_required_families() {
        let m = Metrics::new(Instant::now(), 1.0);
        m.observe_rpc("GetStatus", tonic::Code::Ok, 0.001);
        let text = to_classic_text(&m.encode_openmetrics());
        for needle in [
            "goguard_build_info{",
            "goguard_uptime_seconds ",
            "goguard_rpc_requests_total{method=\"GetStatus\",code=\"OK\"} 1",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
