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
