//! The foundation, end to end: the real goguardd on a temp socket, driven by
//! the real goguardctl — status, health, socket handling, reload, drain,
//! sd_notify, metrics, socket activation and callers' roles.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::*;

#[test]
fn status_as_text_and_json() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    let daemon = sb.start();

    let out = ctl(&sb.socket(), &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("goguardd 0.1.0 — healthy, pid "), "{text}");
    assert!(
        text.contains(&format!("socket:  {}", sb.socket().display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("config:  {}", sb.config_path().display())),
        "{text}"
    );
    assert!(text.contains("metrics: off"), "{text}");
    assert!(text.contains("COMPONENT       STATE     DETAIL"), "{text}");
    assert!(text.contains("control-socket  running"), "{text}");
    assert!(
        text.contains("metrics         disabled  daemon.metrics_listen is empty"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour when not on a terminal: {text:?}"
    );

    let j = status_json(&sb.socket());
    assert_eq!(j["pid"], daemon.pid());
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(j["config_path"], sb.config_path().display().to_string());
    assert_eq!(j["config_loaded"], true);
    assert_eq!(j["socket_path"], sb.socket().display().to_string());
    assert_eq!(j["state_dir"], sb.state_dir().display().to_string());
    assert_eq!(j["socket_activated"], false);
    assert_eq!(j["healthy"], true);
    assert_eq!(j["metrics_address"], serde_json::Value::Null);
    assert_eq!(j["caller"]["uid"], nix::unistd::geteuid().as_raw());
    let mode = if nix::unistd::geteuid().is_root() {
        "system"
    } else {
        "user"
    };
    assert_eq!(j["mode"], mode);
    let names: Vec<&str> = j["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "audit",
            "control-socket",
            "metrics",
            "scan",
            "selinux",
            "store",
            "watcher"
        ]
    );

    // The socket has the configured mode.
    let meta = std::fs::symlink_metadata(sb.socket()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);
}

#[test]
fn socket_mode_from_config_is_applied() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"\nsocket_mode = \"0600\"");
    let _daemon = sb.start();
    let meta = std::fs::symlink_metadata(sb.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // The bind happened in a private directory that is gone now.
    let entries: Vec<_> = std::fs::read_dir(sb.path().join("run")).unwrap().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

#[test]
fn user_mode_runs_with_no_config_at_all() {
    let sb = Sandbox::new();
    let rt = sb.path().join("xdg-runtime");
    std::fs::create_dir(&rt).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
    let home = sb.path().join("home");
    let mut cmd = Command::new(GOGUARDD);
    cmd.args(["--mode", "user"])
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME");
    let rt_s = rt.display().to_string();
    let home_s = home.display().to_string();
    let daemon = sb.spawn_command(cmd, &[("XDG_RUNTIME_DIR", &rt_s), ("HOME", &home_s)]);
    let socket = rt.join("goguard/goguard.sock");
    daemon.wait_ready(&socket);

    let j = status_json(&socket);
    assert_eq!(j["mode"], "user");
    assert_eq!(j["config_loaded"], false);
    assert_eq!(
        j["config_path"],
        home.join(".config/goguard/goguard.toml")
            .display()
            .to_string()
    );
    assert_eq!(
        j["state_dir"],
        home.join(".local/state/goguard").display().to_string()
    );
    // Per-user daemons keep metrics off unless configured.
    assert_eq!(j["metrics_address"], serde_json::Value::Null);
    let dir_mode = std::fs::metadata(rt.join("goguard"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let text = stdout(&ctl(&socket, &["status"]));
    assert!(text.contains("built-in defaults ("), "{text}");
    assert!(text.contains("user mode"), "{text}");
}

#[test]
fn grpc_health_is_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    let _daemon = sb.start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("unix://{}", sb.socket().display()))
                .unwrap()
                .connect()
                .await
                .unwrap();
        let mut health = HealthClient::new(channel);
        for service in ["", "goguard.v1.GoGuard"] {
            let r = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                r.status,
                ServingStatus::Serving as i32,
                "service {service:?}"
            );
        }
        let unknown = health
            .check(HealthCheckRequest {
                service: "nope.v1.Nope".into(),
            })
            .await;
        assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    });
}

