//! `GET /images/{name}/get`, `GET /images/get?names=…` (save, spec §5.8) and `POST /images/load` (§5.9).

use super::stream::{error_line, layer_line, line, progress_line, status_line, stream_line, Aux, Detail, Message};
use super::{ApiError, Engine};
use crate::http::{bool_value, query_get, query_pairs, streaming, Req, Resp};
use crate::image::load::LoadEvent;
use bytes::Bytes;
use hyper::StatusCode;
use std::io::Write;

/// Save `names`: resolved first (an unknown name is an ordinary error), then the tar streamed from a thread of
/// its own. A failure after the first byte (a layer found corrupt) cuts the response short, without its final
/// chunk: the client sees a broken transfer, never an archive that merely ends early.
pub async fn save(e: &Engine, names: Vec<String>) -> Result<Resp, ApiError> {
    if names.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "no images to save"));
    }
    let images = e.images.clone();
    let plan = crate::pool::run(move || images.save_plan(&names)).await?;
    let images = e.images.clone();
    let rx = crate::http::write_on_thread("save", move |w| images.save(&plan, w))
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starting a save: {err}")))?;
    Ok(crate::http::streaming_fallible(StatusCode::OK, "application/x-tar", rx))
}

pub async fn save_many(e: &Engine, req: &Req) -> Result<Resp, ApiError> {
    let q = crate::http::query_pairs(req.uri().query());
    let names = q.into_iter().filter(|(k, _)| k == "names").map(|(_, v)| v).collect();
    save(e, names).await
}

/// What the upload thread is sent.
enum Upload {
    Data(Bytes),
    End,
    Failed(String),
}

fn event_line(e: &LoadEvent) -> Bytes {
    match e {
        LoadEvent::Layer { id, current, total } => progress_line("Loading layer", Some(id), *current, *total),
        LoadEvent::Renamed { tag, old } => stream_line(&format!(
            "The image {tag} already exists, renaming the old one with ID {old} to empty string\n"
        )),
        LoadEvent::Loaded { tag } => stream_line(&format!("Loaded image: {tag}\n")),
        LoadEvent::LoadedId { id } => stream_line(&format!("Loaded image ID: {id}\n")),
    }
}

/// Receive the request body into a file of `tmp/` on a thread of its own (memory stays flat whatever its
/// size), then run `job` there with the file and a sender for the response stream; every error is in the stream,
/// as dockerd has it. The file is removed afterwards.
async fn upload_then<F>(e: &Engine, req: Req, what: &str, job: F) -> Result<Resp, ApiError>
where
    F: FnOnce(&std::path::Path, &async_channel::Sender<Bytes>) -> Result<(), crate::image::ImageError> + Send + 'static,
{
    let path = e.images.scratch_path(what);
    let (up_tx, up_rx) = async_channel::bounded::<Upload>(8);
    let (out_tx, out_rx) = async_channel::bounded::<Bytes>(64);
    std::thread::Builder::new()
        .name(what.into())
        .spawn(move || {
            let fail = |msg: String| {
                let _ = out_tx.send_blocking(error_line(&msg));
            };
            let received = (|| -> Result<(), String> {
                let mut f = std::fs::File::create(&path).map_err(|e| format!("storing the upload: {e}"))?;
                loop {
                    match up_rx.recv_blocking() {
                        Ok(Upload::Data(b)) => f.write_all(&b).map_err(|e| format!("storing the upload: {e}"))?,
                        Ok(Upload::End) => return Ok(()),
                        Ok(Upload::Failed(m)) => return Err(m),
                        Err(_) => return Err("the upload ended early".into()),
                    }
                }
            })();
            match received {
                Err(m) => fail(m),
                Ok(()) => {
                    if let Err(err) = job(&path, &out_tx) {
                        fail(super::docker_message(&err));
                    }
                }
            }
            let _ = std::fs::remove_file(&path);
        })
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starting the {what}: {err}")))?;
    let mut body = req.into_body();
    loop {
        match crate::http::next_frame(&mut body).await {
            None => {
                let _ = up_tx.send(Upload::End).await;
                break;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if up_tx.send(Upload::Data(data)).await.is_err() {
                        break;
                    }
                }
            }
            Some(Err(err)) => {
                let _ = up_tx.send(Upload::Failed(err.to_string())).await;
                break;
            }
        }
    }
    Ok(streaming(StatusCode::OK, "application/json", out_rx))
}

/// `POST /images/load?quiet=` (spec §5.9).
pub async fn load(e: &Engine, req: Req) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let quiet = query_get(&q, "quiet").is_none_or(|v| bool_value(Some(v)));
    let images = e.images.clone();
    upload_then(e, req, "load", move |path, out| {
        images
            .load(path, &mut |ev| {
                if !(quiet && matches!(ev, LoadEvent::Layer { .. })) {
                    let _ = out.send_blocking(event_line(&ev));
                }
            })
            .map(|_| ())
    })
    .await
}

