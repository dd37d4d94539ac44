//! The repair journal end to end through `goguardctl journal`: goguardd's own
//! repairs (self-healing after an inotify event) and a repair a user asked for,
//! each with its cause and requester; who sees which records (admins all, a user
//! those of the roots they own now, not another user's, not those of a root
//! goguardd no longer knows); the `--path`, `--since` and `--limit` filters; the
//! empty journal and the error exits.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::users::TestUser;
use crate::util::*;

/// `goguardctl journal --json`'s records, after checking it exited 0.
fn records(out: &Output) -> Vec<Value> {
    match json_with_code(out, 0) {
        Value::Array(records) => records,
        other => panic!("journal --json is not an array: {other}"),
    }
}

fn path_of(record: &Value) -> &str {
    record["path"].as_str().expect("a path")
}

/// Polls the admin's journal until a record matches `want`, and returns it.
fn wait_for_record(socket: &Path, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + STARTUP;
    loop {
        let all = records(&ctl(socket, &["journal", "--json"]));
        if let Some(r) = all.iter().find(|r| want(r)) {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no journal record of {what}: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a root-owned file (what `sudo go build` leaves) and waits until
/// self-healing gave it to `owner`.
fn pollute_and_wait(file: &Path, owner: u32) {
    std::fs::write(file, b"x").unwrap(); // we are root: root-owned
    let t = Instant::now();
    while std::fs::metadata(file).unwrap().uid() != owner {
        assert!(
            t.elapsed() < STARTUP,
            "{} was never given back",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn the_journal_shows_who_changed_what_to_whom_it_concerns() {
    if !require_root("creates users, chowns to root") {
        return;
    }
    let alice = TestUser::create("ja");
    let bob = TestUser::create("jb");
    let (alice_uid, bob_uid) = (alice.uid(), bob.uid());
    let alice_cache = alice.gocache_with(&["00", "01"]);
    let bob_cache = bob.gocache_with(&["00"]);
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "metrics_listen = \"\"\n[discovery]\nusers = [\"{}\", \"{}\"]\n[scan]\ninterval_secs = 0",
        alice.name, bob.name
    ));
    let _daemon = sb.start();
    let socket = sb.socket();
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    // Nothing has drifted yet: nothing is journaled, and that is no error.
    let empty = alice.ctl_as(&socket, &["journal"]);
    assert_eq!(empty.status.code(), Some(0), "{}", stderr(&empty));
    assert_eq!(stdout(&empty), "no changes journaled\n");

    // goguardd's own repairs: root-owned entries given back after their inotify event.
    let alice_file = alice_cache.join("00/heal-me-d");
    pollute_and_wait(&alice_file, alice_uid);
    let bob_file = bob_cache.join("00/theirs-d");
    pollute_and_wait(&bob_file, bob_uid);
    let healed = wait_for_record(&socket, "alice's self-heal", |r| {
        path_of(r) == s(&alice_file) && r["operation"] == "chown"
    });
    assert_eq!(healed["root"], s(&alice_cache), "{healed}");
    assert_eq!(healed["before"], "0:0", "{healed}");
    assert!(
        healed["after"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{alice_uid}:")),
        "{healed}"
    );
    assert!(
        healed["cause"].as_str().unwrap().starts_with("self-heal"),
        "{healed}"
    );
    assert_eq!(healed["requester_uid"], Value::Null, "{healed}");
    assert_eq!(healed["requester"], Value::Null, "{healed}");
    assert_eq!(healed["dry_run"], false, "{healed}");
    assert!(healed["id"].as_i64().unwrap() > 0, "{healed}");
    wait_for_record(&socket, "bob's self-heal", |r| {
        path_of(r) == s(&bob_file) && r["operation"] == "chown"
    });

    // A repair alice asks for: a world-writable directory is only alerted on by
    // self-healing; her explicit request fixes it, and the journal names her.
    let open_dir = alice_cache.join("01");
    std::fs::set_permissions(
        &open_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let repair = alice.ctl_as(&socket, &["repair", &s(&alice_cache)]);
    assert_eq!(
        repair.status.code(),
        Some(0),
        "{}{}",
        stdout(&repair),
        stderr(&repair)
    );
    assert_eq!(std::fs::metadata(&open_dir).unwrap().mode() & 0o002, 0);
    let asked = wait_for_record(&socket, "alice's requested repair", |r| {
        path_of(r) == s(&open_dir) && r["operation"] == "chmod"
    });
    assert_eq!(asked["requester_uid"], alice_uid, "{asked}");
    assert_eq!(asked["requester"], alice.name.as_str(), "{asked}");
    assert_eq!(asked["before"], "0777", "{asked}");
    assert!(
        asked["cause"]
            .as_str()
            .unwrap()
            .starts_with("requested repair"),
        "{asked}"
    );

    // The admin sees everything, newest first.
    let all = records(&ctl(&socket, &["journal", "--json"]));
    let ids: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(
        ids.contains(&healed["id"].as_i64().unwrap())
            && ids.contains(&asked["id"].as_i64().unwrap()),
        "{all:#?}"
    );
    assert!(all.iter().any(|r| path_of(r) == s(&bob_file)), "{all:#?}");
    let times: Vec<f64> = all.iter().map(|r| r["at_unix"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert_eq!(all[0]["id"], asked["id"], "the latest change comes first");

    // Alice sees the records of her roots only; bob those of his.
    let hers = records(&alice.ctl_as(&socket, &["journal", "--json"]));
    assert!(hers.iter().any(|r| r["id"] == healed["id"]), "{hers:#?}");
    assert!(hers.iter().any(|r| r["id"] == asked["id"]), "{hers:#?}");
    assert!(
        hers.iter().all(|r| r["root"] == s(&alice_cache)),
        "another root's records leaked: {hers:#?}"
    );
    let his = records(&bob.ctl_as(&socket, &["journal", "--json"]));
    assert!(his.iter().any(|r| path_of(r) == s(&bob_file)), "{his:#?}");
    assert!(
        his.iter().all(|r| r["root"] == s(&bob_cache)),
        "another root's records leaked: {his:#?}"
    );
    // Even when bob names alice's root.
    let peek = records(&bob.ctl_as(&socket, &["journal", "--json", "--path", &s(&alice_cache)]));
    assert!(peek.is_empty(), "{peek:#?}");

    // The table: when, what, before → after, why, and who.
    let table = alice.ctl_as(&socket, &["journal"]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    let line_of = |path: &Path| {
        text.lines()
            .find(|l| l.contains(&format!(" {}  ", path.display())))
            .unwrap_or_else(|| panic!("no line for {}:\n{text}", path.display()))
            .to_owned()
    };
    let heal_line = line_of(&alice_file);
    assert!(
        heal_line.contains(&format!("0:0 → {alice_uid}:")) && heal_line.ends_with("  goguardd"),
        "{text}"
    );
    let asked_line = line_of(&open_dir);
    assert!(
        asked_line.contains("chmod") && asked_line.ends_with(&format!("  {}", alice.name)),
        "{text}"
    );

    // --path: only records at or beneath it (component-wise).
    let under_bob = records(&ctl(
        &socket,
        &["journal", "--json", "--path", &s(&bob_cache)],
    ));
    assert!(!under_bob.is_empty());
    assert!(
        under_bob
            .iter()
            .all(|r| path_of(r).starts_with(&format!("{}/", bob_cache.display()))),
        "{under_bob:#?}"
    );
    let one_file = records(&ctl(
        &socket,
        &["journal", "--json", "--path", &s(&alice_file)],
    ));
    assert!(!one_file.is_empty());
    assert!(
        one_file.iter().all(|r| path_of(r) == s(&alice_file)),
        "{one_file:#?}"
    );
    let sibling = format!("{}-", alice_file.display());
    assert!(records(&ctl(&socket, &["journal", "--json", "--path", &sibling])).is_empty());

    // --limit: the newest only.
    let newest = records(&ctl(&socket, &["journal", "--json", "--limit", "1"]));
    assert_eq!(newest.len(), 1, "{newest:#?}");
    assert_eq!(newest[0]["id"], all[0]["id"]);

    // --since: a time after every change matches nothing; an hour ago matches all.
    let later = format!("{}", timestamp_now() + 3600);
    let none = alice.ctl_as(&socket, &["journal", "--since", &later]);
    assert_eq!(none.status.code(), Some(0), "{}", stderr(&none));
    assert!(
        stdout(&none).starts_with("no changes journaled since "),
        "{}",
        stdout(&none)
    );
    let recent = records(&ctl(&socket, &["journal", "--json", "--since", "1h"]));
    assert_eq!(recent.len(), all.len());

    // When alice's GOCACHE moves (`go env -w GOCACHE=...`), the old root is no longer
    // hers to read: its records are for admins.
    std::fs::create_dir_all(alice.home.join(".config/go")).unwrap();
    std::fs::write(
        alice.home.join(".config/go/env"),
        format!("GOCACHE={}\n", alice.home.join("gocache2").display()),
    )
    .unwrap();
    let t = Instant::now();
    loop {
        let roots = json_with_code(&alice.ctl_as(&socket, &["roots", "--json"]), 0);
        let known = roots["roots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == s(&alice_cache));
        if !known {
            break;
        }
        assert!(
            t.elapsed() < STARTUP,
            "roots never followed the go env file"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let orphaned = records(&alice.ctl_as(&socket, &["journal", "--json"]));
    assert!(
        orphaned.iter().all(|r| r["root"] != s(&alice_cache)),
        "{orphaned:#?}"
    );
    let admin = records(&ctl(&socket, &["journal", "--json"]));
    assert!(admin.iter().any(|r| r["id"] == healed["id"]), "{admin:#?}");
}

fn timestamp_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_journal_command_is_friendly_when_empty_and_clear_on_errors() {
    let sb = Sandbox::new();
    sb.write_config("metrics_listen = \"\"");
    let _daemon = sb.start();
    let socket = sb.socket();

    let empty = ctl(&socket, &["journal"]);
    assert_eq!(empty.status.code(), Some(0), "{}", stderr(&empty));
    assert_eq!(stdout(&empty), "no changes journaled\n");
    let filtered = ctl(
        &socket,
        &["journal", "--path", "/nowhere", "--since", "10m"],
    );
    assert_eq!(filtered.status.code(), Some(0), "{}", stderr(&filtered));
    assert!(
        stdout(&filtered).starts_with("no changes journaled at or beneath /nowhere since "),
        "{}",
        stdout(&filtered)
    );
    assert_eq!(
        records(&ctl(&socket, &["journal", "--json"])),
        Vec::<Value>::new()
    );

    let bad_since = ctl(&socket, &["journal", "--since", "yesterday"]);
    assert_eq!(bad_since.status.code(), Some(2));
    assert!(
        stderr(&bad_since).contains("--since") && stderr(&bad_since).contains("10m"),
        "{}",
        stderr(&bad_since)
    );
    let bad_limit = ctl(&socket, &["journal", "--limit", "0"]);
    assert_eq!(bad_limit.status.code(), Some(2), "{}", stderr(&bad_limit));
    let gone = sb.path().join("run/nothing.sock");
    let unreachable = ctl(&gone, &["journal"]);
    assert_eq!(unreachable.status.code(), Some(2));
    assert!(
        stderr(&unreachable).contains("nothing.sock"),
        "{}",
        stderr(&unreachable)
    );
}