#[test]
fn a_stale_socket_is_replaced() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    std::fs::create_dir_all(sb.socket().parent().unwrap()).unwrap();
    // What a crashed run leaves: a socket file nobody listens on.
    drop(UnixListener::bind(sb.socket()).unwrap());
    assert!(sb.socket().exists());
    let _daemon = sb.start();
    assert_eq!(status_json(&sb.socket())["healthy"], true);
}

#[test]
fn a_second_instance_is_refused() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    let first = sb.start();

    // Same config, same state directory: the instance lock refuses it.
    let mut second = sb.spawn(&[]);
    let status = second.wait_exit(STARTUP);
    assert_eq!(status.code(), Some(1));
    let log = second.log_text();
    assert!(
        log.contains(&format!(
            "another goguardd (pid {}) is already running",
            first.pid()
        )),
        "{log}"
    );

    // Another state directory but the same socket: the live socket refuses it.
    let other_state = sb.path().join("state2");
    let cfg2 = sb.path().join("second.toml");
    std::fs::write(
        &cfg2,
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\nmetrics_listen = \"\"\n",
            sb.socket().display(),
            other_state.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(GOGUARDD);
    cmd.arg("--config").arg(&cfg2);
    let mut third = sb.spawn_command(cmd, &[]);
    assert_eq!(third.wait_exit(STARTUP).code(), Some(1));
    let log = third.log_text();
    assert!(
        log.contains("another goguardd is already serving on"),
        "{log}"
    );

    // The first one never noticed.
    assert_eq!(status_json(&sb.socket())["pid"], first.pid());
}

