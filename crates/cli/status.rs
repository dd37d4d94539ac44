//! `goguardctl status`: what the daemon is and how its components are.
//! Exit code: 0 when every component runs (or is turned off), 1 when one is
//! starting or failed.

use goguard_proto::v1 as pb;
use serde::Serialize;

use crate::render::{self, Style, Table};

/// The JSON shape of `goguardctl status --json`: stable, documented in the
/// README; the daemon's enums as lower-case words.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    pub version: String,
    pub pid: u32,
    pub uptime_seconds: f64,
    pub started_at_unix: i64,
    pub mode: &'static str,
    pub config_path: String,
    pub config_loaded: bool,
    pub socket_path: String,
    pub socket_activated: bool,
    pub state_dir: String,
    pub metrics_address: Option<String>,
    pub admin_group: String,
    pub reloads: u32,
    pub last_reload_error: Option<String>,
    pub caller: Option<CallerJson>,
    pub components: Vec<ComponentJson>,
    pub healthy: bool,
}

#[derive(Debug, Serialize)]
pub struct CallerJson {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    pub role: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ComponentJson {
    pub name: String,
    pub state: &'static str,
    pub detail: String,
}

fn mode_name(m: i32) -> &'static str {
    match pb::Mode::try_from(m) {
        Ok(pb::Mode::System) => "system",
        Ok(pb::Mode::User) => "user",
        _ => "unknown",
    }
}

fn role_name(r: i32) -> &'static str {
    match pb::Role::try_from(r) {
        Ok(pb::Role::Admin) => "admin",
        Ok(pb::Role::User) => "user",
        _ => "unknown",
    }
}

fn state_name(s: i32) -> &'static str {
    match pb::ComponentState::try_from(s) {
        Ok(pb::ComponentState::Starting) => "starting",
        Ok(pb::ComponentState::Running) => "running",
        Ok(pb::ComponentState::Disabled) => "disabled",
        Ok(pb::ComponentState::Failed) => "failed",
        Ok(pb::ComponentState::Degraded) => "degraded",
        _ => "unknown",
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl StatusJson {
    pub fn from_response(r: &pb::GetStatusResponse) -> StatusJson {
        let components: Vec<ComponentJson> = r
            .components
            .iter()
            .map(|c| ComponentJson {
                name: c.name.clone(),
                state: state_name(c.state),
                detail: c.detail.clone(),
            })
            .collect();
        let healthy = components
            .iter()
            .all(|c| c.state == "running" || c.state == "disabled");
        StatusJson {
            version: r.version.clone(),
            pid: r.pid,
            uptime_seconds: r.uptime_seconds,
            started_at_unix: r.started_at_unix,
            mode: mode_name(r.mode),
            config_path: r.config_path.clone(),
            config_loaded: r.config_loaded,
            socket_path: r.socket_path.clone(),
            socket_activated: r.socket_activated,
            state_dir: r.state_dir.clone(),
            metrics_address: non_empty(&r.metrics_address),
            admin_group: r.admin_group.clone(),
            reloads: r.reloads,
            last_reload_error: non_empty(&r.last_reload_error),
            caller: r.caller.as_ref().map(|c| CallerJson {
                uid: c.uid,
                gid: c.gid,
                pid: c.pid,
                role: role_name(c.role),
            }),
            components,
            healthy,
        }
    }
}

/// The human summary.
pub fn render(s: &StatusJson, style: &Style) -> String {
    let mut out = String::new();
    let health = if s.healthy {
        style.good("healthy")
    } else {
        style.bad("degraded")
    };
    out.push_str(&format!(
        "{} {} — {}, pid {}, up {}, {} mode\n",
        style.bold("goguardd"),
        render::term_safe(&s.version),
        health,
        s.pid,
        render::duration(s.uptime_seconds),
        s.mode
    ));
    let safe = |text: &str| render::term_safe(text).into_owned();
    let config = if s.config_loaded {
        safe(&s.config_path)
    } else {
        format!(
            "built-in defaults ({} does not exist)",
            safe(&s.config_path)
        )
    };
    let socket = if s.socket_activated {
        format!("{} (socket-activated)", safe(&s.socket_path))
    } else {
        safe(&s.socket_path)
    };
    let mut fields = vec![
        ("config", config),
        ("socket", socket),
        ("state", safe(&s.state_dir)),
        (
            "metrics",
            s.metrics_address
                .as_ref()
                .map(|a| format!("http://{}/metrics", safe(a)))
                .unwrap_or_else(|| "off".into()),
        ),
        (
            "admins",
            format!("uid 0 and group {}", safe(&s.admin_group)),
        ),
    ];
    if let Some(c) = &s.caller {
        fields.push(("you", format!("uid {} ({})", c.uid, c.role)));
    }
    if s.reloads > 0 || s.last_reload_error.is_some() {
        let mut text = format!("{} successful", s.reloads);
        if let Some(e) = &s.last_reload_error {
            text.push_str(&format!("; last failed: {}", style.bad(&safe(e))));
        }
        fields.push(("reloads", text));
    }
    for (k, v) in fields {
        out.push_str(&format!("  {:<8} {v}\n", format!("{k}:")));
    }
    out.push('\n');
    let mut table = Table::new(&["COMPONENT", "STATE", "DETAIL"]);
    for c in &s.components {
        let painted = match c.state {
            "running" => style.good(c.state),
            "disabled" => style.dim(c.state),
            "starting" => style.warn(c.state),
            _ => style.bad(c.state),
        };
        table.row(vec![
            (c.name.clone(), c.name.clone()),
            (c.state.to_owned(), painted),
            (c.detail.clone(), c.detail.clone()),
        ]);
    }
    out.push_str(&table.render(style));
    out
}
