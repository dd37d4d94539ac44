//! goguardd's configuration: TOML, every field with a default.
//!
//! Values are validated while they are deserialized (each field has a type
//! that refuses bad input), so every error carries the file, line and column
//! of the offending value. Unknown keys are errors too. This module reads the
//! file it is given and nothing else; it never creates or changes files.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub audit: AuditConfig,
    pub discovery: DiscoveryConfig,
    pub selinux: SelinuxConfig,
    pub scan: ScanConfig,
    pub heal: HealConfig,
    pub hygiene: HygieneConfig,
    /// `[[root]]`: caches the admin declares (shared, CI, custom).
    pub root: Vec<goguard_policy::RootDecl>,
}

/// `[discovery]`: which users' GOCACHE and GOMODCACHE are guarded.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Discover per-user caches at all.
    pub enabled: bool,
    /// Only these login names; empty = every user with a uid in range and a home.
    pub users: Vec<String>,
    pub min_uid: u32,
    pub max_uid: u32,
    /// Directories outside the homes under which users may keep caches goguardd guards for
    /// them (e.g. `/scratch`). A user's GOCACHE/GOMODCACHE elsewhere outside the home is
    /// only reported (docs/SECURITY.md).
    pub user_root_prefixes: Vec<AbsPath>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            enabled: true,
            users: Vec::new(),
            min_uid: 1000,
            max_uid: 60000,
            user_root_prefixes: Vec::new(),
        }
    }
}

/// `[selinux]`: where expected labels come from.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SelinuxConfig {
    /// A file_contexts file; empty = the installed policy's, when there is one.
    pub file_contexts: OptionalAbsPath,
    /// A binary policy (`policy.33`) for denial diagnoses; empty = the loaded
    /// one (`/sys/fs/selinux/policy`) when there is one.
    pub policy: OptionalAbsPath,
    /// The kernel's SELinux status page, whose policy load counter goguardd follows
    /// (a policy load or boolean change re-reads verdicts and expected labels);
    /// empty = `/sys/fs/selinux/status`.
    pub status: OptionalAbsPath,
}

/// `[heal]`: self-healing as a whole.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealConfig {
    /// Repair drift on its own where the roots' heal policies say `auto`.
    /// false: report only; repairs happen when someone asks (`goguardctl repair`).
    pub auto: bool,
}

impl Default for HealConfig {
    fn default() -> Self {
        HealConfig { auto: true }
    }
}

/// `[hygiene]`: Go cache hygiene on a schedule (trims and module-cache verification).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HygieneConfig {
    /// Seconds between trim checks of every GOCACHE root; 0 = no scheduled trims. Go's own
    /// rule (`trim.txt`: at most once a day) decides whether a trim is due, so go and
    /// goguardd never trim the same cache twice in a day.
    pub trim_interval_secs: Bounded<0, 604_800>,
    /// Size cap for GOCACHE roots that declare no `max_size` of their own; unset = none.
    pub gocache_max_size: Option<goguard_policy::config::ByteSize>,
    /// A size cap never evicts an entry whose `-a` or `-d` was used (by mtime) within this
    /// many seconds. Go refreshes an entry's mtime at most once an hour, so this is an hour
    /// plus the margin a build has to open what it looked up (goguard-hygiene's trim plan,
    /// rule 4); shorter values are refused.
    pub size_cap_grace_secs: CapGrace,
    /// Seconds between verifications of every GOMODCACHE root; 0 = never. The first one
    /// comes one interval after the last recorded one (or after start).
    pub verify_interval_secs: Bounded<0, 31_536_000>,
}

impl Default for HygieneConfig {
    fn default() -> Self {
        HygieneConfig {
            trim_interval_secs: Bounded(3600),
            gocache_max_size: None,
            size_cap_grace_secs: CapGrace(goguard_hygiene::trim::DEFAULT_IN_USE_GRACE.as_secs()),
            verify_interval_secs: Bounded(604_800),
        }
    }
}

