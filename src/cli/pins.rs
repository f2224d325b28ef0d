//! `depot pin`: what installed apps keep, over the station API's `/pins`.

use super::{print_table, CliError, Client};
use crate::engine_client::{check, enc};
use http_body_util::BodyExt;
use hyper::Method;
use std::io::Write;

const API: &str = "/api/v1/pins";

fn table(v: &serde_json::Value) {
    let mut rows = vec![["OWNER".to_string(), "TARGET".into()]];
    for p in v.as_array().into_iter().flatten() {
        let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
        rows.push([s("owner"), s("target")]);
    }
    print_table(&rows);
}

/// Pin `targets` for `owner`, then list the owner's pins.
pub async fn add(c: &Client, owner: &str, targets: &[String]) -> Result<(), CliError> {
    let body = serde_json::json!({"owner": owner, "targets": targets});
    table(&c.call_json(Method::POST, API, Some(body)).await?);
    Ok(())
}

pub async fn ls(c: &Client, owner: Option<&str>) -> Result<(), CliError> {
    let path = match owner {
        Some(o) => format!("{API}?owner={}", enc(o)),
        None => API.to_string(),
    };
    table(&c.call(Method::GET, &path).await?);
    Ok(())
}

/// Release `owner`'s pins on `targets`, or all of them.
pub async fn rm(c: &Client, owner: &str, targets: &[String]) -> Result<(), CliError> {
    let query: Vec<String> = targets.iter().map(|t| format!("target={}", enc(t))).collect();
    let path = format!("{API}/{}?{}", enc(owner), query.join("&"));
    let v = c.call(Method::DELETE, &path).await?;
    println!("{} pins released", v["removed"].as_u64().unwrap_or(0));
    Ok(())
}

/// `depot ensure`: the daemon's `POST /ensure`, its lines rendered (or passed on with `json`) as they come. The
/// error of a failed target says its class: a policy's refusal and a full volume have exit codes of their own.
pub async fn ensure(c: &Client, owner: &str, targets: &[String], json: bool) -> Result<(), CliError> {
    let body = serde_json::json!({"owner": owner, "targets": targets}).to_string();
    let resp = c
        .send_body(
            Method::POST,
            "/api/v1/ensure",
            &[("content-type", "application/json".into())],
            crate::engine_client::Outgoing::Bytes(body.into()),
        )
        .await?;
    follow_lines(
        resp,
        json,
        "ensured",
        "the daemon ended the ensure stream before it finished (run it again: it joins the download)",
        render,
    )
    .await
}

/// Follow a stream of JSON lines (ensure's, a bundle import's): each rendered for a person (or passed on as it
/// is with `json`) until the line whose status is `done`, or `failed` (its class chooses the exit code).
pub(super) async fn follow_lines(
    resp: hyper::Response<hyper::body::Incoming>,
    json: bool,
    done: &str,
    cut_short: &str,
    render: fn(&mut std::io::StdoutLock<'static>, &serde_json::Value, bool),
) -> Result<(), CliError> {
    let mut resp = check(resp).await?;
    let tty = !json && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut out = std::io::stdout().lock();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = resp.body_mut().frame().await {
        let frame = frame.map_err(|e| CliError::Protocol(format!("the stream broke: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Ok(m) = serde_json::from_slice::<serde_json::Value>(&line) else {
                continue;
            };
            if json {
                let _ = out.write_all(&line);
                let _ = out.flush();
            } else {
                render(&mut out, &m, tty);
            }
            match m["status"].as_str() {
                Some(s) if s == done => return Ok(()),
                Some("failed") => return Err(failure(&m)),
                _ => {}
            }
        }
    }
    Err(CliError::Protocol(cut_short.into()))
}

/// One line for a person: a step per line, progress redrawn in place on a terminal (and not shown otherwise).
fn render(out: &mut std::io::StdoutLock<'static>, m: &serde_json::Value, tty: bool) {
    let t = m["target"].as_str().unwrap_or_default();
    let _ = match m["status"].as_str().unwrap_or_default() {
        "progress" if tty => {
            let cur = m["current"].as_u64().unwrap_or(0);
            match m["total"].as_u64().filter(|t| *t > 0) {
                Some(total) => write!(
                    out,
                    "\r{t}: {} of {}   ",
                    crate::progress::human_size(cur),
                    crate::progress::human_size(total)
                ),
                None => write!(out, "\r{t}: {}   ", crate::progress::human_size(cur)),
            }
        }
        "progress" => Ok(()),
        "present" => writeln!(out, "{t}: present"),
        "pulling" => writeln!(out, "{t}: pulling (download {})", m["download"]),
        "pulled" => writeln!(out, "{}{t}: pulled", if tty { "\r" } else { "" }),
        "ensured" => writeln!(out, "ensured and pinned"),
        _ => Ok(()),
    };
    let _ = out.flush();
}

pub(super) fn failure(m: &serde_json::Value) -> CliError {
    let message = m["message"].as_str().unwrap_or("failed");
    let msg = match m["target"].as_str() {
        Some(t) => format!("{t}: {message}"),
        None => message.to_string(),
    };
    match m["class"].as_str() {
        Some("forbidden") => CliError::Refused(msg),
        Some("insufficient_storage") => CliError::NoSpace(msg),
        _ => CliError::Daemon(msg),
    }
}
