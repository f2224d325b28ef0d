//! `depot`: the daemon (`depot serve`) and its client commands.

use depot::cli::{self, CliError, Client};
use depot::config::Config;
use lexopt::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  depot serve [--board NAME|FILE] [--config FILE] [--data-root DIR] [--socket PATH] [--socket-group NAME]
              [--tcp ADDR|none] [--platform OS/ARCH[/VARIANT]] [--max-concurrent-downloads N]
              [--memory-budget-mb N] [--insecure-registry HOST[:PORT]]... [--certs-dir DIR]
              [--connect-timeout SECS] [--read-timeout SECS] [--retries N] [--retry-delay-ms MS]
              [--log-file PATH] [--log-level error|warn|info|debug]
  depot config [same options as serve]       print the effective settings
  depot fsck [--repair] [--data-root DIR]    check a stopped daemon's store (exit 1 on problems)
  depot pull [--platform OS/ARCH[/VARIANT]] [--creds USER:PASSWORD] REFERENCE
  depot images
  depot rm [-f] REFERENCE...
  depot --version
client commands take -H/--socket PATH (default: $DEPOT_SOCKET, else the board profile's socket:
./depot-data/depot.sock on a developer machine, /var/run/depot.sock on a NAS)";

/// This machine's settings as the daemon would pick them with no flags: on a NAS, its board profile (so
/// `depot images` over SSH finds `/var/run/depot.sock`); elsewhere the generic one.
fn detected() -> Config {
    Config::resolve(None, None, &[]).unwrap_or_default()
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("depot: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn run() -> Result<(), String> {
    let mut p = lexopt::Parser::from_env();
    let cmd = match p.next().map_err(|e| e.to_string())? {
        Some(Value(v)) => v.into_string().map_err(|_| "bad command".to_string())?,
        Some(Short('h') | Long("help")) | None => {
            println!("{USAGE}");
            return Ok(());
        }
        Some(Short('V') | Long("version")) => {
            println!("depot {} ({})", env!("CARGO_PKG_VERSION"), std::env::consts::ARCH);
            return Ok(());
        }
        Some(a) => return Err(format!("{}\n{USAGE}", a.unexpected())),
    };
    if cmd == "serve" {
        return serve(p);
    }
    if cmd == "fsck" {
        return fsck(p);
    }
    if cmd == "config" {
        print!("{}", daemon_config(p)?.render());
        return Ok(());
    }
    let mut socket = std::env::var_os("DEPOT_SOCKET").map(PathBuf::from);
    let (mut platform, mut creds, mut force, mut args) = (None, None, false, Vec::new());
    while let Some(a) = p.next().map_err(|e| e.to_string())? {
        match a {
            Short('H') | Long("socket") => socket = Some(p.value().map_err(|e| e.to_string())?.into()),
            Long("platform") => {
                platform = Some(
                    p.value()
                        .map_err(|e| e.to_string())?
                        .string()
                        .map_err(|e| e.to_string())?,
                )
            }
            Long("creds") => {
                creds = Some(
                    p.value()
                        .map_err(|e| e.to_string())?
                        .string()
                        .map_err(|e| e.to_string())?,
                )
            }
            Short('f') | Long("force") => force = true,
            Value(v) => args.push(v.string().map_err(|e| e.to_string())?),
            a => return Err(format!("{}\n{USAGE}", a.unexpected())),
        }
    }
    let client = Client {
        socket: socket.unwrap_or_else(|| detected().socket_path()),
    };
    let r: Result<(), CliError> = smol::block_on(async {
        match (cmd.as_str(), args.as_slice()) {
            ("pull", [r]) => cli::pull(&client, r, platform.as_deref(), creds.as_deref()).await,
            ("images", []) => cli::images(&client).await,
            ("rm" | "rmi", names) if !names.is_empty() => cli::rm(&client, names, force).await,
            _ => Err(CliError::Usage(format!("bad command line\n{USAGE}"))),
        }
    });
    r.map_err(|e| e.to_string())
}

/// Flags of `serve` and `config`, as settings keys (see `depot::config::Config::set`).
fn setting_for_flag(flag: &str) -> Option<&'static str> {
    Some(match flag {
        "data-root" => "data_root",
        "socket" => "socket",
        "socket-group" => "socket_group",
        "tcp" => "tcp",
        "platform" => "platform",
        "max-concurrent-downloads" => "concurrent_downloads",
        "memory-budget-mb" => "memory_budget_mb",
        "insecure-registry" => "insecure_registries",
        "certs-dir" => "certs_dir",
        "connect-timeout" => "connect_timeout",
        "read-timeout" => "read_timeout",
        "retries" => "retries",
        "retry-delay-ms" => "retry_delay_ms",
        "log-file" => "log_file",
        "log-level" => "log_level",
        _ => return None,
    })
}

fn daemon_config(mut p: lexopt::Parser) -> Result<Config, String> {
    let e = |e: lexopt::Error| e.to_string();
    let (mut board, mut file, mut flags) = (None, None, Vec::new());
    while let Some(a) = p.next().map_err(e)? {
        match a {
            Long("board") => board = Some(p.value().map_err(e)?.string().map_err(e)?),
            Long("config") => file = Some(p.value().map_err(e)?.string().map_err(e)?),
            Long(flag) => {
                let flag = flag.to_string();
                let key = setting_for_flag(&flag).ok_or(format!("unknown option --{flag}\n{USAGE}"))?;
                flags.push((key.to_string(), p.value().map_err(e)?.string().map_err(e)?));
            }
            a => return Err(format!("{}\n{USAGE}", a.unexpected())),
        }
    }
    let text = match &file {
        Some(f) => Some(std::fs::read_to_string(f).map_err(|x| format!("config file {f}: {x}"))?),
        None => None,
    };
    let file = file.as_deref().zip(text.as_deref()).map(|(f, t)| (t, f));
    Config::resolve(board.as_deref(), file, &flags).map_err(|x| x.to_string())
}

fn fsck(mut p: lexopt::Parser) -> Result<(), String> {
    let e = |e: lexopt::Error| e.to_string();
    let (mut root, mut repair) = (detected().data_root, false);
    while let Some(a) = p.next().map_err(e)? {
        match a {
            Long("data-root") => root = p.value().map_err(e)?.into(),
            Long("repair") => repair = true,
            a => return Err(format!("{}\n{USAGE}", a.unexpected())),
        }
    }
    let report = depot::fsck::run(&root, repair).map_err(|x| x.to_string())?;
    print!("{}", depot::fsck::render(&report));
    // --repair mends blobs and images; a damaged database file it cannot mend
    if report.clean() || (repair && report.db.is_empty()) {
        Ok(())
    } else {
        Err("the store has problems".into())
    }
}

fn serve(p: lexopt::Parser) -> Result<(), String> {
    let cfg = daemon_config(p)?;
    depot::logger::init(&cfg.log_level, cfg.log_file.as_deref());
    let d = depot::daemon::open(&cfg).map_err(|x| x.to_string())?;
    depot::daemon::serve(&cfg, d).map_err(|x| x.to_string())
}