/// `[scan]`: the periodic full scan, the backstop of the watchers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Seconds between full scans of every root (which also self-heal); 0 = only at start.
    pub interval_secs: Bounded<0, 604_800>,
    /// The most inotify watches (one per directory of every root) goguardd holds. Past it,
    /// or past the kernel's `fs.inotify.max_user_watches`, the rest of a root is checked by
    /// the periodic scans only and `status` shows the watcher degraded. Restart to change.
    pub max_watches: Bounded<1, 8_388_608>,
    /// Seconds between scans of a root that holds its share of `max_watches` (the budget
    /// split evenly between the roots) or met the kernel's limit: the part of it that is
    /// not watched is checked this often.
    pub limited_rescan_secs: Bounded<1, 86_400>,
    /// How many roots a full scan walks at once (each on a thread of its own); 0 = one per
    /// CPU, at most 4. 1 scans them one after another (a host whose disks are the limit).
    pub parallel_roots: Bounded<0, 64>,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            interval_secs: Bounded(900),
            max_watches: Bounded(131_072),
            limited_rescan_secs: Bounded(60),
            parallel_roots: Bounded(0),
        }
    }
}

/// `[audit]`: following the audit log for go-related SELinux denials.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Follow the audit log. Unset: on in system mode, off in user mode
    /// (the audit log is readable by root only).
    pub enabled: Option<bool>,
    /// The log auditd writes.
    pub log: AbsPath,
    /// Process names (comm or the exe's file name) that are Go tools; `*.test`
    /// matches test binaries. Executables under a GOROOT's `pkg/tool/` always count.
    pub go_tools: GoTools,
    /// How long an event whose records have not ended (no EOE) waits for more.
    pub event_timeout_ms: Bounded<100, 60_000>,
    /// Denials not seen for this many days are forgotten; 0 keeps them.
    pub retention_days: Bounded<0, 36_500>,
    /// At most this many denials are kept (the oldest go first); 0 = no cap.
    pub max_denials: Bounded<0, 100_000_000>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: None,
            log: AbsPath(PathBuf::from("/var/log/audit/audit.log")),
            go_tools: GoTools(DEFAULT_GO_TOOLS.iter().map(|s| s.to_string()).collect()),
            event_timeout_ms: Bounded(2000),
            retention_days: Bounded(90),
            max_denials: Bounded(100_000),
        }
    }
}

impl AuditConfig {
    pub fn enabled_in(&self, mode: goguard_layout::Mode) -> bool {
        self.enabled.unwrap_or(mode == goguard_layout::Mode::System)
    }
}

/// The Go toolchain's process names, as they appear in AVC `comm=` fields.
pub const DEFAULT_GO_TOOLS: &[&str] = &[
    "go", "compile", "link", "asm", "cgo", "vet", "cover", "buildid", "pack", "gofmt", "gopls",
    "*.test",
];

/// `[daemon]`: the control socket, state, metrics and logging.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// The control socket; empty means the mode's default
    /// (`/run/goguard/goguard.sock`, or `$XDG_RUNTIME_DIR/goguard/goguard.sock`).
    pub socket: OptionalAbsPath,
    /// Permission bits of the socket file, as an octal string.
    pub socket_mode: FileMode,
    /// Members of this group are admins of the daemon, like uid 0.
    pub admin_group: GroupName,
    /// Where the SQLite store lives; empty means the mode's default.
    pub state_dir: OptionalAbsPath,
    /// `host:port` for `/metrics` and `/healthz`; empty turns metrics off.
    /// Unset means the mode's default: `127.0.0.1:9464` in system mode, off
    /// in user mode (so per-user daemons never fight over the port).
    pub metrics_listen: Option<MetricsListen>,
    /// A tracing filter (`info`, `goguardd=debug`); `RUST_LOG` overrides it.
    pub log_level: LogFilter,
    /// How long a SIGTERM waits for in-flight calls before closing them.
    pub drain_timeout_secs: DrainTimeout,
    /// Open control-socket connections one non-admin uid may hold at once;
    /// more are closed as soon as they are accepted.
    pub max_connections_per_user: Bounded<1, 4096>,
    /// Open connections of all non-admins together. Admins (root, the daemon's
    /// own user, `admin_group`) have their own `max_admin_connections`, so a
    /// flood by users never locks them out.
    pub max_user_connections: Bounded<1, 16_384>,
    /// Open connections of admins together.
    pub max_admin_connections: Bounded<1, 16_384>,
    /// HTTP/2 streams (calls) one connection may have open at once.
    pub max_streams_per_connection: Bounded<1, 1024>,
    /// Seconds a new connection has to send the HTTP/2 preface and its first
    /// request; a connection that has not is closed.
    pub first_request_timeout_secs: Bounded<1, 600>,
    /// Seconds a connection may stay open with no call in progress.
    pub idle_timeout_secs: Bounded<1, 86_400>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: OptionalAbsPath(None),
            // Every local user may connect: each call is authorized from the
            // caller's SO_PEERCRED, and ordinary users need GetStatus and,
            // later, repairs of their own caches.
            socket_mode: FileMode(0o666),
            admin_group: GroupName("goguard".to_owned()),
            state_dir: OptionalAbsPath(None),
            metrics_listen: None,
            log_level: LogFilter("info".to_owned()),
            drain_timeout_secs: DrainTimeout(10),
            max_connections_per_user: Bounded(64),
            max_user_connections: Bounded(1024),
            max_admin_connections: Bounded(256),
            max_streams_per_connection: Bounded(16),
            first_request_timeout_secs: Bounded(10),
            idle_timeout_secs: Bounded(300),
        }
    }
}

