//! `depot lxc …`: LXC templates through the daemon's station API on the unix socket (trusted, so an unpack may
//! name any absolute destination).

use super::{print_table, CliError, Client};
use crate::progress::human_size;
use hyper::Method;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};

const API: &str = "/api/v1";

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `NAME` as the image routes' `{name…}/{tag}`: the last part is the tag.
fn route_name(name: &str) -> Result<&str, CliError> {
    if name.is_empty() || name.contains("..") || name.starts_with('/') || name.contains(['?', '#', '%', ' ']) {
        return Err(CliError::Usage(format!(
            "{name:?} is not a template name (DIST/RELEASE[/ARCH[/VARIANT]])"
        )));
    }
    if !name.contains('/') {
        return Err(CliError::Usage(format!(
            "{name:?}: a template is named DIST/RELEASE[/ARCH[/VARIANT]], e.g. debian/bookworm"
        )));
    }
    Ok(name)
}

pub async fn sources(c: &Client, refresh: bool) -> Result<(), CliError> {
    let v = c
        .call(
            Method::GET,
            &format!("{API}/lxc/sources{}", if refresh { "?refresh=1" } else { "" }),
        )
        .await?;
    let mut rows = vec![[
        "NAME".to_string(),
        "KIND".into(),
        "TEMPLATES".into(),
        "INDEX".into(),
        "URL".into(),
    ]];
    for x in v.as_array().into_iter().flatten() {
        let state = match s(x, "error") {
            e if e.is_empty() => s(x, "state"),
            e => format!("{} ({e})", s(x, "state")),
        };
        rows.push([s(x, "name"), s(x, "kind"), s(x, "offers"), state, s(x, "url")]);
    }
    print_table(&rows);
    Ok(())
}

pub async fn ls(c: &Client, available: bool, arch: Option<&str>, source: Option<&str>) -> Result<(), CliError> {
    if available {
        let mut q = String::from("category=lxc");
        if let Some(a) = arch {
            q.push_str(&format!("&arch={a}"));
        }
        if let Some(src) = source {
            q.push_str(&format!("&source={src}"));
        }
        let v = c.call(Method::GET, &format!("{API}/image?{q}")).await?;
        let mut rows = vec![[
            "TEMPLATE".to_string(),
            "BUILD".into(),
            "SOURCE".into(),
            "SIZE".into(),
            "KEPT".into(),
        ]];
        for x in v["results"].as_array().into_iter().flatten() {
            let variant = x["tags"][0].as_str().unwrap_or("default");
            rows.push([
                format!("{}/{variant}", s(x, "name")),
                s(x, "build"),
                s(x, "repository"),
                x["size"].as_u64().map(human_size).unwrap_or_else(|| "?".into()),
                if x["installed"].as_bool() == Some(true) {
                    "yes"
                } else {
                    ""
                }
                .into(),
            ]);
        }
        print_table(&rows);
        return Ok(());
    }
    let v = c
        .call(Method::GET, &format!("{API}/image?category=local&type=lxc"))
        .await?;
    let mut rows = vec![["TEMPLATE".to_string(), "BUILD".into(), "SIZE".into(), "SOURCE".into()]];
    for x in v["results"].as_array().into_iter().flatten() {
        let variant = x["tags"][0].as_str().unwrap_or("default");
        rows.push([
            format!("{}/{variant}", s(x, "name")),
            s(x, "build"),
            x["size"][0].as_u64().map(human_size).unwrap_or_default(),
            s(x, "source"),
        ]);
    }
    print_table(&rows);
    Ok(())
}

