//! goguardctl: the command-line client of goguardd.
//!
//! Layout (crates/cli/): `client` finds and connects to the daemon's socket;
//! `render` holds tables and colour, `timefmt` times; one module per command
//! (`status`, `denials` with `watch`, `explain`, `journal`, `bundle`, `clean`, `label`, ...).
//! Offline commands (`explain`, `bundle`, `clean`, `doctor`, `completions`, `man`) need no
//! daemon.
//!
//! Exit codes: 0 success (healthy); 1 the command worked but found a problem
//! (a degraded daemon, later: something left unrepaired); 2 an error: the
//! daemon unreachable, a refusal, bad arguments.

mod bundle;
mod clean;
mod client;
mod denials;
mod doctor;
mod explain;
mod hygiene;
mod journal;
mod label;
mod policy;
mod render;
mod roots;
mod status;
mod timefmt;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "goguardctl",
    version,
    about = "Control and query goguardd, the Go build-cache guardian",
    after_help = "Exit status: 0 success, 1 a problem was found, 2 error (daemon unreachable, \
                  permission denied, bad arguments)."
)]
struct Cli {
    /// The daemon's control socket [default: your user daemon's socket if it
    /// runs, else /run/goguard/goguard.sock]
    #[arg(long, global = true, env = goguard_layout::SOCKET_ENV, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// When to colour the output.
    #[arg(long, global = true, value_enum, default_value_t = render::ColorChoice::Auto)]
    color: render::ColorChoice,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the daemon's version, mode, paths and the state of its components.
    Status {
        /// Print JSON instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// List the go-related SELinux denials goguardd has seen, newest first.
    Denials {
        /// Only denials seen since: 10m, 2h, 3d, unix seconds or 2026-11-29T06:00:00Z.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only this command (exact: go, compile, link, ...).
        #[arg(long)]
        comm: Option<String>,
        /// Only targets at or beneath this path.
        #[arg(long, value_name = "PATH")]
        path: Option<String>,
        /// Only this status: new, fixed, acknowledged or ignored.
        #[arg(long, value_parser = denials::parse_status)]
        status: Option<goguard_proto::v1::DenialStatus>,
        /// At most this many denials (0 = all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Print each denial's diagnosis (cause, explanation, fixes) under it.
        #[arg(long)]
        explain: bool,
    },
    /// List the cache roots goguardd guards (yours, or all for admins).
    Roots {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List what drifted in the roots (owner, mode, ACL, label), as of the last scan.
    Findings {
        /// Only findings at or beneath this path.
        #[arg(long, value_name = "PATH")]
        path: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Repair a cache root or a path inside one. Exit 0: done or nothing to
    /// do; 1: something left unrepaired; 2: error or refusal.
    Repair {
        /// Show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this kind of drift (repeatable): foreign_owner, wrong_group,
        /// bad_mode, world_writable, wrong_label, ...
        #[arg(long = "kind", value_name = "KIND")]
        kinds: Vec<String>,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// The root or a path inside it (relative paths are taken from the
        /// current directory).
        path: PathBuf,
    },
    /// Show the repair journal: every change goguardd made (owner, mode, ACL,
    /// label), newest first, with its cause and who asked for it. Admins see
    /// all; a user the changes in their own roots. Exit 0 (also when nothing
    /// was journaled); 2: error.
    Journal(journal::JournalArgs),
    /// Declared root labels as local file-context rules, so restorecon keeps them.
    #[command(subcommand)]
    Label(label::LabelCommand),
    /// Discover the roots again and scan (and self-heal) them now. Admins only.
    Rescan {
        /// Print JSON instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// Print goguardd's events as they happen (one line each; Ctrl-C stops).
    Watch {
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Explain the go-related SELinux denials in an audit log, offline (no
    /// daemon needed). Exit 0: none found; 1: some found; 2: error.
    Explain {
        /// Include denials that are not go-related.
        #[arg(long)]
        all: bool,
        /// One JSON object per AVC/USER_AVC record.
        #[arg(long)]
        json: bool,
        /// Process names that count as Go tools (repeatable; default: go,
        /// compile, link, asm, cgo, vet, cover, buildid, pack, gofmt, gopls, *.test).
        #[arg(long = "tool", value_name = "NAME")]
        tools: Vec<String>,
        /// A binary policy (policy.33) to ask for booleans, constraints and
        /// missing rules, as audit2why does; without it, label and owner
        /// analysis only.
        #[arg(long, value_name = "PATH")]
        policy: Option<PathBuf>,
        /// The audit log; `-` reads standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Draft a SELinux policy module (.te) allowing the go-related denials,
    /// from the daemon's stored denials or an audit log (--input), with the
    /// label changes that are the better answer. Exit 0: a module; 1:
    /// nothing to allow; 2: error.
    Policy(policy::PolicyArgs),
    /// Trim GOCACHE roots by Go's own rules (entries unused for 5 days) and
    /// their size caps, now. Exit 0: done or nothing due; 1: a root could not
    /// be fully trimmed; 2: error or refusal.
    Trim(hygiene::TrimArgs),
    /// Module-cache (GOMODCACHE) checks.
    #[command(subcommand)]
    Modcache(hygiene::ModcacheCommand),
    /// Offline module-cache prefill: export the modules some go.mod files need
    /// on a connected host, verify and import them on an offline one; no
    /// daemon needed.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Remove a CI workspace or a cache whose module directories Go made read-only
    /// (every directory made writable first; symlinks removed, never followed; mounts
    /// inside left), or with --keep only make it writable; no daemon needed.
    /// Exit 0: done; 1: something left; 2: error.
    Clean(clean::CleanArgs),
    /// Check your Go caches (paths, owners, modes, shared roots, labels, exec in
    /// GOTMPDIR) and print the command that fixes each problem; no daemon needed.
    /// Exit 0: healthy; 1: a problem found; 2: error.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the goguardctl(1) man page (roff).
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let style = render::Style::new(cli.color);
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "goguardctl",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            let mut out = Vec::new();
            if let Err(e) = man.render(&mut out) {
                eprintln!("goguardctl: cannot render the man page: {e}");
                return ExitCode::from(2);
            }
            let _ = std::io::stdout().write_all(&out);
            ExitCode::SUCCESS
        }
        Command::Status { json } => run_async(status(cli.socket, json, style)),
        Command::Denials {
            since,
            comm,
            path,
            status,
            limit,
            json,
            explain,
        } => {
            let now = timefmt::now_unix();
            let since_unix = match since.as_deref().map(|s| timefmt::parse_since(s, now)) {
                None => 0.0,
                Some(Ok(t)) => t,
                Some(Err(e)) => {
                    eprintln!("goguardctl: --since: {e}");
                    return ExitCode::from(2);
                }
            };
            let request = goguard_proto::v1::ListDenialsRequest {
                since_unix,
                comm: comm.unwrap_or_default(),
                path_prefix: path.unwrap_or_default(),
                status: status.map(|s| s as i32).unwrap_or(0),
                page_size: 0,
                page_token: String::new(),
            };
            run_async(list_denials(
                cli.socket, request, limit, json, explain, style,
            ))
        }
        Command::Watch { json } => run_async(watch(cli.socket, json, style)),
        Command::Roots { json } => run_async(list_roots(cli.socket, json, style)),
        Command::Rescan { json } => run_async(rescan(cli.socket, json)),
        Command::Findings { path, json } => run_async(list_findings(cli.socket, path, json, style)),
        Command::Repair {
            dry_run,
            kinds,
            json,
            path,
        } => run_async(repair(cli.socket, path, kinds, dry_run, json, style)),
        Command::Journal(args) => run_async(journal::run(cli.socket, args, style)),
        Command::Label(cmd) => run_async(label::run(cli.socket, cmd)),
        Command::Trim(args) => run_async(hygiene::trim(cli.socket, args, style)),
        Command::Modcache(cmd) => run_async(hygiene::modcache(cli.socket, cmd, style)),
        Command::Bundle(cmd) => bundle::run(cmd),
        Command::Clean(args) => clean::run(args),
        Command::Doctor(args) => doctor::run(args, cli.socket.as_deref(), &style),
        Command::Explain {
            all,
            json,
            tools,
            policy,
            file,
        } => explain_file(&file, all, json, tools, policy.as_deref(), &style),
        Command::Policy(args) => policy::run(args, cli.socket, &style),
    }
}

fn explain_file(
    file: &std::path::Path,
    all: bool,
    json: bool,
    tools: Vec<String>,
    policy: Option<&std::path::Path>,
    style: &render::Style,
) -> ExitCode {
    let cannot_read = |e: std::io::Error| {
        eprintln!(
            "goguardctl: cannot read {}: {e}{}",
            file.display(),
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (the audit log is readable by root only: use sudo)"
            } else {
                ""
            }
        );
        ExitCode::from(2)
    };
    let input: Box<dyn std::io::Read> = if file == std::path::Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(f),
            Err(e) => return cannot_read(e),
        }
    };
    let tools = if tools.is_empty() {
        goguard_audit::GoTools::default()
    } else {
        goguard_audit::GoTools::new(tools)
    };
    let policy = match policy.map(explain::PolicyInUse::load).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("goguardctl: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = explain::Options {
        all,
        json,
        policy: policy.as_ref(),
        style,
    };
    match explain::explain(input, &tools, opts, std::io::stdout().lock()) {
        Ok(counts) if counts.go_related_denials > 0 => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(explain::ExplainError::Read(e)) => cannot_read(e),
        Err(explain::ExplainError::Write(e)) => {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("goguardctl: cannot write the report: {e}");
            }
            ExitCode::from(2)
        }
    }
}

async fn list_denials(
    socket: Option<PathBuf>,
    mut request: goguard_proto::v1::ListDenialsRequest,
    limit: usize,
    json: bool,
    explain: bool,
    style: render::Style,
) -> ExitCode {
    let (mut client, _) = match client::connect(socket.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("goguardctl: {e}");
            return ExitCode::from(2);
        }
    };
    let mut all = Vec::new();
    loop {
        let want = if limit == 0 {
            1000
        } else {
            (limit - all.len()).min(1000)
        };
        request.page_size = want as u32;
        let page = match client.list_denials(request.clone()).await {
            Ok(r) => r.into_inner(),
            Err(s) => return rpc_failed("listing denials", &s),
        };
        all.extend(page.denials);
        if page.next_page_token.is_empty() || (limit != 0 && all.len() >= limit) {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let text = if json {
        let rows: Vec<denials::DenialJson> = all.iter().map(denials::DenialJson::from_pb).collect();
        crate::render::json_pretty(&rows)
    } else if explain {
        denials::render_explained(&all, &style)
    } else {
        denials::render_table(&all, &style)
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

async fn watch(socket: Option<PathBuf>, json: bool, style: render::Style) -> ExitCode {
    use tokio_stream::StreamExt;
    let (mut client, path) = match client::connect(socket.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("goguardctl: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stream = match client
        .watch_events(goguard_proto::v1::WatchEventsRequest {})
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return rpc_failed("watching events", &s),
    };
    if !json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("watching {} (Ctrl-C to stop)", path.display());
    }
    let mut stdout = std::io::stdout();
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        };
        match next {
            Some(Ok(event)) => {
                let line = if json {
                    denials::event_json(&event).map(|e| crate::render::json_line(&e))
                } else {
                    denials::render_event(&event, &style)
                };
                if let Some(line) = line {
                    if writeln!(stdout, "{line}")
                        .and_then(|_| stdout.flush())
                        .is_err()
                    {
                        return ExitCode::SUCCESS; // the reader went away (a closed pipe)
                    }
                }
            }
            Some(Err(s)) => return rpc_failed("watching events", &s),
            None => {
                eprintln!(
                    "goguardctl: goguardd closed the event stream (it is stopping or restarting)"
                );
                return ExitCode::from(2);
            }
        }
    }
}

fn run_async(fut: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("goguardctl: cannot start: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints a gRPC error in one line with what to do, and returns exit code 2.
fn rpc_failed(what: &str, status: &tonic::Status) -> ExitCode {
    let hint = match status.code() {
        tonic::Code::PermissionDenied => {
            " (ask an admin: root or a member of the daemon's admin group)"
        }
        tonic::Code::Unavailable => " (is goguardd running? check `systemctl status goguardd`)",
        tonic::Code::Unimplemented => " (goguardd is older than goguardctl; upgrade the daemon)",
        _ => "",
    };
    eprintln!(
        "goguardctl: {what} failed: {}{hint}",
        render::term_safe(status.message())
    );
    ExitCode::from(2)
}

async fn status(socket: Option<PathBuf>, json: bool, style: render::Style) -> ExitCode {
    let (mut client, _path) = match client::connect(socket.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("goguardctl: {e}");
            return ExitCode::from(2);
        }
    };
    let response = match client
        .get_status(goguard_proto::v1::GetStatusRequest {})
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return rpc_failed("status", &s),
    };
    let s = status::StatusJson::from_response(&response);
    let text = if json {
        crate::render::json_pretty(&s)
    } else {
        status::render(&s, &style)
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if s.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn connect_or_exit(
    socket: Option<&std::path::Path>,
) -> Result<goguard_proto::v1::go_guard_client::GoGuardClient<tonic::transport::Channel>, ExitCode>
{
    match client::connect(socket).await {
        Ok((c, _)) => Ok(c),
        Err(e) => {
            eprintln!("goguardctl: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map(|d| d.join(&path))
            .unwrap_or(path)
    }
}

/// Writes `text` to stdout; false when the reader went away (a closed pipe).
pub(crate) fn emit(out: &mut impl Write, text: &str) -> bool {
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_ok()
}

/// `roots`: every page, each printed as it arrives.
async fn list_roots(socket: Option<PathBuf>, json: bool, style: render::Style) -> ExitCode {
    let mut client = match connect_or_exit(socket.as_deref()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    let mut request = goguard_proto::v1::ListRootsRequest::default();
    let (mut total, mut widths, mut problems) = (0usize, Vec::new(), Vec::new());
    let mut labels = Vec::new();
    loop {
        let r = match client.list_roots(request.clone()).await {
            Ok(r) => r.into_inner(),
            Err(s) => return rpc_failed("listing roots", &s),
        };
        let mut text = String::new();
        if json {
            // {"problems":[..],"roots":[..]}: problems come with the first page.
            if request.page_token.is_empty() {
                text = format!(
                    "{{\"problems\":{},\"roots\":[",
                    render::json_line(&r.problems)
                );
            }
            for (i, x) in r.roots.iter().enumerate() {
                if total + i > 0 {
                    text.push(',');
                }
                text.push_str(&render::json_line(&roots::RootJson::from_pb(x)));
            }
        } else {
            if !r.roots.is_empty() {
                text = roots::roots_table(&r.roots, &style).render_page(
                    &style,
                    &mut widths,
                    total == 0,
                );
            }
            problems.extend(r.problems);
            labels.extend(label::declared(&r.roots));
        }
        total += r.roots.len();
        if !emit(&mut out, &text) {
            return ExitCode::SUCCESS;
        }
        if r.next_page_token.is_empty() {
            break;
        }
        request.page_token = r.next_page_token;
    }
    let text = if json {
        "]}\n".to_owned()
    } else {
        roots::roots_footer(total, &problems) + &label::footer(&labels)
    };
    emit(&mut out, &text);
    ExitCode::SUCCESS
}

/// `findings`: every page, each printed as it arrives. Exit 1 when there are findings.
async fn list_findings(
    socket: Option<PathBuf>,
    path: Option<PathBuf>,
    json: bool,
    style: render::Style,
) -> ExitCode {
    let mut client = match connect_or_exit(socket.as_deref()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut request = goguard_proto::v1::ListFindingsRequest {
        path_prefix: path
            .map(|p| absolute(p).display().to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    let (mut total, mut widths, mut array) = (0usize, Vec::new(), render::JsonArray::default());
    loop {
        let r = match client.list_findings(request.clone()).await {
            Ok(r) => r.into_inner(),
            Err(s) => return rpc_failed("listing findings", &s),
        };
        let text = if json {
            r.findings
                .iter()
                .map(|f| array.item(&roots::FindingJson::from_pb(f)))
                .collect()
        } else if r.findings.is_empty() {
            String::new()
        } else {
            roots::findings_table(&r.findings, &style).render_page(&style, &mut widths, total == 0)
        };
        total += r.findings.len();
        if !emit(&mut out, &text) {
            return ExitCode::from(u8::from(total > 0));
        }
        if r.next_page_token.is_empty() {
            break;
        }
        request.page_token = r.next_page_token;
    }
    if json {
        emit(&mut out, array.end());
    } else if total == 0 {
        emit(&mut out, &roots::render_findings(&[], &style));
    }
    if total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn repair(
    socket: Option<PathBuf>,
    path: PathBuf,
    kinds: Vec<String>,
    dry_run: bool,
    json: bool,
    style: render::Style,
) -> ExitCode {
    let mut client = match connect_or_exit(socket.as_deref()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let path = absolute(path);
    if !json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!(
            "{} {} …",
            if dry_run { "checking" } else { "repairing" },
            render::term_safe(&path.display().to_string())
        );
    }
    let request = goguard_proto::v1::RepairRequest {
        path: path.display().to_string(),
        kinds,
        dry_run,
    };
    let r = match client.repair(request).await {
        Ok(r) => r.into_inner(),
        Err(s) => return rpc_failed("repair", &s),
    };
    let report = roots::RepairJson::from_pb(&r, dry_run);
    let text = if json {
        crate::render::json_pretty(&report)
    } else {
        roots::render_repair(&report, &style)
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if report.left_unrepaired() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn rescan(socket: Option<PathBuf>, json: bool) -> ExitCode {
    let mut client = match connect_or_exit(socket.as_deref()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("scanning every root …");
    }
    let r = match client
        .rescan(goguard_proto::v1::RescanRequest {
            root: String::new(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return rpc_failed("rescan", &s),
    };
    let text = if json {
        serde_json::json!({ "roots": r.roots, "entries": r.entries, "findings": r.findings })
            .to_string()
    } else {
        format!(
            "scanned {} roots, {} entries: {} findings",
            r.roots, r.entries, r.findings
        )
    };
    println!("{text}");
    if r.findings == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