#[test]
fn sighup_reloads_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    let daemon = sb.start();
    assert_eq!(status_json(&sb.socket())["reloads"], 0);

    // Good: metrics turned on, another admin group.
    sb.write_config("metrics_listen = \"127.0.0.1:0\"\nadmin_group = \"root\"");
    daemon.signal(Signal::SIGHUP);
    let j = wait_for(&sb, |j| j["reloads"] == 1);
    assert_eq!(j["admin_group"], "root");
    assert_eq!(j["last_reload_error"], serde_json::Value::Null);
    let addr = j["metrics_address"]
        .as_str()
        .expect("metrics on after reload")
        .to_owned();
    let metrics = j["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "metrics")
        .unwrap()
        .clone();
    assert_eq!(metrics["state"], "running");
    assert_eq!(http_get(&addr, "/healthz", None).2, "ok\n");

    // Bad: a typo in a key. Nothing changes, and status says why.
    std::fs::write(
        sb.config_path(),
        "[daemon]\nmetrics_listen = \"\"\nadmin_grop = \"x\"\n",
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    let j = wait_for(&sb, |j| j["last_reload_error"].is_string());
    let err = j["last_reload_error"].as_str().unwrap();
    assert!(
        err.contains(&format!("{}:3:1", sb.config_path().display())),
        "{err}"
    );
    assert!(err.contains("admin_grop"), "{err}");
    assert_eq!(j["reloads"], 1);
    assert_eq!(j["admin_group"], "root");
    assert_eq!(j["metrics_address"], addr.as_str());
    assert_eq!(http_get(&addr, "/healthz", None).2, "ok\n");
    assert!(
        daemon
            .log_text()
            .contains("reload failed; the previous configuration stays in force")
    );
}

fn wait_for(sb: &Sandbox, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + STARTUP;
    loop {
        let j = status_json(&sb.socket());
        if pred(&j) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "condition never held; last status {j:#}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn sigterm_drains_and_removes_the_socket() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"\ndrain_timeout_secs = 5");
    let mut daemon = sb.start();
    // A client holding a connection open while the daemon stops.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let channel = rt.block_on(async {
        tonic::transport::Endpoint::from_shared(format!("unix://{}", sb.socket().display()))
            .unwrap()
            .connect()
            .await
            .unwrap()
    });
    let mut client = goguard_proto::v1::go_guard_client::GoGuardClient::new(channel);
    rt.block_on(client.get_status(goguard_proto::v1::GetStatusRequest {}))
        .unwrap();

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    assert!(!sb.socket().exists(), "the socket file is removed at exit");
    let log = daemon.log_text();
    assert!(log.contains("stopping: draining in-flight calls"), "{log}");
    assert!(log.contains("goguardd stopped"), "{log}");
    // And the client now sees the daemon gone.
    let after = rt.block_on(client.get_status(goguard_proto::v1::GetStatusRequest {}));
    assert!(after.is_err());
    let out = ctl(&sb.socket(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sd_notify_messages_follow_the_lifecycle() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    let notify_path = sb.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(STARTUP)).unwrap();
    let notify_s = notify_path.display().to_string();
    let mut daemon = sb.spawn(&[("NOTIFY_SOCKET", &notify_s), ("WATCHDOG_USEC", "400000")]);
    let recv = |what: &str| -> String {
        let mut buf = vec![0u8; 4096];
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };

    let first = recv("READY=1");
    assert!(first.contains("READY=1\n"), "{first:?}");
    assert!(
        first.contains(&format!("STATUS=serving on {}", sb.socket().display())),
        "{first:?}"
    );
    // READY=1 means served: one status call works at once, without retrying.
    assert_eq!(
        ctl(&sb.socket(), &["status", "--json"]).status.code(),
        Some(0)
    );

    // Watchdog pings at half of WATCHDOG_USEC.
    let mut pings = 0;
    while pings < 2 {
        if recv("WATCHDOG=1") == "WATCHDOG=1\n" {
            pings += 1;
        }
    }

    daemon.signal(Signal::SIGHUP);
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.contains("READY=1")) {
        let m = recv("RELOADING=1 then READY=1");
        if m != "WATCHDOG=1\n" {
            seen.push(m);
        }
    }
    assert!(seen[0].starts_with("RELOADING=1\n"), "{seen:?}");
    assert!(seen[0].contains("MONOTONIC_USEC="), "{seen:?}");
    assert!(
        seen.last().unwrap().contains("configuration reloaded"),
        "{seen:?}"
    );

    daemon.signal(Signal::SIGTERM);
    loop {
        let m = recv("STOPPING=1");
        if m.contains("STOPPING=1") {
            break;
        }
    }
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

#[test]
fn metrics_pass_promtool_and_count_rpcs() {
    let promtool = require_tool("promtool", "prometheus");
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"127.0.0.1:0\"");
    let _daemon = sb.start();
    let j = status_json(&sb.socket());
    let addr = j["metrics_address"].as_str().unwrap().to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // A refused call, to see a non-OK code counted... GetStatus is open to
    // all, so count OK calls here; codes are covered by unit tests.
    for _ in 0..3 {
        status_json(&sb.socket());
    }

    let (status, headers, body) = http_get(&addr, "/metrics", None);
    assert!(status.contains("200"), "{status}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("text/plain; version=0.0.4"),
        "{headers}"
    );
    for needle in [
        "# TYPE goguard_build_info gauge",
        "goguard_build_info{version=\"0.1.0\"",
        "# TYPE goguard_uptime_seconds gauge",
        "# TYPE goguard_rpc_requests_total counter",
        "goguard_rpc_duration_seconds_bucket{",
        "goguard_component_up{component=\"control-socket\"} 1",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
    ] {
        assert!(body.contains(needle), "{needle} missing from\n{body}");
    }
    let calls: u64 = body
        .lines()
        .find(|l| l.starts_with("goguard_rpc_requests_total{method=\"GetStatus\",code=\"OK\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no GetStatus counter in\n{body}"));
    assert!(calls >= 4, "{calls}");

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the output: {}{}\n{body}",
        stdout(&out),
        stderr(&out)
    );

    // OpenMetrics for scrapers that ask for it.
    let (_, headers, om) = http_get(&addr, "/metrics", Some("application/openmetrics-text"));
    assert!(
        headers.contains("application/openmetrics-text"),
        "{headers}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert_eq!(http_get(&addr, "/healthz", None).2, "ok\n");
    assert!(http_get(&addr, "/nope", None).0.contains("404"));
}

