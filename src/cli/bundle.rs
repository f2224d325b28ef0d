//! `depot bundle create|import`: offline bundles over the station API's `/bundle` (see `image::bundle`).

use super::{CliError, Client};
use crate::engine_client::{enc, post_tar, stream_reader};
use std::io::Write;
use std::path::Path;

const API: &str = "/api/v1/bundle";

/// Write a bundle of `images` and `templates` (pinned for `owner` when given) to `out`.
pub async fn create(
    c: &Client,
    images: &[String],
    templates: &[String],
    owner: Option<&str>,
    out: &Path,
) -> Result<(), CliError> {
    let mut q: Vec<String> = images.iter().map(|i| format!("image={}", enc(i))).collect();
    q.extend(templates.iter().map(|t| format!("lxc={}", enc(t))));
    q.extend(owner.map(|o| format!("owner={}", enc(o))));
    super::get_tar(c, &format!("{API}?{}", q.join("&")), Some(out), "the bundle").await
}

/// Import the bundle at `path`: a file (an `oci-archive` tar, e.g. on a USB volume), or a directory holding an
/// OCI image layout, sent as a tar made on the fly.
pub async fn import(c: &Client, path: &Path, json: bool) -> Result<(), CliError> {
    let meta = std::fs::metadata(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let body = if meta.is_dir() {
        if !path.join("index.json").is_file() {
            return Err(CliError::Usage(format!(
                "{}: no index.json (not an OCI image layout)",
                path.display()
            )));
        }
        let (r, w) = nix::unistd::pipe().map_err(|e| CliError::Usage(format!("a pipe: {e}")))?;
        let (r, w) = (std::fs::File::from(r), std::fs::File::from(w));
        let dir = path.to_path_buf();
        std::thread::spawn(move || {
            let mut b = tar::Builder::new(w);
            b.follow_symlinks(false);
            // a failure shows as a short tar, which the daemon refuses
            let _ = b.append_dir_all(".", &dir).and_then(|()| b.finish());
        });
        stream_reader(r)
    } else {
        let f = std::fs::File::open(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
        stream_reader(f)
    };
    let uri = format!("{API}/import?size={}", if meta.is_dir() { 0 } else { meta.len() });
    let resp = post_tar(c, &uri, body).await?;
    super::pins::follow_lines(
        resp,
        json,
        "imported",
        "the daemon ended the import before it finished: nothing of it is visible (run it again)",
        render,
    )
    .await
}

fn render(out: &mut std::io::StdoutLock<'static>, m: &serde_json::Value, tty: bool) {
    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    let _ = match m["status"].as_str().unwrap_or_default() {
        "reading" if tty => {
            let cur = crate::progress::human_size(m["current"].as_u64().unwrap_or(0));
            match m["total"].as_u64().filter(|t| *t > 0) {
                Some(t) => write!(out, "\rreading: {cur} of {}   ", crate::progress::human_size(t)),
                None => write!(out, "\rreading: {cur}   "),
            }
        }
        "image" => writeln!(out, "{}image {}", if tty { "\r" } else { "" }, s("name")),
        "template" => writeln!(out, "{}template {}", if tty { "\r" } else { "" }, s("name")),
        "pinned" => writeln!(out, "pinned {} for {}", s("name"), s("owner")),
        "imported" => writeln!(
            out,
            "imported: {} blobs written ({}), {} already here",
            m["blobs_written"],
            crate::progress::human_size(m["bytes_written"].as_u64().unwrap_or(0)),
            m["blobs_present"]
        ),
        _ => Ok(()),
    };
    let _ = out.flush();
}
