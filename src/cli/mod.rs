//! The `depot` client commands: they talk to the daemon over its unix socket, like the docker CLI does.

pub mod args;
pub mod bundle;
pub mod lxc;
pub mod pins;

use crate::progress;
use crate::reference::Reference;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, Response};
use std::io::Write;

pub use crate::engine_client::engine_load;
use crate::engine_client::{body_bytes, check, enc, post_tar, stream_reader};
pub use crate::engine_client::{Client, ClientError as CliError, Outgoing};

struct Renderer {
    tty: bool,
    ids: Vec<String>,
}

impl Renderer {
    fn message(&mut self, out: &mut impl Write, m: &serde_json::Value) -> std::io::Result<()> {
        let status = m.get("status").and_then(|s| s.as_str()).unwrap_or("");
        let id = m.get("id").and_then(|s| s.as_str());
        let is_progress = m.get("progress").is_some();
        let (Some(id), true) = (id, !status.starts_with("Pulling from")) else {
            match id {
                Some(id) => writeln!(out, "{id}: {status}")?,
                None => writeln!(out, "{status}")?,
            }
            return Ok(());
        };
        if !self.tty {
            if !is_progress {
                writeln!(out, "{id}: {status}")?;
            }
            return Ok(());
        }
        let text = match m
            .get("progressDetail")
            .and_then(|d| d.get("total"))
            .and_then(|t| t.as_u64())
        {
            Some(total) => {
                let cur = m["progressDetail"].get("current").and_then(|c| c.as_u64()).unwrap_or(0);
                format!("{id}: {status} {}", progress::bar(cur, total))
            }
            None => format!("{id}: {status}"),
        };
        match self.ids.iter().position(|x| x == id) {
            None => {
                self.ids.push(id.to_string());
                writeln!(out, "{text}")?;
            }
            Some(i) => {
                let up = self.ids.len() - i;
                write!(out, "\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")?;
            }
        }
        out.flush()
    }
}

pub async fn pull(c: &Client, reference: &str, platform: Option<&str>, creds: Option<&str>) -> Result<(), CliError> {
    let r =
        Reference::parse(reference).map_err(|e| CliError::Usage(format!("invalid reference {reference:?}: {e}")))?;
    let mut out = std::io::stdout().lock();
    if r.tag().is_none() && r.digest().is_none() {
        let _ = writeln!(out, "Using default tag: latest");
    }
    let r = r.with_default_tag();
    let tag = r
        .digest()
        .map(|d| d.to_string())
        .or(r.tag().map(str::to_string))
        .unwrap_or_default();
    let mut uri = format!("/images/create?fromImage={}&tag={}", enc(&r.name()), enc(&tag));
    if let Some(p) = platform {
        uri.push_str(&format!("&platform={}", enc(p)));
    }
    let resp = c
        .send(Method::POST, &uri, &[("x-registry-auth", registry_auth(creds)?)])
        .await?;
    follow(resp, &mut out, "pull", |m| {
        m.get("status")
            .and_then(|s| s.as_str())
            .is_some_and(|s| s.starts_with("Status: "))
    })
    .await?;
    let _ = writeln!(out, "{r}");
    Ok(())
}