#[test]
fn check_config_validates_and_points_at_the_error() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    let ok = Command::new(GOGUARDD)
        .arg("--config")
        .arg(sb.config_path())
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("configuration is valid"));

    std::fs::write(sb.config_path(), "[daemon]\nsocket_mode = \"0800\"\n").unwrap();
    let bad = Command::new(GOGUARDD)
        .arg("--config")
        .arg(sb.config_path())
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    assert!(
        err.contains(&format!("{}:2:15:", sb.config_path().display())),
        "{err}"
    );
    assert!(err.contains("not a socket mode"), "{err}");

    let missing = sb.path().join("missing.toml");
    let out = Command::new(GOGUARDD)
        .arg("--config")
        .arg(&missing)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the configuration"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unreachable_daemon_is_one_line_and_exit_2() {
    let sb = Sandbox::new();
    let out = ctl(&sb.socket(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&sb.socket().display().to_string()), "{err}");
    assert!(err.contains("systemctl status goguardd"), "{err}");

    // A socket file nobody listens on: connection refused, same shape.
    std::fs::create_dir_all(sb.socket().parent().unwrap()).unwrap();
    drop(UnixListener::bind(sb.socket()).unwrap());
    let out = ctl(&sb.socket(), &["status", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).to_lowercase().contains("refused"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());

    // GOGUARD_SOCKET is honoured when --socket is absent.
    let out = Command::new(GOGUARDCTL)
        .arg("status")
        .env("GOGUARD_SOCKET", sb.path().join("env.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("env.sock"), "{}", stderr(&out));
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let bash = Command::new(GOGUARDCTL)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    let text = stdout(&bash);
    assert!(text.contains("_goguardctl()"), "{text}");
    assert!(
        text.contains("status") && text.contains("--socket"),
        "{text}"
    );
    let zsh = stdout(
        &Command::new(GOGUARDCTL)
            .args(["completions", "zsh"])
            .output()
            .unwrap(),
    );
    assert!(zsh.starts_with("#compdef goguardctl"), "{zsh}");
    let man = Command::new(GOGUARDCTL).arg("man").output().unwrap();
    assert!(man.status.success());
    let roff = stdout(&man);
    assert!(roff.contains(".TH goguardctl"), "{roff}");
    assert!(roff.contains("GOGUARD_SOCKET"), "{roff}");
}

#[test]
fn socket_activation_is_accepted() {
    let activate = require_tool("systemd-socket-activate", "systemd");
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    std::fs::create_dir_all(sb.socket().parent().unwrap()).unwrap();
    let mut cmd = Command::new(activate);
    cmd.arg("-l")
        .arg(sb.socket())
        .arg("--")
        .arg(GOGUARDD)
        .arg("--config")
        .arg(sb.config_path());
    let mut daemon = sb.spawn_command(cmd, &[]);
    // systemd-socket-activate starts goguardd on the first connection.
    daemon.wait_ready(&sb.socket());
    let j = status_json(&sb.socket());
    assert_eq!(j["socket_activated"], true);
    let socket = j["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "control-socket");
    let detail = socket.unwrap()["detail"].as_str().unwrap().to_owned();
    assert!(detail.ends_with("(socket-activated)"), "{detail}");
    daemon.signal(Signal::SIGTERM);
    daemon.wait_exit(Duration::from_secs(20));
    // The socket belongs to the activator: goguardd must not remove it.
    assert!(sb.socket().exists());
}

#[test]
fn an_ordinary_user_gets_status_as_a_user_and_root_as_admin() {
    if !require_root("run a client as another user") {
        return;
    }
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    let _daemon = sb.start();
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(GOGUARDCTL)
        .arg("--socket")
        .arg(sb.socket())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(j["caller"]["uid"], nobody.uid.as_raw());
    assert_eq!(j["caller"]["role"], "user");
    assert_eq!(status_json(&sb.socket())["caller"]["role"], "admin");
}

#[test]
fn under_systemd_logs_have_no_timestamps_or_colours() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    let daemon = sb.spawn(&[("JOURNAL_STREAM", "8:12345")]);
    daemon.wait_ready(&sb.socket());
    let log = daemon.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("goguardd is ready"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.starts_with(" INFO ") || line.starts_with("INFO "),
        "{line:?}"
    );
    assert!(!log.contains('\x1b'), "{log:?}");
    // Outside systemd the same line carries a timestamp.
    let sb2 = Sandbox::new();
    sb2.write_config("metrics_listen = \"\"");
    let plain = sb2.start();
    let text = plain.log_text();
    let line = text
        .lines()
        .find(|l| l.contains("goguardd is ready"))
        .unwrap();
    assert!(line.starts_with("20"), "{line:?}");
}
