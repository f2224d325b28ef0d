//! `GET /images/{name}/get`, `GET /images/get?names=…` (save, spec §5.8) and `POST /images/load` (§5.9).

use super::{ApiError, Engine};
use crate::http::{bool_value, query_get, query_pairs, streaming, BodyWriter, Req, Resp};
use crate::image::load::LoadEvent;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use std::io::Write;

/// Save `names`: resolved first (an unknown name is an ordinary error), then the tar streamed from a thread of
/// its own. A failure after the first byte can only cut the archive short, which the client sees as a broken
/// tar.
pub async fn save(e: &Engine, names: Vec<String>) -> Result<Resp, ApiError> {
    if names.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "no images to save"));
    }
    let images = e.images.clone();
    let plan = crate::pool::run(move || images.save_plan(&names)).await?;
    let (writer, rx) = BodyWriter::new();
    let images = e.images.clone();
    std::thread::Builder::new()
        .name("save".into())
        .spawn(move || {
            if let Err(err) = images.save(&plan, writer) {
                log::warn!("save ended early: {err}");
            }
        })
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starting a save: {err}")))?;
    Ok(streaming(StatusCode::OK, "application/x-tar", rx))
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

fn stream_line(v: serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(&v).unwrap_or_default();
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

fn event_line(e: &LoadEvent) -> Bytes {
    stream_line(match e {
        LoadEvent::Layer { id, current, total } => serde_json::json!({
            "status": "Loading layer", "progressDetail": {"current": current, "total": total},
            "progress": crate::progress::bar(*current, *total), "id": id}),
        LoadEvent::Renamed { tag, old } => serde_json::json!({"stream": format!(
            "The image {tag} already exists, renaming the old one with ID {old} to empty string\n")}),
        LoadEvent::Loaded { tag } => serde_json::json!({"stream": format!("Loaded image: {tag}\n")}),
        LoadEvent::LoadedId { id } => serde_json::json!({"stream": format!("Loaded image ID: {id}\n")}),
    })
}

/// `POST /images/load?quiet=`: the body (a tar, often chunked) is streamed to a file in `tmp/` by a thread of
/// its own (memory stays flat whatever its size), then loaded there, its messages streamed back; every error is
/// in the stream, as dockerd has it.
pub async fn load(e: &Engine, req: Req) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let quiet = query_get(&q, "quiet").is_none_or(|v| bool_value(Some(v)));
    let path = e.images.scratch_path("load");
    let (up_tx, up_rx) = async_channel::bounded::<Upload>(8);
    let (out_tx, out_rx) = async_channel::bounded::<Bytes>(64);
    let images = e.images.clone();
    std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let fail = |msg: String| {
                let _ = out_tx.send_blocking(super::pull::error_line(&msg));
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
                    let r = images.load(&path, &mut |ev| {
                        if !(quiet && matches!(ev, LoadEvent::Layer { .. })) {
                            let _ = out_tx.send_blocking(event_line(&ev));
                        }
                    });
                    if let Err(err) = r {
                        fail(super::docker_message(&err));
                    }
                }
            }
            let _ = std::fs::remove_file(&path);
        })
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starting a load: {err}")))?;
    let mut body = req.into_body();
    loop {
        match body.frame().await {
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
                let _ = up_tx
                    .send(Upload::Failed(format!("malformed request body: {err}")))
                    .await;
                break;
            }
        }
    }
    Ok(streaming(StatusCode::OK, "application/json", out_rx))
}

fn push_line(e: &crate::image::push::PushEvent) -> Vec<Bytes> {
    use crate::image::push::PushEvent as P;
    let layer = |status: &str, id: &str| serde_json::json!({"status": status, "progressDetail": {}, "id": id});
    match e {
        P::Preparing { id } => vec![stream_line(layer("Preparing", id))],
        P::Progress { id, current, total } => vec![stream_line(serde_json::json!({
            "status": "Pushing", "progressDetail": {"current": current, "total": total},
            "progress": crate::progress::bar(*current, *total), "id": id}))],
        P::Pushed { id } => vec![stream_line(layer("Pushed", id))],
        P::Exists { id } => vec![stream_line(layer("Layer already exists", id))],
        P::Mounted { id, from } => vec![stream_line(layer(&format!("Mounted from {from}"), id))],
        P::Done { tag, digest, size } => vec![
            stream_line(serde_json::json!({"status": format!("{tag}: digest: {digest} size: {size}")})),
            stream_line(serde_json::json!({"progressDetail": {},
                "aux": {"Tag": tag, "Digest": digest.as_str(), "Size": size}})),
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
    let first = stream_line(serde_json::json!({
        "status": format!("The push refers to repository [{}]", r.name())}));
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
                let _ = tx.send_blocking(super::pull::error_line(&super::docker_message(&err)));
            }
        })
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starting a push: {err}")))?;
    Ok(streaming(StatusCode::OK, "application/json", rx))
}
