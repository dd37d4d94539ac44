//! goguardctl: the command-line client of goguardd.
//!
//! Layout (crates/cli/): `client` finds and connects to the daemon's socket;
//! `render` holds tables and colour; one module per command (`status`).
//! Offline commands (`completions`, `man`) need no daemon.
//!
//! Exit codes: 0 success (healthy); 1 the command worked but found a problem
//! (a degraded daemon, later: something left unrepaired); 2 an error: the
//! daemon unreachable, a refusal, bad arguments.

mod client;
mod render;
mod status;

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
    eprintln!("goguardctl: {what} failed: {}{hint}", status.message());
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
        serde_json::to_string_pretty(&s).expect("status serializes") + "\n"
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
