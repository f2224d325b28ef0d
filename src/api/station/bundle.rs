//! `GET /bundle?image=REF…&lxc=NAME…&owner=APP` and `POST /bundle/import?size=N` (depot's own, admin): offline
//! bundles (see `image::bundle`). The bundle streams out of a thread of its own, every blob re-hashed on the way
//! (a damaged one cuts the response short); an import streams in the same way, the upload read as it arrives
//! (bounded: eight chunks in flight), and answers JSON lines: `reading` (bytes so far, of `total` when the
//! client said), `image`, `template`, `pinned`, then `imported` with what was written, or `failed` with the
//! error's class.

use super::dto::BundleLine;
use super::{blocking, require_admin, Answer, Caller, Station, StationError};
use crate::http::{next_frame, query_get, query_pairs, streaming, streaming_fallible, Req};
use crate::image::bundle::{BundleSpec, ImportEvent};
use bytes::Bytes;
use hyper::StatusCode;
use std::io::Read;

pub async fn create(st: &Station, req: &Req, caller: &Caller) -> Answer {
    require_admin(caller)?;
    let q = query_pairs(req.uri().query());
    let all = |key: &str| {
        q.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let spec = BundleSpec {
        images: all("image"),
        templates: all("lxc"),
        owner: query_get(&q, "owner").map(str::to_string),
    };
    let images = st.images.clone();
    let plan = blocking(move || images.bundle_plan(&spec)).await?;
    let images = st.images.clone();
    let rx = crate::http::write_on_thread("bundle", move |w| images.bundle_write(&plan, w).map(|_| ()))
        .map_err(|e| StationError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starting a bundle: {e}")))?;
    Ok(streaming_fallible(StatusCode::OK, "application/x-tar", rx))
}

/// The upload as a `Read` for the importing thread.
struct Upload {
    rx: async_channel::Receiver<Result<Bytes, String>>,
    cur: Bytes,
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv_blocking() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(m)) => return Err(std::io::Error::other(m)),
                // the sender is dropped at the end of the body
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

fn json_line(l: &BundleLine) -> Bytes {
    let mut v = serde_json::to_vec(l).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn import(st: &Station, req: Req, caller: &Caller) -> Answer {
    require_admin(caller)?;
    let q = query_pairs(req.uri().query());
    let total = query_get(&q, "size")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|t| *t > 0);
    let (up_tx, up_rx) = async_channel::bounded::<Result<Bytes, String>>(8);
    let (out_tx, out_rx) = async_channel::bounded::<Bytes>(64);
    let images = st.images.clone();
    std::thread::Builder::new()
        .name("bundle import".into())
        .spawn(move || {
            let mut upload = Upload {
                rx: up_rx,
                cur: Bytes::new(),
            };
            let send = |l: BundleLine| {
                let _ = out_tx.send_blocking(json_line(&l));
            };
            // progress is dropped rather than waited for when the client reads slowly: the import never
            // waits on its own report (the upload it reads would stall behind it)
            let result = images.bundle_import(&mut upload, &mut |ev| match ev {
                ImportEvent::Read(_) => {
                    let _ = out_tx.try_send(json_line(&event_line(ev, total)));
                }
                ev => send(event_line(ev, total)),
            });
            // what the client still sends is read and dropped, so that it hears the answer
            let _ = std::io::copy(&mut upload, &mut std::io::sink());
            send(match result {
                Ok(s) => BundleLine {
                    status: "imported",
                    summary: Some(s),
                    ..Default::default()
                },
                Err(e) => BundleLine {
                    status: "failed",
                    class: Some(e.class()),
                    message: Some(e.to_string()),
                    ..Default::default()
                },
            });
        })
        .map_err(|e| StationError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starting an import: {e}")))?;
    let mut body = req.into_body();
    smol::spawn(async move {
        loop {
            let item = match next_frame(&mut body).await {
                None => break,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(d) => Ok(d),
                    Err(_) => continue,
                },
                Some(Err(e)) => Err(format!("the upload broke off: {e}")),
            };
            let failed = item.is_err();
            if up_tx.send(item).await.is_err() || failed {
                break;
            }
        }
    })
    .detach();
    Ok(streaming(StatusCode::OK, "application/json", out_rx))
}

fn event_line(ev: ImportEvent, total: Option<u64>) -> BundleLine {
    match ev {
        ImportEvent::Read(n) => BundleLine {
            status: "reading",
            current: Some(n),
            total,
            ..Default::default()
        },
        ImportEvent::Image(name) => BundleLine {
            status: "image",
            name: Some(name),
            ..Default::default()
        },
        ImportEvent::Template(name) => BundleLine {
            status: "template",
            name: Some(name),
            ..Default::default()
        },
        ImportEvent::Pinned { owner, target } => BundleLine {
            status: "pinned",
            name: Some(target),
            owner: Some(owner),
            ..Default::default()
        },
    }
}
