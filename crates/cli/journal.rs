//! `goguardctl journal`: the repair journal for people (a table: when, what
//! operation on which path, before → after, why, and who asked) and for
//! scripts (`--json`). Filtering, limits and who may see which rows are the
//! daemon's; this module only asks and renders. It never changes anything.

use std::path::PathBuf;
use std::process::ExitCode;

use goguard_proto::v1 as pb;
use serde::Serialize;

use crate::render::{self, Style, Table};
use crate::timefmt;

/// Who made a change when no one asked for it: goguardd itself.
const SELF: &str = "goguardd";

#[derive(Debug, clap::Args)]
pub struct JournalArgs {
    /// At most this many changes, newest first (1..10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Only changes at or beneath this path (relative paths are taken from the
    /// current directory).
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Only changes since: 10m, 2h, 3d, unix seconds or 2026-11-29T06:00:00Z.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Print JSON (one array, newest first) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The JSON shape of one journal record (`journal --json`).
#[derive(Debug, Serialize)]
pub struct RecordJson {
    pub id: i64,
    pub at_unix: f64,
    pub path: String,
    pub root: String,
    pub operation: String,
    pub before: String,
    pub after: String,
    pub cause: String,
    /// The uid that asked for the change; null when goguardd made it on its own.
    pub requester_uid: Option<u32>,
    /// That uid's login name (the number when it has none); null as above.
    pub requester: Option<String>,
    pub dry_run: bool,
}

impl RecordJson {
    pub fn from_pb(r: &pb::JournalRecord) -> RecordJson {
        RecordJson {
            id: r.id,
            at_unix: r.at_unix,
            path: r.path.clone(),
            root: r.root.clone(),
            operation: r.operation.clone(),
            before: r.before.clone(),
            after: r.after.clone(),
            cause: r.cause.clone(),
            requester_uid: r.requester_uid,
            requester: r.requester_uid.map(crate::render::user_name),
            dry_run: r.dry_run,
        }
    }