impl DaemonConfig {
    /// The metrics address in force for `mode`, `None` when turned off.
    pub fn metrics_address(&self, mode: goguard_layout::Mode) -> Option<SocketAddr> {
        match (self.metrics_listen, mode) {
            (Some(MetricsListen(addr)), _) => addr,
            (None, goguard_layout::Mode::System) => Some(DEFAULT_METRICS.parse().expect("valid")),
            (None, goguard_layout::Mode::User) => None,
        }
    }
}

/// Where system-mode metrics listen unless configured.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9464";

/// An error in a configuration file, pointing at the offending value.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column, when the parser could tell.
    pub line_col: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_col {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message)
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// False when the default file does not exist and built-in defaults apply.
    pub loaded: bool,
}

/// Reads `path`. A missing file is an error when `required` (the admin named
/// it with `--config`), and means built-in defaults otherwise.
pub fn load(path: &Path, required: bool) -> Result<(Config, ConfigSource), ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let config = parse(path, &text)?;
            Ok((
                config,
                ConfigSource {
                    path: path.to_owned(),
                    loaded: true,
                },
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok((
            Config::default(),
            ConfigSource {
                path: path.to_owned(),
                loaded: false,
            },
        )),
        Err(e) => Err(ConfigError {
            path: path.to_owned(),
            line_col: None,
            message: format!("cannot read the configuration: {e}"),
        }),
    }
}

/// Parses configuration text; `path` only names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    toml::from_str::<Config>(text).map_err(|e| ConfigError {
        path: path.to_owned(),
        line_col: e.span().map(|span| line_col(text, span.start)),
        message: e.message().trim_end().to_owned(),
    })
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..at].chars().count() + 1;
    (line, col)
}

/// An absolute path.
#[derive(Debug, Clone, PartialEq)]
pub struct AbsPath(pub PathBuf);

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match OptionalAbsPath::deserialize(d)?.0 {
            Some(p) => Ok(AbsPath(p)),
            None => Err(serde::de::Error::custom(
                "an absolute path is required here",
            )),
        }
    }
}

/// An integer within `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if n < MIN as i64 || n as u64 > MAX {
            return Err(serde::de::Error::custom(format!(
                "must be between {MIN} and {MAX}, not {n}"
            )));
        }
        Ok(Bounded(n as u64))
    }
}

/// The in-use grace of size caps in seconds: at least
/// [`goguard_hygiene::trim::MIN_IN_USE_GRACE`], at most 30 days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapGrace(pub u64);

impl CapGrace {
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl<'de> Deserialize<'de> for CapGrace {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        let min = goguard_hygiene::trim::MIN_IN_USE_GRACE.as_secs();
        let max = 30 * 86_400;
        if n < min as i64 {
            return Err(serde::de::Error::custom(format!(
                "{n} s is too short: Go refreshes a cache entry's mtime at most once an hour,                  so a size cap with a grace under 3600 s plus a margin can evict entries a                  running build has just looked up and make it fail; use at least {min}                  (default {})",
                goguard_hygiene::trim::DEFAULT_IN_USE_GRACE.as_secs()
            )));
        }
        if n as u64 > max {
            return Err(serde::de::Error::custom(format!(
                "must be at most {max} (30 days), not {n}"
            )));
        }
        Ok(CapGrace(n as u64))
    }
}