/// Render a JSON message stream (pull, push, load) until it ends; an `errorDetail` is the command's error, and
/// a stream that ends before `done` saw its last message is one too.
async fn follow(
    resp: Response<hyper::body::Incoming>,
    out: &mut impl Write,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Result<(), CliError> {
    let mut resp = check(resp).await?;
    let mut r = Renderer {
        tty: std::io::IsTerminal::is_terminal(&std::io::stdout()),
        ids: Vec::new(),
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut finished = false;
    let cut = |why: &str| {
        CliError::Protocol(format!(
            "the daemon ended the stream before the {what} finished{why} (a restarted daemon resumes a pull by itself)"
        ))
    };
    while let Some(frame) = resp.body_mut().frame().await {
        let frame = frame.map_err(|e| cut(&format!(": {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Ok(m) = serde_json::from_slice::<serde_json::Value>(&line) else {
                continue;
            };
            if let Some(err) = m
                .get("errorDetail")
                .and_then(|e| e.get("message"))
                .and_then(|x| x.as_str())
            {
                return Err(CliError::Daemon(err.to_string()));
            }
            finished |= done(&m);
            if let Some(text) = m.get("stream").and_then(|s| s.as_str()) {
                let _ = write!(out, "{text}");
            } else if m.get("status").is_some() {
                let _ = r.message(out, &m);
            }
        }
    }
    if !finished {
        return Err(cut(""));
    }
    Ok(())
}

/// An image name in a path, as the docker CLI puts it (`/` and `:` left as they are).
fn path_name(n: &str) -> String {
    enc(n).replace("%2F", "/").replace("%3A", ":").replace("%40", "@")
}

fn registry_auth(creds: Option<&str>) -> Result<String, CliError> {
    use base64::Engine;
    Ok(match creds {
        Some(uc) => {
            let (u, p) = uc
                .split_once(':')
                .ok_or_else(|| CliError::Usage("--creds takes USER:PASSWORD".into()))?;
            base64::engine::general_purpose::URL_SAFE
                .encode(serde_json::json!({"username": u, "password": p}).to_string())
        }
        None => "e30=".to_string(),
    })
}

/// The save of `names`, as the docker CLI asks for it.
fn save_uri(names: &[String]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("names={}", enc(n))).collect();
    format!("/images/get?{}", q.join("&"))
}

/// `depot handoff`: save `names` from depot and load them into the container engine at `engine`, streamed end
/// to end (nothing is held in memory or written to disk on the way).
pub async fn handoff(c: &Client, engine: &Client, names: &[String]) -> Result<(), CliError> {
    let uri = save_uri(names);
    let mut resp = check(c.send(Method::GET, &uri, &[]).await?).await?;
    let (tx, rx) = async_channel::bounded::<std::io::Result<Bytes>>(8);
    let forward = async move {
        while let Some(frame) = resp.body_mut().frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        if tx.send(Ok(d)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
        }
    };
    let (_, loaded) = futures_lite::future::zip(forward, engine_load(engine, Outgoing::Stream(rx))).await;
    let mut out = std::io::stdout().lock();
    for l in loaded? {
        let _ = writeln!(out, "{l}");
    }
    Ok(())
}

pub async fn inspect(c: &Client, names: &[String]) -> Result<(), CliError> {
    let mut docs = Vec::new();
    for n in names {
        docs.push(c.call(Method::GET, &format!("/images/{}/json", path_name(n))).await?);
    }
    let text = serde_json::to_string_pretty(&docs).unwrap_or_default();
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}

pub async fn tag(c: &Client, source: &str, target: &str) -> Result<(), CliError> {
    let t = Reference::parse(target).map_err(|e| CliError::Usage(format!("invalid reference {target:?}: {e}")))?;
    let uri = format!(
        "/images/{}/tag?repo={}&tag={}",
        path_name(source),
        enc(&t.name()),
        enc(t.tag().unwrap_or("latest"))
    );
    check(c.send(Method::POST, &uri, &[]).await?).await.map(|_| ())
}

/// Save to `out` (a file, else standard output, which must not be a terminal). A file is written under a
/// temporary name beside it and renamed over `out` only once the archive came whole: a save the daemon cuts
/// short (a corrupt layer) fails with nothing left under the name asked for.
pub async fn save(c: &Client, names: &[String], out: Option<&std::path::Path>) -> Result<(), CliError> {
    get_tar(c, &save_uri(names), out, "the save").await
}

/// Stream the tar `uri` answers into `out` (else standard output, never a terminal). A file is written beside
/// itself under a temporary name, fsynced and renamed over `out` only once whole: a broken transfer leaves the
/// previous file (or none), never a truncated one.
pub(crate) async fn get_tar(c: &Client, uri: &str, out: Option<&std::path::Path>, what: &str) -> Result<(), CliError> {
    if out.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(CliError::Usage(
            "refusing to write a tar to a terminal: use -o FILE or a redirect".into(),
        ));
    }
    let tmp = out.map(|p| {
        let mut name = std::ffi::OsString::from(".");
        name.push(p.file_name().unwrap_or_default());
        name.push(format!(".{}.tmp", std::process::id()));
        p.with_file_name(name)
    });
    let mut sink: Box<dyn Write> = match &tmp {
        Some(t) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(t)
                .map_err(|e| CliError::Usage(format!("{}: {e}", t.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let streamed = async {
        let mut resp = check(c.send(Method::GET, uri, &[]).await?).await?;
        while let Some(frame) = resp.body_mut().frame().await {
            let frame = frame.map_err(|e| CliError::Protocol(format!("{what} broke off: {e}")))?;
            if let Ok(d) = frame.into_data() {
                sink.write_all(&d)
                    .map_err(|e| CliError::Usage(format!("writing the archive: {e}")))?;
            }
        }
        sink.flush()
            .map_err(|e| CliError::Usage(format!("writing the archive: {e}")))
    }
    .await;
    drop(sink);
    let (Some(tmp), Some(out)) = (tmp, out) else {
        return streamed;
    };
    let placed = streamed.and_then(|()| {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, out))
            .map_err(|e| CliError::Usage(format!("{}: {e}", out.display())))
    });
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed
}

/// Load from `input` (a file, else standard input).
pub async fn load(c: &Client, input: Option<&std::path::Path>) -> Result<(), CliError> {
    let body = match input {
        Some(p) => stream_reader(std::fs::File::open(p).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?),
        None => stream_reader(std::io::stdin()),
    };
    let resp = post_tar(c, "/images/load?quiet=0", body).await?;
    follow(resp, &mut std::io::stdout().lock(), "load", |m| {
        m.get("stream")
            .and_then(|s| s.as_str())
            .is_some_and(|s| s.starts_with("Loaded image"))
    })
    .await
}

pub async fn push(c: &Client, name: &str, creds: Option<&str>) -> Result<(), CliError> {
    let r = Reference::parse(name).map_err(|e| CliError::Usage(format!("invalid reference {name:?}: {e}")))?;
    let uri = format!(
        "/images/{}/push?tag={}",
        path_name(&r.name()),
        enc(r.tag().unwrap_or(""))
    );
    let resp = c
        .send(Method::POST, &uri, &[("x-registry-auth", registry_auth(creds)?)])
        .await?;
    follow(resp, &mut std::io::stdout().lock(), "push", |m| m.get("aux").is_some()).await
}

pub async fn login(c: &Client, server: &str, user: &str, password: &str) -> Result<(), CliError> {
    let body = serde_json::json!({"username": user, "password": password, "serveraddress": server}).to_string();
    let resp = c
        .send_body(
            Method::POST,
            "/auth",
            &[("content-type", "application/json".into())],
            Outgoing::Bytes(Bytes::from(body)),
        )
        .await?;
    let resp = check(resp).await?;
    let v: serde_json::Value = serde_json::from_slice(&body_bytes(resp).await?).unwrap_or_default();
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        v["Status"].as_str().unwrap_or("Login Succeeded")
    );
    Ok(())
}

/// Prune dangling images, or all with `all`; prints what went and the space reclaimed.
pub async fn prune(c: &Client, all: bool) -> Result<(), CliError> {
    let filters = enc(&format!(r#"{{"dangling":{{"{}":true}}}}"#, !all));
    let v = c
        .call(Method::POST, &format!("/images/prune?filters={filters}"))
        .await?;
    let mut out = std::io::stdout().lock();
    for item in v["ImagesDeleted"].as_array().cloned().unwrap_or_default() {
        if let Some(u) = item["Untagged"].as_str() {
            let _ = writeln!(out, "untagged: {u}");
        }
        if let Some(d) = item["Deleted"].as_str() {
            let _ = writeln!(out, "deleted: {d}");
        }
    }
    let _ = writeln!(
        out,
        "Total reclaimed space: {}",
        progress::human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
    );
    Ok(())
}

fn ago(secs: i64) -> String {
    let now = crate::store::db::now();
    let d = (now - secs).max(0);
    let (n, unit) = match d {
        0..=59 => return "Less than a minute ago".into(),
        60..=3599 => (d / 60, "minute"),
        3600..=86399 => (d / 3600, "hour"),
        86400..=1209599 => (d / 86400, "day"),
        1209600..=5183999 => (d / 604800, "week"),
        5184000..=63071999 => (d / 2592000, "month"),
        _ => (d / 31536000, "year"),
    };
    if n == 1 {
        format!("{} {unit} ago", if unit == "hour" { "About an" } else { "1" })
    } else {
        format!("{n} {unit}s ago")
    }
}

/// `depot token create NAME`: the token is printed once, on stdout alone (for `$(…)`), its id on stderr.
pub async fn token_create(c: &Client, name: &str) -> Result<(), CliError> {
    let v = c
        .call_json(Method::POST, "/api/v1/tokens", Some(serde_json::json!({"name": name})))
        .await?;
    eprintln!(
        "token {} ({name}) created; it is shown once: keep it, e.g. in ~/.docker/config.json as \
         \"HttpHeaders\": {{\"Authorization\": \"Bearer …\"}}",
        v["id"]
    );
    println!("{}", v["token"].as_str().unwrap_or_default());
    Ok(())
}

pub async fn token_list(c: &Client) -> Result<(), CliError> {
    let v = c.call(Method::GET, "/api/v1/tokens").await?;
    let mut rows = vec![["ID".to_string(), "NAME".into(), "CREATED".into(), "LAST USED".into()]];
    for t in v.as_array().cloned().unwrap_or_default() {
        rows.push([
            t["id"].to_string(),
            t["name"].as_str().unwrap_or("").to_string(),
            t["created_at"].as_i64().map(ago).unwrap_or_default(),
            t["last_used"].as_i64().map(ago).unwrap_or_else(|| "never".into()),
        ]);
    }
    print_table(&rows);
    Ok(())
}

pub async fn token_rm(c: &Client, ids: &[String]) -> Result<(), CliError> {
    for id in ids {
        c.call(Method::DELETE, &format!("/api/v1/tokens/{}", enc(id))).await?;
        println!("{id}");
    }
    Ok(())
}

pub async fn images(c: &Client) -> Result<(), CliError> {
    let v = c.call(Method::GET, "/images/json").await?;
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for img in v.as_array().cloned().unwrap_or_default() {
        let id = img["Id"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>();
        let created = img["Created"].as_i64().map(ago).unwrap_or_default();
        let size = progress::human_size(img["Size"].as_u64().unwrap_or(0));
        let tags: Vec<String> = img["RepoTags"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if tags.is_empty() {
            rows.push([
                "<none>".into(),
                "<none>".into(),
                id.clone(),
                created.clone(),
                size.clone(),
            ]);
        }
        for t in tags {
            let (repo, tag) = match crate::reference::split_tag(&t) {
                (repo, Some(tag)) => (repo.to_string(), tag.to_string()),
                (repo, None) => (repo.to_string(), "<none>".into()),
            };
            rows.push([repo, tag, id.clone(), created.clone(), size.clone()]);
        }
    }
    print_table(&rows);
    Ok(())
}

/// Columns padded to their widest cell, three spaces apart (the docker CLI's tables); the last is not padded.
pub(crate) fn print_table<const N: usize>(rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = std::io::stdout().lock();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == N - 1 {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("   ").trim_end());
    }
}

pub async fn rm(c: &Client, names: &[String], force: bool) -> Result<(), CliError> {
    let mut failed = None;
    let mut out = std::io::stdout().lock();
    for n in names {
        let uri = format!("/images/{}?force={}", path_name(n), if force { 1 } else { 0 });
        match c.call(Method::DELETE, &uri).await {
            Ok(v) => {
                for item in v.as_array().cloned().unwrap_or_default() {
                    if let Some(u) = item.get("Untagged").and_then(|x| x.as_str()) {
                        let _ = writeln!(out, "Untagged: {u}");
                    }
                    if let Some(d) = item.get("Deleted").and_then(|x| x.as_str()) {
                        let _ = writeln!(out, "Deleted: {d}");
                    }
                }
            }
            Err(e) => failed = Some(e),
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(tty: bool, msgs: &[&str]) -> String {
        let mut r = Renderer { tty, ids: Vec::new() };
        let mut out = Vec::new();
        for m in msgs {
            r.message(&mut out, &serde_json::from_str(m).unwrap()).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn non_tty_rendering_skips_bars() {
        let msgs = [
            r#"{"status":"Pulling from test","id":"1"}"#,
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}"#,
            r#"{"status":"Downloading","progressDetail":{"current":1,"total":2},"progress":"[=> ]","id":"abc"}"#,
            r#"{"status":"Pull complete","progressDetail":{},"id":"abc"}"#,
            r#"{"status":"Digest: sha256:x"}"#,
        ];
        assert_eq!(
            render(false, &msgs),
            "1: Pulling from test\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:x\n"
        );
    }

    #[test]
    fn tty_rendering_rewrites_in_place() {
        let msgs = [
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"a"}"#,
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"b"}"#,
            r#"{"status":"Downloading","progressDetail":{"current":1,"total":2},"progress":"x","id":"a"}"#,
        ];
        let s = render(true, &msgs);
        assert!(s.ends_with("\x1b[2A\r\x1b[2Ka: Downloading [=========================>                         ]       1B/2B\x1b[2B\r"), "{s:?}");
    }

    #[test]
    fn ages() {
        let now = crate::store::db::now();
        assert_eq!(ago(now), "Less than a minute ago");
        assert_eq!(ago(now - 3 * 86400), "3 days ago");
        assert_eq!(ago(now - 3700), "About an hour ago");
    }
}