    /// Who made the change, for the table.
    fn by(&self) -> &str {
        self.requester.as_deref().unwrap_or(SELF)
    }
}

pub async fn run(socket: Option<PathBuf>, args: JournalArgs, style: Style) -> ExitCode {
    let since_unix = match args
        .since
        .as_deref()
        .map(|s| timefmt::parse_since(s, timefmt::now_unix()))
    {
        None => 0.0,
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            eprintln!("goguardctl: --since: {e}");
            return ExitCode::from(2);
        }
    };
    let mut client = match crate::connect_or_exit(socket.as_deref()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut request = pb::ListJournalRequest {
        limit: args.limit,
        path_prefix: args
            .path
            .map(|p| crate::absolute(p).display().to_string())
            .unwrap_or_default(),
        since_unix,
        ..Default::default()
    };
    let first = request.clone();
    // Every page, each printed as it arrives (the daemon counts the limit across pages).
    let mut out = std::io::stdout().lock();
    let (mut total, mut widths, mut array) = (0usize, Vec::new(), render::JsonArray::default());
    loop {
        let r = match client.list_journal(request.clone()).await {
            Ok(r) => r.into_inner(),
            Err(s) => return crate::rpc_failed("reading the journal", &s),
        };
        let records: Vec<RecordJson> = r.records.iter().map(RecordJson::from_pb).collect();
        let text = if args.json {
            records.iter().map(|x| array.item(x)).collect()
        } else if records.is_empty() {
            String::new()
        } else {
            table(&records, &style).render_page(&style, &mut widths, total == 0)
        };
        total += records.len();
        if !crate::emit(&mut out, &text) {
            return ExitCode::SUCCESS;
        }
        if r.next_page_token.is_empty() {
            break;
        }
        request.page_token = r.next_page_token;
    }
    let text = if args.json {
        array.end().to_owned()
    } else {
        footer(total, &first, &style)
    };
    crate::emit(&mut out, &text);
    ExitCode::SUCCESS
}

/// One page of the journal table.
fn table(records: &[RecordJson], style: &Style) -> Table {
    let mut t = Table::new(&["TIME (UTC)", "OPERATION", "PATH", "CHANGE", "CAUSE", "BY"]);
    for x in records {
        let operation = if x.dry_run {
            format!("{} (dry run)", x.operation)
        } else {
            x.operation.clone()
        };
        let change = format!(
            "{} → {}",
            if x.before.is_empty() { "-" } else { &x.before },
            if x.after.is_empty() { "-" } else { &x.after }
        );
        let by = x.by().to_owned();
        let painted_operation = if x.dry_run {
            style.dim(&operation)
        } else {
            style.good(&operation)
        };
        let painted_by = if x.requester.is_none() {
            style.dim(&by)
        } else {
            by.clone()
        };
        t.row(vec![
            plain(timefmt::utc(x.at_unix)),
            (operation, painted_operation),
            plain(x.path.clone()),
            plain(change),
            plain(x.cause.clone()),
            (by, painted_by),
        ]);
    }
    t
}

/// After the table: one line saying that nothing (matching) was journaled, or
/// that the limit was reached.
fn footer(total: usize, request: &pb::ListJournalRequest, style: &Style) -> String {
    if total == 0 {
        let mut line = "no changes journaled".to_owned();
        if !request.path_prefix.is_empty() {
            line.push_str(&format!(
                " at or beneath {}",
                render::term_safe(&request.path_prefix)
            ));
        }
        if request.since_unix > 0.0 {
            line.push_str(&format!(" since {} UTC", timefmt::utc(request.since_unix)));
        }
        return format!("{}\n", style.good(&line));
    }
    if total as u32 >= request.limit {
        style.dim(&format!(
            "(the newest {total}; --limit shows more, --since or --path fewer)\n"
        ))
    } else {
        String::new()
    }
}

/// A table cell without colour.
fn plain(text: String) -> (String, String) {
    (text.clone(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(requester_uid: Option<u32>) -> pb::JournalRecord {
        pb::JournalRecord {
            id: 7,
            at_unix: 1_700_000_000.0,
            path: "/home/u/.cache/go-build/ab/x-d".into(),
            root: "/home/u/.cache/go-build".into(),
            operation: "chown".into(),
            before: "0:0".into(),
            after: "1000:1000".into(),
            cause: "self-heal: chown 1000:1000".into(),
            requester_uid,
            dry_run: false,
        }
    }

    fn request(limit: u32) -> pb::ListJournalRequest {
        pb::ListJournalRequest {
            limit,
            ..Default::default()
        }
    }

    fn render_table(
        records: &[RecordJson],
        request: &pb::ListJournalRequest,
        style: &Style,
    ) -> String {
        let rows = if records.is_empty() {
            String::new()
        } else {
            table(records, style).render(style)
        };
        rows + &footer(records.len(), request, style)
    }

    #[test]
    fn a_table_says_when_what_why_and_who() {
        let style = Style { color: false };
        let rows = [
            RecordJson::from_pb(&record(None)),
            RecordJson::from_pb(&record(Some(0))),
        ];
        let text = render_table(&rows, &request(100), &style);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0]
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>(),
            ["TIME (UTC)", "OPERATION", "PATH", "CHANGE", "CAUSE", "BY"]
        );
        assert!(
            lines[1].starts_with("2023-11-14 22:13:20  chown      /home/u/.cache/go-build/ab/x-d"),
            "{text}"
        );
        assert!(lines[1].contains("0:0 → 1000:1000"), "{text}");
        assert!(
            lines[1].ends_with("self-heal: chown 1000:1000  goguardd"),
            "{text}"
        );
        assert!(lines[2].ends_with("  root"), "uid 0 is named: {text}");
    }

    #[test]
    fn a_full_page_says_there_may_be_more_and_nothing_says_so() {
        let style = Style { color: false };
        let rows = [RecordJson::from_pb(&record(None))];
        assert!(render_table(&rows, &request(1), &style).contains("--limit shows more"));
        assert!(!render_table(&rows, &request(2), &style).contains("--limit"));
        let mut filtered = request(100);
        filtered.path_prefix = "/home/u".into();
        assert_eq!(
            render_table(&[], &filtered, &style),
            "no changes journaled at or beneath /home/u\n"
        );
    }

    #[test]
    fn json_has_null_requester_for_goguardd_itself() {
        let j = serde_json::to_value(RecordJson::from_pb(&record(None))).unwrap();
        assert_eq!(j["requester_uid"], serde_json::Value::Null);
        assert_eq!(j["requester"], serde_json::Value::Null);
        assert_eq!(j["operation"], "chown");
        let j = serde_json::to_value(RecordJson::from_pb(&record(Some(0)))).unwrap();
        assert_eq!(j["requester_uid"], 0);
        assert_eq!(j["requester"], "root");
    }
}