/// Go tool names: plain names (`go`, `compile`) or `*.suffix` patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct GoTools(pub Vec<String>);

impl<'de> Deserialize<'de> for GoTools {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        for n in &names {
            let body = n.strip_prefix('*').unwrap_or(n);
            if body.is_empty() || body.contains(['/', '*', '\0']) || n.len() > 255 {
                return Err(serde::de::Error::custom(format!(
                    "{n:?} is not a tool name: write a process name such as \"compile\" or a \
                     suffix pattern such as \"*.test\""
                )));
            }
        }
        Ok(GoTools(names))
    }
}

/// An absolute path, or empty for "the mode's default".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptionalAbsPath(pub Option<PathBuf>);

impl<'de> Deserialize<'de> for OptionalAbsPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(OptionalAbsPath(None));
        }
        let p = PathBuf::from(&s);
        if !p.is_absolute() {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not an absolute path (use \"\" for the default)"
            )));
        }
        if p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(serde::de::Error::custom(format!(
                "{s:?} must not contain \"..\""
            )));
        }
        Ok(OptionalAbsPath(Some(p)))
    }
}

/// Permission bits written as an octal string, `"0660"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileMode(pub u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "{s:?} is not a socket mode: write octal permission bits such as \"0660\""
            ))
        };
        if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(bad());
        }
        let mode = u32::from_str_radix(&s, 8).map_err(|_| bad())?;
        if mode & !0o777 != 0 {
            return Err(serde::de::Error::custom(format!(
                "socket mode {s:?} carries setuid, setgid or sticky bits: write permission \
                 bits only (at most \"0777\"), such as \"0660\""
            )));
        }
        if mode & 0o600 != 0o600 {
            return Err(serde::de::Error::custom(format!(
                "socket mode {s:?} must let the owner read and write (0600 at least)"
            )));
        }
        Ok(FileMode(mode))
    }
}

/// A POSIX group name (`[a-z_][a-z0-9_-]*`, up to 32 bytes, optional `$`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupName(pub String);

impl<'de> Deserialize<'de> for GroupName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let body = s.strip_suffix('$').unwrap_or(&s);
        let valid = !body.is_empty()
            && s.len() <= 32
            && body.chars().enumerate().all(|(i, c)| {
                c.is_ascii_lowercase()
                    || c == '_'
                    || (i > 0 && (c.is_ascii_digit() || c == '-' || c.is_ascii_uppercase()))
                    || (i == 0 && c.is_ascii_uppercase())
            });
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a valid group name"
            )));
        }
        Ok(GroupName(s))
    }
}

/// The metrics listen address; `""` turns metrics off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricsListen(pub Option<SocketAddr>);

impl<'de> Deserialize<'de> for MetricsListen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(MetricsListen(None));
        }
        s.parse::<SocketAddr>()
            .map(|a| MetricsListen(Some(a)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{s:?} is not an address: write host:port such as \"127.0.0.1:9464\", \
                 or \"\" to turn metrics off"
                ))
            })
    }
}

/// A tracing-subscriber filter directive, checked when read.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFilter(pub String);

impl<'de> Deserialize<'de> for LogFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        tracing_subscriber::EnvFilter::builder()
            .parse(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a log filter: {e}")))?;
        Ok(LogFilter(s))
    }
}

/// Seconds a shutdown waits for in-flight calls: 0 to 600.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrainTimeout(pub u64);

