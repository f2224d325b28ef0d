//! Server plumbing shared by both APIs: listeners (unix socket and TCP), hyper connections on smol, bodies,
//! query strings. No image knowledge here.

use bytes::Bytes;
use futures_lite::{Stream, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

pub type Body = BoxBody<Bytes, io::Error>;
pub type Req = Request<Incoming>;
pub type Resp = Response<Body>;

/// Something that answers requests: one per API.
pub trait Handler: Send + Sync + 'static {
    fn handle(self: Arc<Self>, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send>>;
}

pub fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()).map_err(|e: Infallible| match e {}).boxed());
    *r.status_mut() = status;
    if !content_type.is_empty() {
        r.headers_mut()
            .insert("content-type", content_type.parse().expect("static header"));
    }
    r
}

pub fn json(status: StatusCode, v: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    full(status, "application/json", body)
}

/// A chunked response fed by a stream; each item is flushed as one chunk.
pub fn streaming(status: StatusCode, content_type: &str, s: impl Stream<Item = Bytes> + Send + Sync + 'static) -> Resp {
    let body = StreamBody::new(s.map(|b| Ok::<_, io::Error>(Frame::data(b))));
    let mut r = Response::new(BodyExt::boxed(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", content_type.parse().expect("static header"));
    r
}

/// `application/x-www-form-urlencoded` query pairs, decoded (`+` is a space, as Go's `ParseQuery`).
pub fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Go's `httputils.BoolValue`: `""`, `0`, `no`, `false`, `none` (any case, trimmed) are false.
pub fn bool_value(v: Option<&str>) -> bool {
    match v {
        None => false,
        Some(v) => !matches!(v.trim().to_lowercase().as_str(), "" | "0" | "no" | "false" | "none"),
    }
}

/// Percent-decoded path (docker-py sends `%40` for `@`).
pub fn decoded_path(p: &str) -> String {
    percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()
}

async fn serve_conn<S>(io: S, h: Arc<dyn HandlerDyn>)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let h = h.clone();
        async move { Ok::<_, Infallible>(h.call(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(smol_hyper::rt::SmolTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(30))
        .serve_connection(smol_hyper::rt::FuturesIo::new(io), svc);
    if let Err(e) = conn.await {
        log::debug!("connection ended: {e}");
    }
}

/// Object-safe shim over [`Handler`].
pub trait HandlerDyn: Send + Sync {
    fn call(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send>>;
}

impl<H: Handler> HandlerDyn for Arc<H> {
    fn call(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send>> {
        self.clone().handle(req)
    }
}

/// Bind the unix socket: a stale socket file is replaced (the data-root lock proves no daemon owns it), mode
/// 0660, group `group` when it exists in `/etc/group`.
pub fn bind_unix(path: &Path, group: Option<&str>) -> io::Result<async_net::unix::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = async_net::unix::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(g) = group {
        match crate::sysdb::group_id(g) {
            // Not fatal: the socket stays usable by the daemon's own group (mode 0660).
            Some(gid) => {
                if let Err(e) = nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid))) {
                    log::warn!("cannot give the socket to group {g:?}: {e}; leaving its group as it is");
                }
            }
            None => log::warn!("socket group {g:?} does not exist; leaving the socket's group as it is"),
        }
    }
    Ok(l)
}

pub async fn serve_unix(l: async_net::unix::UnixListener, h: Arc<dyn HandlerDyn>) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                smol::spawn(serve_conn(s, h.clone())).detach();
            }
            Err(e) => {
                log::warn!("accept on unix socket: {e}");
                async_io::Timer::after(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

pub async fn serve_tcp(l: async_net::TcpListener, h: Arc<dyn HandlerDyn>) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                smol::spawn(serve_conn(s, h.clone())).detach();
            }
            Err(e) => {
                log::warn!("accept on tcp: {e}");
                async_io::Timer::after(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_bools() {
        let q = query_pairs(Some("fromImage=127.0.0.1%3A5000%2Ftest&tag=1&x=a+b&force=False"));
        assert_eq!(query_get(&q, "fromImage"), Some("127.0.0.1:5000/test"));
        assert_eq!(query_get(&q, "x"), Some("a b"));
        for f in [None, Some(""), Some("0"), Some("no"), Some("False"), Some(" none ")] {
            assert!(!bool_value(f), "{f:?}");
        }
        for t in [Some("1"), Some("true"), Some("True"), Some("yes")] {
            assert!(bool_value(t), "{t:?}");
        }
        assert_eq!(
            decoded_path("/images/busybox%40sha256:ab/json"),
            "/images/busybox@sha256:ab/json"
        );
    }
}
