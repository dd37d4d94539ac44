//! `goguardctl doctor`: what is wrong with the calling user's Go caches, and the exact
//! command that fixes each thing — without needing the daemon.
//!
//! The checks follow the failure table of the domain notes: (1) GOCACHE, GOMODCACHE and
//! GOPATH as Go computes them from this shell's environment and the `go env -w` file, and
//! whether this user (real uid) can write them; (2) entries owned by someone else; (3)
//! world-writable entries; (4) shared roots without a group and default ACLs; (5) labels
//! against file_contexts; (6) whether GOTMPDIR allows exec. When a goguardd answers, its
//! findings and recent denials for the caller's roots are added; when none does, the report
//! says so and the local checks stand alone.
//!
//! Layout: `gather` does all the I/O and produces facts; `checks` turns facts into findings
//! (pure); `daemon` asks a running goguardd; `report` renders text and JSON.
//!
//! Must never change anything (apart from a probe file it removes at once), never need
//! root, and never suggest `chmod 777`. Exit codes: 0 healthy, 1 a warning or error was
//! found, 2 the doctor itself failed (no passwd entry, an unusable `--file-contexts`).

mod checks;
mod daemon;
mod gather;
mod report;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use goguard_policy::goenv::GoCacheSetting;

use crate::render::Style;
use report::{CheckId, DaemonJson, Report, SettingJson, UserJson};

/// `goguardctl doctor`'s arguments.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Print JSON instead of the report.
    #[arg(long)]
    json: bool,
    /// Check labels against this file_contexts [default: the installed policy's, from
    /// /etc/selinux/config, when SELinux is enabled].
    #[arg(long, value_name = "PATH")]
    file_contexts: Option<PathBuf>,
    /// Stop comparing labels in a cache after this many mismatches.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_label_mismatches: u64,
}

/// Runs the doctor for the calling user; `socket` is goguardctl's `--socket`.
pub fn run(args: DoctorArgs, socket: Option<&Path>, style: &Style) -> ExitCode {
    match diagnose(&args, socket) {
        Ok(report) => {
            let text = if args.json {
                report.to_json()
            } else {
                report.render(style)
            };
            if std::io::stdout().write_all(text.as_bytes()).is_err() {
                return ExitCode::from(2);
            }
            if report.healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("goguardctl doctor: {e}");
            ExitCode::from(2)
        }
    }
}

fn diagnose(args: &DoctorArgs, socket: Option<&Path>) -> Result<Report, String> {
    let (user, passwd) = gather::user()?;
    let env = gather::process_env();
    let (go, env_file) = gather::go_facts(&passwd, &env);
    let (labels, file_contexts) = gather::label_setup(args.file_contexts.as_deref())?;

    // The directories Go writes: GOCACHE, GOMODCACHE, GOPATH's first element.
    let gocache = go.paths.gocache_dir();
    let gomodcache = go.paths.gomodcache_dir();
    let gopath_first = goguard_policy::goenv::split_list(&go.paths.gopath)
        .into_iter()
        .find(|p| !p.is_empty());
    let dirs: Vec<checks::DirFacts> = [
        ("GOCACHE", gocache.as_ref().map(|p| p.display().to_string())),
        (
            "GOMODCACHE",
            gomodcache.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "GOPATH",
            gopath_first.filter(|_| go.paths.refusal.is_none()),
        ),
    ]
    .into_iter()
    .filter_map(|(role, p)| gather::dir_facts(role, &p?))
    .collect();

    // One walk per existing cache tree (GOMODCACHE inside GOCACHE, or the reverse, once).
    let mut trees = Vec::new();
    let mut unwalked = Vec::new();
    let mut walked: Vec<PathBuf> = Vec::new();
    for d in dirs.iter().filter(|d| d.role != "GOPATH" && d.is_dir) {
        if walked
            .iter()
            .any(|w| d.path.starts_with(w) || w.starts_with(&d.path))
        {
            continue;
        }
        walked.push(d.path.clone());
        match gather::tree_facts(
            d.role,
            &d.path,
            &user,
            file_contexts.as_ref(),
            args.max_label_mismatches,
        ) {
            Ok(t) => trees.push(t),
            Err(e) => unwalked.push(e),
        }
    }

    let (tmp, from_gotmpdir) = gather::tmp_dir(&env, env_file.as_ref());
    let tmp = gather::tmp_facts(tmp, from_gotmpdir);

    let local_roots: Vec<PathBuf> = gocache.iter().chain(gomodcache.iter()).cloned().collect();
    let daemon = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(daemon::ask(socket, user.uid)),
        Err(e) => daemon::DaemonFacts {
            problem: Some(format!("cannot start the client runtime: {e}")),
            ..Default::default()
        },
    };
    let guarded: Vec<PathBuf> = daemon
        .roots
        .iter()
        .map(|r| PathBuf::from(&r.path))
        .collect();

    let shared = checks::shared_roots(&user, &dirs);
    let mut cache_paths = checks::cache_paths(&user, &go, &dirs);
    if let Some(sudo_user) = env.get("SUDO_USER").filter(|_| user.uid == 0) {
        cache_paths.notes.insert(
            0,
            format!(
                "run through sudo: these are root's caches; run `goguardctl doctor` without \
                 sudo to check {sudo_user}'s"
            ),
        );
    }
    let mut foreign = checks::foreign_owners(&user, &trees, &shared, &guarded);
    foreign.notes.extend(unwalked);
    let checks = vec![
        cache_paths,
        foreign,
        checks::world_writable(&user, &trees, &dirs, &guarded),
        checks::shared_roots_check(&user, &dirs, &go),
        checks::labels(&labels, &trees),
        checks::tmp_exec(&user, &tmp, &go),
        daemon::check(&daemon, &local_roots),
    ];
    debug_assert_eq!(checks.last().map(|c| c.check), Some(CheckId::Daemon));

    let mut settings = BTreeMap::new();
    let source = |k: &str| {
        go.sources
            .get(k)
            .map(ToString::to_string)
            .unwrap_or_else(|| "default".into())
    };
    let gocache_value = match &go.paths.gocache {
        GoCacheSetting::Dir(d) => d.clone(),
        GoCacheSetting::Off(_) => "off".to_owned(),
    };
    for (key, value) in [
        ("GOCACHE", gocache_value),
        ("GOMODCACHE", go.paths.gomodcache.clone()),
        ("GOPATH", go.paths.gopath.clone()),
    ] {
        settings.insert(
            key,
            SettingJson {
                value,
                source: source(key),
            },
        );
    }
    settings.insert(
        "GOENV",
        SettingJson {
            value: go.paths.goenv.go_env_value().to_owned(),
            source: if env.get("GOENV").is_some_and(|v| !v.is_empty()) {
                "environment".into()
            } else {
                "default".into()
            },
        },
    );
    settings.insert(
        "GOTMPDIR",
        SettingJson {
            value: tmp.dir.display().to_string(),
            source: if tmp.from_gotmpdir {
                source("GOTMPDIR")
            } else {
                "unset: os.TempDir".into()
            },
        },
    );

    Ok(Report::new(
        UserJson {
            name: user.name.clone(),
            uid: user.uid,
            home: user.home.display().to_string(),
        },
        settings,
        checks,
        DaemonJson {
            reachable: daemon.socket.is_some(),
            socket: daemon.socket.as_ref().map(|s| s.display().to_string()),
        },
    ))
}