impl<'de> Deserialize<'de> for DrainTimeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(0..=600).contains(&n) {
            return Err(serde::de::Error::custom(format!(
                "drain_timeout_secs must be between 0 and 600, not {n}"
            )));
        }
        Ok(DrainTimeout(n as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        parse(Path::new("/etc/goguard/goguard.toml"), text).unwrap_err()
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse(Path::new("x.toml"), "").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.daemon.socket_mode, FileMode(0o666));
        assert_eq!(c.daemon.metrics_listen, None);
        assert_eq!(c.daemon.max_connections_per_user.0, 64);
        assert_eq!(c.daemon.max_user_connections.0, 1024);
        assert_eq!(c.daemon.max_admin_connections.0, 256);
        let system = c.daemon.metrics_address(goguard_layout::Mode::System);
        assert_eq!(system, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.daemon.metrics_address(goguard_layout::Mode::User), None);
    }

    #[test]
    fn full_file_is_read() {
        let c = parse(
            Path::new("x.toml"),
            r#"
[daemon]
socket = "/run/x/goguard.sock"
socket_mode = "0660"
admin_group = "gobuild"
state_dir = "/var/lib/x"
metrics_listen = ""
log_level = "goguardd=debug,info"
drain_timeout_secs = 3
max_connections_per_user = 8
max_user_connections = 100
max_admin_connections = 20
max_streams_per_connection = 4
first_request_timeout_secs = 2
idle_timeout_secs = 60
"#,
        )
        .unwrap();
        assert_eq!(
            c.daemon.socket.0,
            Some(PathBuf::from("/run/x/goguard.sock"))
        );
        assert_eq!(c.daemon.socket_mode, FileMode(0o660));
        assert_eq!(c.daemon.admin_group.0, "gobuild");
        assert_eq!(c.daemon.metrics_listen, Some(MetricsListen(None)));
        assert_eq!(c.daemon.metrics_address(goguard_layout::Mode::System), None);
        assert_eq!(c.daemon.drain_timeout_secs.0, 3);
        let d = &c.daemon;
        assert_eq!(
            (
                d.max_connections_per_user.0,
                d.max_user_connections.0,
                d.max_admin_connections.0,
                d.max_streams_per_connection.0,
                d.first_request_timeout_secs.0,
                d.idle_timeout_secs.0
            ),
            (8, 100, 20, 4, 2, 60)
        );
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let e = err("[daemon]\nsocket_mode = \"0660\"\n  sokcet = \"/run/x\"\n");
        assert_eq!(e.line_col, Some((3, 3)), "{e}");
        assert!(e.message.contains("unknown field `sokcet`"), "{e}");
        assert!(
            e.to_string().starts_with("/etc/goguard/goguard.toml:3:3: "),
            "{e}"
        );
    }

    #[test]
    fn unknown_section_names_line_and_column() {
        let e = err("\n\n[deamon]\n");
        assert_eq!(e.line_col.map(|l| l.0), Some(3), "{e}");
        assert!(e.message.contains("deamon"), "{e}");
    }

    #[test]
    fn bad_values_name_their_position() {
        let cases = [
            (
                "[daemon]\nsocket_mode = \"rw-rw----\"\n",
                (2, 15),
                "not a socket mode",
            ),
            (
                "[daemon]\nsocket_mode = \"0066\"\n",
                (2, 15),
                "owner read and write",
            ),
            (
                "[daemon]\nsocket_mode = \"7777\"\n",
                (2, 15),
                "setuid, setgid or sticky",
            ),
            (
                "[daemon]\nsocket_mode = \"1666\"\n",
                (2, 15),
                "permission bits only",
            ),
            (
                "[daemon]\nsocket_mode = \"4660\"\n",
                (2, 15),
                "setuid, setgid or sticky",
            ),
            (
                "[daemon]\nmax_connections_per_user = 0\n",
                (2, 28),
                "between 1 and 4096",
            ),
            (
                "[daemon]\nidle_timeout_secs = 0\n",
                (2, 21),
                "between 1 and 86400",
            ),
            (
                "[daemon]\nmetrics_listen = \"localhost\"\n",
                (2, 18),
                "not an address",
            ),
            (
                "[daemon]\nsocket = \"run/goguard.sock\"\n",
                (2, 10),
                "not an absolute path",
            ),
            ("[daemon]\nstate_dir = \"/var/../etc\"\n", (2, 13), "\"..\""),
            (
                "[daemon]\nadmin_group = \"wheel group\"\n",
                (2, 15),
                "not a valid group name",
            ),
            (
                "[daemon]\nlog_level = \"info,=x=y\"\n",
                (2, 13),
                "not a log filter",
            ),
            (
                "[daemon]\ndrain_timeout_secs = 9000\n",
                (2, 22),
                "between 0 and 600",
            ),
            (
                "[daemon]\ndrain_timeout_secs = \"10\"\n",
                (2, 22),
                "invalid type",
            ),
            ("[daemon]\nsocket = \n", (2, 10), ""),
        ];
        for (text, pos, needle) in cases {
            let e = err(text);
            assert_eq!(e.line_col, Some(pos), "{text:?} gave {e}");
            assert!(e.message.contains(needle), "{text:?} gave {e}");
        }
    }

    #[test]
    fn selinux_policy_is_an_absolute_path() {
        let c = parse(
            Path::new("x.toml"),
            "[selinux]\npolicy = \"/etc/selinux/targeted/policy/policy.33\"\n",
        )
        .unwrap();
        assert_eq!(
            c.selinux.policy.0,
            Some(PathBuf::from("/etc/selinux/targeted/policy/policy.33"))
        );
        assert_eq!(Config::default().selinux.policy.0, None);
        let e = err("[selinux]\npolicy = \"policy.33\"\n");
        assert_eq!(e.line_col, Some((2, 10)), "{e}");
        assert!(e.message.contains("not an absolute path"), "{e}");
        let e = err("[selinux]\n  polcy = \"/p\"\n");
        assert_eq!(e.line_col, Some((2, 3)), "{e}");
    }

    #[test]
    fn hygiene_schedules_and_size_cap() {
        let d = Config::default().hygiene;
        assert_eq!(
            (
                d.trim_interval_secs.0,
                d.gocache_max_size,
                d.verify_interval_secs.0
            ),
            (3600, None, 604_800)
        );
        let c = parse(
            Path::new("x.toml"),
            "[hygiene]\ntrim_interval_secs = 0\ngocache_max_size = \"20GiB\"\n\
             verify_interval_secs = 86400\n",
        )
        .unwrap();
        assert_eq!(c.hygiene.trim_interval_secs.0, 0);
        assert_eq!(c.hygiene.gocache_max_size.map(|s| s.0), Some(20 << 30));
        assert_eq!(c.hygiene.verify_interval_secs.0, 86400);
        let e = err("[hygiene]\ngocache_max_size = \"20 parsecs\"\n");
        assert_eq!(e.line_col, Some((2, 20)), "{e}");
        assert!(e.message.contains("unknown size unit"), "{e}");
        let e = err("[hygiene]\ntrim_interval_secs = -5\n");
        assert_eq!(e.line_col.map(|p| p.0), Some(2), "{e}");
    }

    #[test]
    fn size_cap_grace_is_over_gos_refresh_interval_plus_a_margin() {
        assert_eq!(Config::default().hygiene.size_cap_grace_secs.0, 7200);
        let c = parse(
            Path::new("x.toml"),
            "[hygiene]\nsize_cap_grace_secs = 3900\n",
        )
        .unwrap();
        assert_eq!(c.hygiene.size_cap_grace_secs.0, 3900);
        for short in ["3600", "3899", "0", "-1"] {
            let e = err(&format!(
                "[hygiene]\ngocache_max_size = \"1GiB\"\nsize_cap_grace_secs = {short}\n"
            ));
            assert_eq!(e.line_col.map(|p| p.0), Some(3), "{e}");
            assert!(e.message.contains("too short"), "{e}");
            assert!(e.message.contains("at least 3900"), "{e}");
        }
        let e = err("[hygiene]\nsize_cap_grace_secs = 99999999\n");
        assert!(e.message.contains("at most"), "{e}");
    }

    #[test]
    fn column_counts_characters_not_bytes() {
        let e = err("# é\n[daemon]\n# ééé\n  admin_group = \"é\"\n");
        assert_eq!(e.line_col, Some((4, 17)), "{e}");
    }

    #[test]
    fn missing_default_file_means_defaults_but_named_file_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("goguard.toml");
        let (c, src) = load(&missing, false).unwrap();
        assert_eq!(c, Config::default());
        assert!(!src.loaded);
        let e = load(&missing, true).unwrap_err();
        assert!(e.message.contains("cannot read"), "{e}");
    }
}
