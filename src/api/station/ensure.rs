//! `POST /ensure` (depot's own) `{"owner": "app", "targets": ["busybox:1.36", "repo@sha256:…",
//! "lxc:debian/12/amd64/default"]}` (admin): what an install script calls. Each target present is pinned at
//! once; one absent is pulled (joining a download already running for it), followed, then pinned. The answer
//! streams JSON lines (see [`EnsureLine`]) so that a caller shows progress; a target that fails ends it, its
//! class said (a full volume is `insufficient_storage`, a policy's refusal `forbidden`). Running it twice at
//! once, or again after a crash (the download resumes by itself), ends the same.

use super::dto::EnsureLine;
use super::{blocking, require_admin, Answer, Caller, Station, StationError};
use crate::error::ErrorClass;
use crate::http::{read_body, streaming, Req, MAX_SMALL_BODY};
use crate::image::pins::{Pins, LXC};
use crate::reference::Reference;
use bytes::Bytes;
use hyper::StatusCode;
use std::time::Duration;

/// How often a pull's progress is told.
const TICK: Duration = Duration::from_millis(500);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnsureBody {
    owner: String,
    targets: Vec<String>,
}

/// Why a target could not be ensured.
type Failure = (ErrorClass, String);

pub async fn ensure(st: &Station, req: Req, caller: &Caller) -> Answer {
    require_admin(caller)?;
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let b: EnsureBody =
        serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed ensure: {e}")))?;
    // malformed input is refused before anything starts
    Pins::owner(&b.owner)?;
    if b.targets.is_empty() {
        return Err(StationError::bad_request("nothing to ensure"));
    }
    let targets = b
        .targets
        .iter()
        .map(|t| Pins::target(t))
        .collect::<Result<Vec<_>, _>>()?;
    let (tx, rx) = async_channel::bounded::<Bytes>(16);
    let st = st.clone();
    smol::spawn(async move {
        let send = |l: EnsureLine| {
            let mut v = serde_json::to_vec(&l).unwrap_or_default();
            v.push(b'\n');
            tx.send(Bytes::from(v))
        };
        for t in &targets {
            let done = match t.strip_prefix(LXC) {
                Some(name) => template(&st, t, name, &send).await,
                None => image(&st, t, &send).await,
            };
            let pinned = match done {
                Ok(()) => {
                    let (images, owner, t) = (st.images.clone(), b.owner.clone(), t.clone());
                    blocking(move || images.pins.add(&owner, &[t]))
                        .await
                        .map_err(|e| (e.class(), e.to_string()))
                }
                Err(f) => Err(f),
            };
            if let Err((class, message)) = pinned {
                let _ = send(EnsureLine {
                    class: Some(class),
                    message: Some(message),
                    status: "failed",
                    target: Some(t.clone()),
                    ..Default::default()
                })
                .await;
                return;
            }
        }
        let _ = send(EnsureLine {
            status: "ensured",
            ..Default::default()
        })
        .await;
    })
    .detach();
    Ok(streaming(StatusCode::OK, "application/json", rx))
}

/// An image: present, or pulled (a running download of it joined) and followed to its end.
async fn image<F, Fut>(st: &Station, t: &str, send: &F) -> Result<(), Failure>
where
    F: Fn(EnsureLine) -> Fut,
    Fut: std::future::Future,
{
    let fail = |e: &crate::image::ImageError| (e.class(), e.to_string());
    let (images, name) = (st.images.clone(), t.to_string());
    if let Ok((id, _)) = blocking(move || images.resolve(&name)).await {
        send(line("present", t, |l| l.image = Some(id.to_string()))).await;
        return Ok(());
    }
    let r = Reference::parse(t).map_err(|e| (ErrorClass::InvalidParameter, e.to_string()))?;
    let images = st.images.clone();
    let job = blocking(move || {
        images.pull(crate::image::PullSpec {
            reference: r,
            platform: None,
            creds: None,
        })
    })
    .await
    .map_err(|e| fail(&e))?;
    send(line("pulling", t, |l| l.download = Some(job.download))).await;
    let mut cursor = 0;
    loop {
        let next = async { Some(job.next(&mut cursor).await) };
        let tick = async {
            async_io::Timer::after(TICK).await;
            None
        };
        match futures_lite::future::or(next, tick).await {
            Some(batch) => {
                if let Some(outcome) = batch.outcome {
                    let o = outcome.map_err(|e| fail(&e))?;
                    send(line("pulled", t, |l| l.image = Some(o.image_id.to_string()))).await;
                    return Ok(());
                }
            }
            None => {
                let (current, total) = progress(st, job.download).await;
                send(line("progress", t, |l| (l.current, l.total) = (Some(current), total))).await;
            }
        }
    }
}

/// A template: present, or downloaded (a running download of it joined) and followed to its end.
async fn template<F, Fut>(st: &Station, t: &str, name: &str, send: &F) -> Result<(), Failure>
where
    F: Fn(EnsureLine) -> Fut,
    Fut: std::future::Future,
{
    let fail = |e: crate::lxc::LxcError| (e.class(), e.to_string());
    let (lxc, n) = (st.lxc.clone(), name.to_string());
    if blocking(move || lxc.template(&n)).await.is_ok() {
        send(line("present", t, |_| {})).await;
        return Ok(());
    }
    let (lxc, n) = (st.lxc.clone(), name.to_string());
    let job = blocking(move || lxc.pull(&n, None)).await.map_err(fail)?;
    send(line("pulling", t, |l| l.download = Some(job.download))).await;
    loop {
        if let Some(outcome) = job.outcome() {
            return match outcome {
                Ok(_) => {
                    send(line("pulled", t, |_| {})).await;
                    Ok(())
                }
                Err(e) => Err((ErrorClass::Upstream, e)),
            };
        }
        let (current, total) = progress(st, job.download).await;
        send(line("progress", t, |l| (l.current, l.total) = (Some(current), total))).await;
        async_io::Timer::after(TICK).await;
    }
}

fn line(status: &'static str, target: &str, f: impl FnOnce(&mut EnsureLine)) -> EnsureLine {
    let mut l = EnsureLine {
        status,
        target: Some(target.to_string()),
        ..Default::default()
    };
    f(&mut l);
    l
}

/// Bytes done of download `id`, and its total once known.
async fn progress(st: &Station, id: i64) -> (u64, Option<u64>) {
    let downloads = st.downloads.clone();
    let list = blocking(move || downloads.status(200)).await.unwrap_or_default();
    list.iter()
        .find(|d| d.row.id == id)
        .map_or((0, None), |d| (d.done, d.total))
}