/// `POST /images/create?fromSrc=-|URL&repo=&tag=&message=&changes=&platform=` (spec §5.2, import): the body, or
/// the file at the URL, as a one-layer image. Ends with `{"status":"sha256:<id>"}`.
pub async fn import(e: &Engine, req: Req) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let src = query_get(&q, "fromSrc").unwrap_or("-").to_string();
    let reference = match query_get(&q, "repo").filter(|r| !r.is_empty()) {
        None => None,
        Some(repo) => {
            let mut r = crate::reference::Reference::parse(repo).map_err(|e| bad(e.to_string()))?;
            if let Some(t) = query_get(&q, "tag").filter(|t| !t.is_empty()) {
                r = r.with_tag(t).map_err(|e| bad(e.to_string()))?;
            }
            Some(r)
        }
    };
    let platform = match query_get(&q, "platform").filter(|p| !p.is_empty()) {
        Some(p) => p
            .parse()
            .map_err(|e: crate::platform::PlatformError| bad(e.to_string()))?,
        None => e.images.facts().map(|f| f.platform).map_err(ApiError::from)?,
    };
    let message = query_get(&q, "message")
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("Imported from {src}"));
    let spec = crate::image::import::ImportSpec {
        reference,
        message,
        changes: q
            .iter()
            .filter(|(k, _)| k == "changes")
            .map(|(_, v)| v.clone())
            .collect(),
        platform,
    };
    if src != "-" && !(src.starts_with("http://") || src.starts_with("https://")) {
        return Err(bad(format!("fromSrc must be - or an http(s) URL, not {src:?}")));
    }
    let images = e.images.clone();
    upload_then(e, req, "import", move |path, out| {
        if src != "-" {
            let _ = out.send_blocking(status_line(&format!("Downloading from {src}")));
            images.registries.download(&src, path)?;
        }
        let id = images.import(path, &spec, &mut |ev| {
            if let LoadEvent::Layer { current, total, .. } = ev {
                let _ = out.send_blocking(progress_line("Importing", None, current, total));
            }
        })?;
        let _ = out.send_blocking(status_line(id.as_str()));
        Ok(())
    })
    .await
}

fn push_line(e: &crate::image::push::PushEvent) -> Vec<Bytes> {
    use crate::image::push::PushEvent as P;
    match e {
        P::Preparing { id } => vec![layer_line("Preparing", id)],
        P::Progress { id, current, total } => vec![progress_line("Pushing", Some(id), *current, *total)],
        P::Pushed { id } => vec![layer_line("Pushed", id)],
        P::Exists { id } => vec![layer_line("Layer already exists", id)],
        P::Mounted { id, from } => vec![layer_line(&format!("Mounted from {from}"), id)],
        P::Done { tag, digest, size } => vec![
            status_line(&format!("{tag}: digest: {digest} size: {size}")),
            line(&Message {
                progress_detail: Some(Detail::default()),
                aux: Some(Aux {
                    tag,
                    digest: digest.as_str(),
                    size: *size,
                }),
                ..Default::default()
            }),
        ],
    }
}

/// `POST /images/{name}/push?tag=` (spec §5.11): the first line names the repository; everything after,
/// errors included, is in the stream.
pub async fn push(e: &Engine, req: Req, name: &str) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let mut r = crate::reference::Reference::parse(name).map_err(|e| bad(e.to_string()))?;
    if let Some(t) = query_get(&q, "tag").filter(|t| !t.is_empty()) {
        r = r.with_tag(t).map_err(|e| bad(e.to_string()))?;
    }
    let creds = super::auth::decode(req.headers().get("x-registry-auth").and_then(|h| h.to_str().ok()));
    // docker-py sends `{}`; whatever comes must be well-formed
    crate::http::read_body(req.into_body(), crate::http::MAX_SMALL_BODY).await?;
    let (tx, rx) = async_channel::bounded::<Bytes>(64);
    let first = status_line(&format!("The push refers to repository [{}]", r.name()));
    let _ = tx.try_send(first);
    let images = e.images.clone();
    std::thread::Builder::new()
        .name("push".into())
        .spawn(move || {
            let r = images.push_targets(&r).and_then(|targets| {
                images.push(&targets, creds, &mut |ev| {
                    for l in push_line(&ev) {
                        let _ = tx.send_blocking(l);
                    }
                })
            });
            if let Err(err) = r {
                let _ = tx.send_blocking(error_line(&super::docker_message(&err)));
            }
        })
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starting a push: {err}")))?;
    Ok(streaming(StatusCode::OK, "application/json", rx))
}
