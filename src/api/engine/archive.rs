//! `GET /images/{name}/get`, `GET /images/get?names=…` (save, spec §5.8).

use super::{ApiError, Engine};
use crate::http::{streaming, BodyWriter, Req, Resp};
use hyper::StatusCode;

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
