//! `POST /images/create?fromImage=…&tag=…&platform=…`: pull, streaming Docker's progress messages (spec §5.2).
//! The 200 header is sent only with the first message, so that failures before any output (unknown tag, denied)
//! are ordinary HTTP errors.

use super::stream::{error_line, line, status_line, Detail, Message};
use super::{auth, ApiError, Engine};
use crate::http::{query_get, query_pairs, read_body, streaming, Req, Resp, MAX_SMALL_BODY};
use crate::image::{ImageError, PullEvent, PullJob, PullSpec};
use crate::platform::Platform;
use crate::progress;
use crate::reference::Reference;
use bytes::Bytes;
use hyper::StatusCode;
use std::sync::Arc;

/// Docker's wording of a layer's state.
fn layer_text(s: &crate::image::LayerStatus) -> String {
    use crate::image::LayerStatus as L;
    match s {
        L::PullingFsLayer => "Pulling fs layer".into(),
        L::AlreadyExists => "Already exists".into(),
        L::Waiting => "Waiting".into(),
        L::Retrying(n) => format!("Retrying in {n} second{}", if *n == 1 { "" } else { "s" }),
        L::VerifyingChecksum => "Verifying Checksum".into(),
        L::DownloadComplete => "Download complete".into(),
        L::PullComplete => "Pull complete".into(),
    }
}

/// The final line of a pull (of one tag, or of all of a repository's).
fn finished_text(reference: &str, up_to_date: bool) -> String {
    let what = if up_to_date {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    format!("Status: {what} {reference}")
}

pub fn event_line(e: &PullEvent) -> Bytes {
    match e {
        PullEvent::PullingFrom { path, id } => line(&Message {
            status: Some(&format!("Pulling from {path}")),
            id: Some(id),
            ..Default::default()
        }),
        PullEvent::Layer { id, status } => line(&Message {
            status: Some(&layer_text(status)),
            progress_detail: Some(Detail::default()),
            id: Some(id),
            ..Default::default()
        }),
        PullEvent::Progress { id, current, total } => line(&Message {
            status: Some("Downloading"),
            progress_detail: Some(Detail {
                current: Some(*current).filter(|c| *c > 0),
                total: Some(*total).filter(|t| *t > 0),
            }),
            progress: Some(progress::bar(*current, *total)),
            id: Some(id),
            ..Default::default()
        }),
        PullEvent::Digest(d) => line(&Message {
            status: Some(&format!("Digest: {d}")),
            ..Default::default()
        }),
        PullEvent::PlatformMismatch {
            reference,
            found,
            wanted,
        } => status_line(&format!(
            "WARNING: image with reference {reference} was found but its platform ({found}) does not match the specified platform ({wanted})"
        )),
        PullEvent::Finished { reference, up_to_date } => status_line(&finished_text(reference, *up_to_date)),
        PullEvent::HandedOff(lines) => {
            let text: Vec<String> = lines.iter().map(|l| format!("Container engine: {l}")).collect();
            status_line(&text.join("\n"))
        }
        PullEvent::HandoffFailed(e) => status_line(&format!("Hand-off to the container engine failed: {e}")),
    }
}

/// The references one request pulls: one, or every tag of a repository.
fn target(q: &[(String, String)]) -> Result<(Reference, bool), ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
    let from = query_get(q, "fromImage").unwrap_or("");
    let from = from.strip_suffix(':').unwrap_or(from);
    let mut r = Reference::parse(from).map_err(|e| bad(&e))?;
    if let Some(tag) = query_get(q, "tag").filter(|t| !t.is_empty()) {
        r = match tag.parse::<crate::digest::Digest>() {
            Ok(d) => r.with_digest(d),
            Err(_) => r.with_tag(tag).map_err(|e| bad(&e))?,
        };
    }
    if r.familiar_name() == "scratch" {
        return Err(ImageError::Reserved("scratch".into()).into());
    }
    let all_tags = r.tag().is_none() && r.digest().is_none();
    Ok((r, all_tags))
}

/// What a pull of `reference` pulls: the reference, or with `all_tags` each tag its registry lists.
async fn pull_specs(
    e: &Engine,
    reference: &Reference,
    all_tags: bool,
    platform: Option<Platform>,
    creds: Option<crate::registry::Credentials>,
) -> Result<Vec<PullSpec>, ApiError> {
    if !all_tags {
        return Ok(vec![PullSpec {
            reference: reference.clone(),
            platform,
            creds,
        }]);
    }
    let images = e.images.clone();
    let (r, c) = (reference.clone(), creds.clone());
    let tags = crate::pool::run(move || images.registries.remote_tags(&r, c))
        .await
        .map_err(ApiError::from)?;
    let mut specs = Vec::new();
    for t in tags {
        let r = reference
            .with_tag(&t)
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("registry lists tag {t:?}: {e}")))?;
        specs.push(PullSpec {
            reference: r,
            platform: platform.clone(),
            creds: creds.clone(),
        });
    }
    Ok(specs)
}

