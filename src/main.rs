//! `depot`: the daemon (`depot serve`) and its client commands.

use depot::cli::{self, CliError, Client};
use depot::config::Config;
use lexopt::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage:
  depot serve [--data-root DIR] [--socket PATH] [--socket-group NAME] [--tcp ADDR|none]
              [--platform OS/ARCH[/VARIANT]] [--max-concurrent-downloads N]
              [--insecure-registry HOST[:PORT]]... [--certs-dir DIR]
              [--connect-timeout SECS] [--read-timeout SECS] [--retries N] [--retry-delay-ms MS]
              [--log-level error|warn|info|debug]
  depot pull [--platform OS/ARCH[/VARIANT]] [--creds USER:PASSWORD] REFERENCE
  depot images
  depot rm [-f] REFERENCE...
client commands take -H/--socket PATH (default: $DEPOT_SOCKET, else ./depot-data/depot.sock)";

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

fn secs(v: std::ffi::OsString) -> Result<Duration, String> {
    let s = v.into_string().map_err(|_| "not unicode".to_string())?;
    s.parse::<f64>()
        .ok()
        .filter(|x| *x > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or(format!("not a number of seconds: {s}"))
}

fn run() -> Result<(), String> {
    let mut p = lexopt::Parser::from_env();
    let cmd = match p.next().map_err(|e| e.to_string())? {
        Some(Value(v)) => v.into_string().map_err(|_| "bad command".to_string())?,
        Some(Short('h') | Long("help")) | None => {
            println!("{USAGE}");
            return Ok(());
        }
        Some(a) => return Err(format!("{}\n{USAGE}", a.unexpected())),
    };
    if cmd == "serve" {
        return serve(p);
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
        socket: socket.unwrap_or_else(|| Config::default().socket_path()),
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

fn serve(mut p: lexopt::Parser) -> Result<(), String> {
    let mut cfg = Config::default();
    let mut level = "info".to_string();
    let e = |e: lexopt::Error| e.to_string();
    while let Some(a) = p.next().map_err(e)? {
        match a {
            Long("data-root") => cfg.data_root = p.value().map_err(e)?.into(),
            Long("socket") => cfg.socket = Some(p.value().map_err(e)?.into()),
            Long("socket-group") => cfg.socket_group = Some(p.value().map_err(e)?.string().map_err(e)?),
            Long("tcp") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                cfg.tcp = if v == "none" {
                    None
                } else {
                    Some(v.parse().map_err(|_| format!("bad --tcp address {v:?}"))?)
                };
            }
            Long("platform") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                cfg.platform = v.parse().map_err(|x: depot::platform::PlatformError| x.to_string())?;
            }
            Long("max-concurrent-downloads") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                cfg.concurrent_downloads = v.parse().ok().filter(|n| *n > 0).ok_or(format!("bad count {v:?}"))?;
            }
            Long("insecure-registry") => cfg.registry.insecure.push(p.value().map_err(e)?.string().map_err(e)?),
            Long("certs-dir") => cfg.registry.certs_dir = Some(p.value().map_err(e)?.into()),
            Long("connect-timeout") => cfg.registry.connect_timeout = secs(p.value().map_err(e)?)?,
            Long("read-timeout") => cfg.registry.read_timeout = secs(p.value().map_err(e)?)?,
            Long("retries") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                cfg.registry.retries = v.parse().map_err(|_| format!("bad count {v:?}"))?;
            }
            Long("retry-delay-ms") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                cfg.registry.backoff = Duration::from_millis(v.parse().map_err(|_| format!("bad delay {v:?}"))?);
            }
            Long("log-level") => level = p.value().map_err(e)?.string().map_err(e)?,
            a => return Err(format!("{}\n{USAGE}", a.unexpected())),
        }
    }
    depot::logger::init(&level);
    let d = depot::daemon::open(&cfg).map_err(|x| x.to_string())?;
    depot::daemon::serve(&cfg, d).map_err(|x| x.to_string())
}