/// Start the download and follow it in `downloadstatus` until it ends.
pub async fn pull(c: &Client, name: &str, source: Option<&str>) -> Result<(), CliError> {
    let name = route_name(name)?;
    let repo = source.unwrap_or("any");
    let v = c
        .call_json(
            Method::POST,
            &format!("{API}/image/{repo}/lxc/{name}/download"),
            Some(json!({})),
        )
        .await?;
    let id = v["id"]
        .as_i64()
        .ok_or_else(|| CliError::Protocol(format!("no download id in {v}")))?;
    let tty = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    let mut last_tenth = -1i64;
    // bounded: a day at two polls a second
    for _ in 0..(2 * 86_400) {
        let list = c.call(Method::GET, &format!("{API}/image/downloadstatus")).await?;
        let Some(d) = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["id"].as_i64() == Some(id))
        else {
            return Err(CliError::Protocol(format!("download {id} is not listed")));
        };
        let status = s(d, "status");
        let pct = d["percent"].as_f64();
        let line = format!(
            "{}/{}: {status} {} of {} ({}/s)",
            s(d, "name"),
            s(d, "tag"),
            human_size(d["bytes_done"].as_u64().unwrap_or(0)),
            d["bytes_total"].as_u64().map(human_size).unwrap_or_else(|| "?".into()),
            human_size(d["rate"].as_u64().unwrap_or(0)),
        );
        match status.as_str() {
            "complete" => {
                let _ = writeln!(out, "{}{line}", if tty { "\r\x1b[2K" } else { "" });
                return Ok(());
            }
            "failed" => {
                let _ = writeln!(out);
                return Err(CliError::Daemon(format!(
                    "Error response from daemon: {}",
                    s(d, "message")
                )));
            }
            "paused" => {
                let _ = writeln!(
                    out,
                    "{line}: resume it with the station API (PUT …/image/downloads/{id}/resume)"
                );
                return Ok(());
            }
            _ => {}
        }
        if tty {
            let _ = write!(out, "\r\x1b[2K{line}");
            let _ = out.flush();
        } else if let Some(p) = pct {
            let tenth = (p / 10.0) as i64;
            if tenth != last_tenth {
                last_tenth = tenth;
                let _ = writeln!(out, "{line}");
            }
        }
        async_io::Timer::after(std::time::Duration::from_millis(500)).await;
    }
    Err(CliError::Protocol(format!("download {id} did not end within a day")))
}

pub async fn rm(c: &Client, names: &[String]) -> Result<(), CliError> {
    let mut failed = None;
    for n in names {
        let name = route_name(n)?;
        match c.call(Method::DELETE, &format!("{API}/image/local/lxc/{name}")).await {
            Ok(v) => println!(
                "Deleted: {} ({} freed)",
                s(&v, "deleted"),
                human_size(v["freed"].as_u64().unwrap_or(0))
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = Some(e);
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

pub async fn unpack(
    c: &Client,
    name: &str,
    dest: &std::path::Path,
    shift: Option<&str>,
    unprivileged: bool,
) -> Result<(), CliError> {
    let name = route_name(name)?;
    let dest = if dest.is_absolute() {
        dest.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| CliError::Usage(format!("the current directory: {e}")))?
            .join(dest)
    };
    let v = c
        .call_json(
            Method::POST,
            &format!("{API}/image/lxc/{name}/unpack"),
            Some(json!({"dest": dest.display().to_string(), "shift": shift, "unprivileged": unprivileged})),
        )
        .await?;
    let sm = &v["summary"];
    println!(
        "{} unpacked into {}: {} files ({}), {} directories, {} symlinks, {} hardlinks, {} devices{}, {} xattrs",
        s(&v, "template"),
        s(&v, "dest"),
        sm["files"],
        human_size(sm["bytes"].as_u64().unwrap_or(0)),
        sm["dirs"],
        sm["symlinks"],
        sm["hardlinks"],
        sm["devices"],
        match sm["devices_skipped"].as_u64() {
            Some(n) if n > 0 => format!(" ({n} skipped: not running as root)"),
            _ => String::new(),
        },
        sm["xattrs"],
    );
    if let Some(m) = v["create_message"].as_str() {
        print!("{m}");
    }
    Ok(())
}

pub async fn convert(c: &Client, image: &str, name: Option<&str>) -> Result<(), CliError> {
    let (repo, tag) = crate::reference::split_tag(image);
    if repo.is_empty() || image.contains("..") || image.contains(['?', '#', ' ']) {
        return Err(CliError::Usage(format!("{image:?} is not an image reference")));
    }
    let v = c
        .call_json(
            Method::POST,
            &format!("{API}/image/docker/{repo}/{}/convert", tag.unwrap_or("latest")),
            Some(match name {
                Some(n) => json!({"name": n}),
                None => json!({}),
            }),
        )
        .await?;
    println!(
        "{}/{}: LXC template made of {image} ({})",
        s(&v, "name"),
        v["tags"][0].as_str().unwrap_or(""),
        human_size(v["size"][0].as_u64().unwrap_or(0))
    );
    Ok(())
}