pub async fn create(e: &Engine, req: Req) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let headers = req.headers().clone();
    // A pull has no body; whatever comes must at least be well-formed before anything starts.
    read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let (reference, all_tags) = target(&q)?;
    let platform = match query_get(&q, "platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(
            p.parse::<Platform>()
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
        ),
        None => None,
    };
    let creds = auth::decode(headers.get("x-registry-auth").and_then(|h| h.to_str().ok()));
    let specs = pull_specs(e, &reference, all_tags, platform, creds).await?;
    let Some(first) = specs.first().cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no tags found for {}", reference.familiar_name()),
        ));
    };
    let images = e.images.clone();
    let job = crate::pool::run(move || images.pull(first))
        .await
        .map_err(ApiError::from)?;
    let mut cursor = 0;
    let first_batch = job.next(&mut cursor).await;
    if first_batch.events.is_empty() {
        if let Some(Err(err)) = &first_batch.outcome {
            return Err(ApiError::from(err.as_ref()));
        }
    }
    let (tx, rx) = async_channel::bounded::<Bytes>(64);
    let images = e.images.clone();
    let name = reference.familiar_name();
    smol::spawn(async move {
        let mut job = job;
        let mut pending = Some((cursor, first_batch));
        let mut downloaded = false;
        let mut rest = specs.into_iter().skip(1);
        loop {
            match follow(&job, &mut pending, &tx, all_tags).await {
                Follow::ClientGone => return,
                Follow::Failed(msg) => {
                    let _ = tx.send(error_line(&msg)).await;
                    return;
                }
                Follow::Done(up_to_date) => downloaded |= !up_to_date,
            }
            let Some(spec) = rest.next() else { break };
            let svc = images.clone();
            job = match crate::pool::run(move || svc.pull(spec)).await {
                Ok(j) => j,
                Err(err) => {
                    let _ = tx.send(error_line(&super::docker_message(&err))).await;
                    return;
                }
            };
        }
        if all_tags {
            let _ = tx.send(status_line(&finished_text(&name, !downloaded))).await;
        }
    })
    .detach();
    Ok(streaming(StatusCode::OK, "application/json", rx))
}

enum Follow {
    Done(bool),
    Failed(String),
    ClientGone,
}

/// Forward one job's events until it ends. With `all_tags`, each job's own final status line is held back.
async fn follow(
    job: &Arc<PullJob>,
    pending: &mut Option<(usize, crate::image::job::Batch)>,
    tx: &async_channel::Sender<Bytes>,
    all_tags: bool,
) -> Follow {
    let mut cursor = 0;
    loop {
        let batch = match pending.take() {
            Some((c, b)) => {
                cursor = c;
                b
            }
            None => job.next(&mut cursor).await,
        };
        for ev in &batch.events {
            if all_tags && matches!(ev, PullEvent::Finished { .. }) {
                continue;
            }
            if tx.send(event_line(ev)).await.is_err() {
                // The client left; the download goes on (it is persistent) and others may follow it.
                return Follow::ClientGone;
            }
        }
        match batch.outcome {
            Some(Ok(o)) => return Follow::Done(o.up_to_date),
            Some(Err(e)) => return Follow::Failed(super::docker_message(&e)),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::LayerStatus;

    #[test]
    fn messages_match_dockerd() {
        let s = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
        assert_eq!(
            s(event_line(&PullEvent::PullingFrom {
                path: "test".into(),
                id: "1".into()
            })),
            "{\"status\":\"Pulling from test\",\"id\":\"1\"}\r\n"
        );
        assert_eq!(
            s(event_line(&PullEvent::Layer {
                id: "330fad343d7a".into(),
                status: LayerStatus::PullingFsLayer
            })),
            "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"330fad343d7a\"}\r\n"
        );
        assert_eq!(
            s(event_line(&PullEvent::Progress { id: "330fad343d7a".into(), current: 36412, total: 1084273 })),
            "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":36412,\"total\":1084273},\"progress\":\"[=>                                                 ]  36.41kB/1.084MB\",\"id\":\"330fad343d7a\"}\r\n"
        );
        assert_eq!(
            s(error_line("boom")),
            "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n"
        );
    }

    #[test]
    fn targets() {
        let q = |s: &str| query_pairs(Some(s));
        let (r, all) = target(&q("fromImage=127.0.0.1%3A5000%2Ftest&tag=1")).unwrap();
        assert_eq!((r.to_string().as_str(), all), ("127.0.0.1:5000/test:1", false));
        let (r, _) = target(&q("fromImage=busybox:1&tag=2")).unwrap();
        assert_eq!(r.familiar(), "busybox:2");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let (r, _) = target(&q(&format!("fromImage=busybox&tag={d}"))).unwrap();
        assert_eq!(r.familiar(), format!("busybox@{d}"));
        let (_, all) = target(&q("fromImage=busybox")).unwrap();
        assert!(all);
        let (r, all) = target(&q("fromImage=busybox:")).unwrap();
        assert!(all && r.familiar() == "busybox");
        assert_eq!(
            target(&q("fromImage=scratch&tag=latest")).err().unwrap().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            target(&q("fromImage=Bad")).err().unwrap().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            target(&q("fromImage=a&tag=-x")).err().unwrap().message,
            "invalid tag format"
        );
        assert_eq!(
            target(&q("")).err().unwrap().message,
            "repository name must have at least one component"
        );
    }
}
