//! Server plumbing shared by both APIs: listeners (unix socket and TCP), hyper connections on smol, bodies,
//! query strings. No image knowledge here.

mod h1;
pub mod router;
pub mod tls;

pub use router::{Found, Params, Router};

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
use std::time::Duration;

pub type Body = BoxBody<Bytes, io::Error>;
pub type Req = Request<ReqBody>;
pub type Resp = Response<Body>;

/// A request's body as a listener hands it over: streamed by hyper, or already read whole by [`h1`] (the LAN
/// registry's listener, whose only body is the token form). Read it with [`read_body`] or [`next_frame`].
pub enum ReqBody {
    Streamed(Incoming),
    Read(Bytes),
    /// A body [`h1`] left unread, being larger than it takes (or chunked): [`read_body`] refuses it.
    Unread,
}

/// A response's extension: its body is bytes `start..start + len` of `file`. A listener that can hand them to
/// the kernel (`sendfile(2)` on a plain TCP socket, [`h1`]) sends them from the file and drops the body; any
/// other streams the body, which must hold the same bytes.
#[derive(Clone)]
pub struct FileBody {
    pub file: Arc<std::fs::File>,
    pub start: u64,
    pub len: u64,
}

/// Something that answers requests: one per API.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send>>;

    /// A refusal by the plumbing (a foreign origin, a wrong `Host`) in this API's error shape.
    fn refuse(&self, status: StatusCode, message: &str) -> Resp;
}

/// Who may talk to a TCP listener, until sessions exist: browsers are kept out (CSRF) and names that could be
/// rebound to our address (DNS rebinding) are refused.
#[derive(Debug, Clone, Default)]
pub struct TcpPolicy {
    /// Host names (lowercase) accepted in `Host` besides loopback addresses and `localhost`.
    pub names: Vec<String>,
    /// Origins (`scheme://host[:port]`) a browser's request may come from besides the request's own.
    pub origins: Vec<String>,
}

/// The comma-separated entries of a header the NAS's own web server on loopback sets (`X-Forwarded-…`), or `None`
/// when the peer is anyone else: from them it is the client's word, and ignored.
fn from_proxy<'h>(peer: Peer, h: &'h http::HeaderMap, name: &str) -> Option<impl Iterator<Item = &'h str>> {
    let Peer::Tcp(a) = peer else {
        return None;
    };
    a.ip().is_loopback().then(|| {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
    })
}

/// A forwarded header's first entry, lowercase (the host and scheme the browser addressed).
fn forwarded_first(peer: Peer, h: &http::HeaderMap, name: &str) -> Option<String> {
    let v = from_proxy(peer, h, name)?.next()?.to_ascii_lowercase();
    (!v.is_empty()).then_some(v)
}

/// The client's address: the TCP peer, or, when that is the NAS's own proxy on loopback, the address it names
/// last in `X-Forwarded-For` (the entry the proxy itself appended; earlier ones are the client's word). `None`
/// on the unix socket.
pub fn client_ip(req: &Req) -> Option<std::net::IpAddr> {
    let peer = peer_of(req);
    let Peer::Tcp(a) = peer else {
        return None;
    };
    let forwarded = from_proxy(peer, req.headers(), "x-forwarded-for")
        .and_then(|entries| entries.last())
        .and_then(|last| last.parse().ok());
    Some(forwarded.unwrap_or(a.ip()))
}

/// Whether the request reached the NAS over HTTPS: it came over our own TLS ([`tls`]), or the loopback proxy says
/// so (`X-Forwarded-Proto: https`).
pub fn via_https(req: &Req) -> bool {
    req.extensions().get::<tls::OverTls>().is_some()
        || forwarded_first(peer_of(req), req.headers(), "x-forwarded-proto").as_deref() == Some("https")
}

/// `host[:port]` or `[v6]:port` as (host, port): an IPv6 host without its brackets, the port as written (checked
/// by whoever needs it). `None` when brackets are not closed or something but a port follows them.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    match authority.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']')?;
            match after {
                "" => Some((h, None)),
                _ => Some((h, Some(after.strip_prefix(':')?))),
            }
        }
        None => Some(match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }),
    }
}

/// `scheme://host:port`, lowercase, with the scheme's default port written out, so that equal origins compare
/// equal; `None` for what is not an http(s) origin (`null`, a path, userinfo).
fn normal_origin(scheme: &str, authority: &str) -> Option<String> {
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = authority.to_ascii_lowercase();
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = split_authority(&authority)?;
    let port: u16 = match port {
        None => default,
        Some(p) => p.parse().ok()?,
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Some(format!("{scheme}://{host}:{port}"))
}

impl TcpPolicy {
    /// `Some(reason)` when the request must be refused with 403.
    pub fn check(&self, req: &Req) -> Option<String> {
        self.check_headers(peer_of(req), req.method(), req.headers())
    }

    #[cfg(test)]
    fn check_parts(&self, peer: Peer, p: &http::request::Parts) -> Option<String> {
        self.check_headers(peer, &p.method, &p.headers)
    }

    fn check_headers(&self, peer: Peer, method: &http::Method, h: &http::HeaderMap) -> Option<String> {
        let text = |name: &str| h.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
        let host = match text("host") {
            None => return Some("a Host header is required".into()),
            Some(host) if !self.allowed_authority(&host) => {
                return Some(format!(
                    "host {host:?} is not served here (allowed: loopback addresses, localhost{})",
                    self.names.iter().map(|n| format!(", {n}")).collect::<String>()
                ))
            }
            Some(host) => host,
        };
        if text("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
            return Some("cross-site requests are refused".into());
        }
        match text("origin") {
            Some(origin) => {
                // The request's own origin: its scheme, host and port, as the browser addressed it. Behind the
                // NAS's own web server (the page at its proxy path) that is the NAS's name and scheme, which the
                // proxy passes on as X-Forwarded-Host and -Proto. Another port of the same host is another
                // origin (and the same site, so SameSite cookies do not tell them apart).
                let forwarded_host = forwarded_first(peer, h, "x-forwarded-host");
                let their_scheme = origin.split_once("://").map(|(s, _)| s).unwrap_or("");
                let scheme = match (forwarded_first(peer, h, "x-forwarded-proto"), &forwarded_host) {
                    (Some(proto), _) => proto,
                    // a proxy that names the host but not the scheme (Apache's mod_proxy): the host and port
                    // must match, under the origin's own scheme
                    (None, Some(_)) => their_scheme.to_string(),
                    (None, None) => "http".into(),
                };
                let own = normal_origin(&scheme, forwarded_host.as_deref().unwrap_or(&host));
                let theirs = origin.split_once("://").and_then(|(s, a)| normal_origin(s, a));
                let configured = |o: &String| o.split_once("://").and_then(|(s, a)| normal_origin(s, a)) == theirs;
                if theirs.is_none() || (theirs != own && !self.origins.iter().any(configured)) {
                    return Some(format!("requests from origin {origin:?} are refused"));
                }
            }
            // a browser always names the origin of a state-changing request: one that does not is refused
            None if text("sec-fetch-site").is_some()
                && !matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS) =>
            {
                return Some("a browser's state-changing request must carry its Origin".into());
            }
            None => {}
        }
        None
    }

    fn allowed_authority(&self, authority: &str) -> bool {
        let Some((host, _)) = split_authority(authority) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        if host == "localhost" || self.names.contains(&host) {
            return true;
        }
        host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
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

/// An answer with no body (`201 Created` of a tag).
pub fn empty(status: StatusCode) -> Resp {
    full(status, "", Bytes::new())
}

pub fn json(status: StatusCode, v: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    full(status, "application/json", body)
}

/// A chunked response fed by a stream; each item is flushed as one chunk.
pub fn streaming(status: StatusCode, content_type: &str, s: impl Stream<Item = Bytes> + Send + Sync + 'static) -> Resp {
    streaming_fallible(status, content_type, s.map(Ok))
}

/// [`streaming`] of a stream that may fail: an error cuts the response short (no final chunk; the connection
/// is closed), so that a client never takes a body that broke off for whole.
pub fn streaming_fallible(
    status: StatusCode,
    content_type: &str,
    s: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) -> Resp {
    let body = StreamBody::new(Shared(std::sync::Mutex::new(Box::pin(s))).map(|b| b.map(Frame::data)));
    let mut r = Response::new(BodyExt::boxed(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", content_type.parse().expect("static header"));
    r
}

/// A stream that may be shared between threads because it is only ever reached through `&mut` (a response body
/// is polled by one task): the mutex is never locked, it only lends its `Sync` to a stream that lacks it (one
/// that awaits a pool's queue).
struct Shared<S>(std::sync::Mutex<Pin<Box<S>>>);

impl<S: Stream> Stream for Shared<S> {
    type Item = S::Item;
    fn poll_next(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<S::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(s) => s.as_mut().poll_next(cx),
            Err(poisoned) => poisoned.into_inner().as_mut().poll_next(cx),
        }
    }
}

/// An HTTP date (IMF-fixdate, RFC 9110 §5.6.7): `Date` of our answers, `Retry-After` of a registry's.
pub const HTTP_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Largest JSON (or other small) request body any handler reads into memory.
pub const MAX_SMALL_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed request body: {0}")]
    Malformed(String),
    #[error("request body not received within {} s", .0.as_secs())]
    TooSlow(Duration),
    #[error("request body stalled: nothing received for {} s", .0.as_secs())]
    Stalled(Duration),
}

/// How long a client may take to send a whole small body (a login, a JSON call) once its header is in.
pub const BODY_DEADLINE: Duration = Duration::from_secs(20);
/// How long a streamed upload (an image archive) may go without a byte before it is abandoned.
pub const BODY_IDLE_GAP: Duration = Duration::from_secs(60);
/// How long a client may take to send a request's header, or to start one on an idle keep-alive connection.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(20);

/// Read a request body whole, refusing more than `limit` bytes, a malformed (e.g. chunked) encoding and a body
/// not complete within [`BODY_DEADLINE`]. Every handler reads its body through this before acting, so that a
/// broken request never half-runs.
///
/// The frames are copied into one buffer as they come: each holds on to the connection's whole read buffer
/// (8 KiB and more), so keeping them would cost that much per segment of a body sent a byte at a time.
pub async fn read_body(body: ReqBody, limit: usize) -> Result<Bytes, BodyError> {
    use hyper::body::Body as _;
    let mut body = match body {
        ReqBody::Streamed(b) => b,
        ReqBody::Read(b) if b.len() > limit => return Err(BodyError::TooLarge(limit)),
        ReqBody::Read(b) => return Ok(b),
        ReqBody::Unread => return Err(BodyError::TooLarge(limit.min(h1::MAX_BODY))),
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge(limit));
    }
    let initial = body.size_hint().exact().unwrap_or(0).min(limit as u64) as usize;
    let mut buf = Vec::with_capacity(initial);
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Malformed(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(BodyError::TooLarge(limit));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    futures_lite::future::or(read, async {
        async_io::Timer::after(BODY_DEADLINE).await;
        Err(BodyError::TooSlow(BODY_DEADLINE))
    })
    .await?;
    buf.shrink_to_fit();
    Ok(Bytes::from(buf))
}

/// The next frame of a streamed body, or an error once [`BODY_IDLE_GAP`] passes without one.
pub async fn next_frame(body: &mut ReqBody) -> Option<Result<Frame<Bytes>, BodyError>> {
    let body = match body {
        ReqBody::Streamed(b) => b,
        ReqBody::Read(b) if b.is_empty() => return None,
        ReqBody::Read(b) => return Some(Ok(Frame::data(std::mem::take(b)))),
        ReqBody::Unread => return Some(Err(BodyError::TooLarge(h1::MAX_BODY))),
    };
    let frame = async {
        body.frame()
            .await
            .map(|f| f.map_err(|e| BodyError::Malformed(e.to_string())))
    };
    futures_lite::future::or(frame, async {
        async_io::Timer::after(BODY_IDLE_GAP).await;
        Some(Err(BodyError::Stalled(BODY_IDLE_GAP)))
    })
    .await
}

/// A blocking writer whose bytes become a streamed response body: written in chunks of 64 KiB through a bounded
/// channel, so a slow client slows the writer instead of filling memory. A write fails once the client is gone;
/// [`BodyWriter::abort`] cuts the body short when the writer fails (answer with [`streaming_fallible`]).
pub struct BodyWriter {
    tx: async_channel::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const BODY_CHUNK: usize = 64 * 1024;

impl BodyWriter {
    /// The writer and the stream to answer with (see [`streaming_fallible`]).
    pub fn new() -> (BodyWriter, async_channel::Receiver<io::Result<Bytes>>) {
        let (tx, rx) = async_channel::bounded(8);
        (
            BodyWriter {
                tx,
                buf: Vec::with_capacity(BODY_CHUNK),
            },
            rx,
        )
    }
}

impl io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BODY_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BODY_CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(BODY_CHUNK)));
        self.tx
            .send_blocking(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl BodyWriter {
    /// End the body with an error instead of its end: what is still buffered is dropped and the response is cut
    /// short, as dockerd cuts a save that fails.
    pub fn abort(mut self, why: &str) {
        self.buf.clear();
        let _ = self.tx.send_blocking(Err(io::Error::other(why.to_string())));
    }
}

/// A response body that `job` writes on a thread of its own, named `name` (a save, a bundle, a blob): a failure
/// is logged and cuts the body short (answer with [`streaming_fallible`]).
pub fn write_on_thread<E: std::fmt::Display>(
    name: &str,
    job: impl FnOnce(&mut BodyWriter) -> Result<(), E> + Send + 'static,
) -> io::Result<async_channel::Receiver<io::Result<Bytes>>> {
    let (mut writer, rx) = BodyWriter::new();
    let what = name.to_string();
    std::thread::Builder::new().name(what.clone()).spawn(move || {
        if let Err(e) = job(&mut writer) {
            log::warn!("{what} ended early: {e}");
            writer.abort(&e.to_string());
        }
    })?;
    Ok(rx)
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let _ = io::Write::flush(self);
    }
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

/// Which listener a request came in on: a handler reads it from the request's extensions. The unix socket is
/// trusted by its file mode; a TCP peer must show a session or a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Unix,
    Tcp(std::net::SocketAddr),
}

pub fn peer_of(req: &Req) -> Peer {
    req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix)
}

/// A request as every listener answers it: tagged with its peer (and TLS), refused when the listener's policy
/// says so, else handed to the API.
fn dispatch(
    h: &Arc<dyn Handler>,
    how: &Serving,
    peer: Peer,
    tls: bool,
    mut req: Req,
) -> impl Future<Output = Resp> + Send + 'static {
    req.extensions_mut().insert(peer);
    if tls {
        req.extensions_mut().insert(tls::OverTls);
    }
    let refusal = how.policy.as_ref().and_then(|p| p.check(&req));
    let h = h.clone();
    async move {
        match refusal {
            Some(why) => {
                log::warn!("refused {} {} over tcp: {why}", req.method(), req.uri().path());
                h.refuse(StatusCode::FORBIDDEN, &why)
            }
            None => h.handle(req).await,
        }
    }
}

/// Serve one connection `io` with hyper. `linger` is a second handle on the same socket: hyper dropping its own
/// does not close it, and a malformed request's rest is drained from it.
async fn serve_conn<S, L>(io: S, linger: L, h: Arc<dyn Handler>, peer: Peer, how: Arc<Serving>)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + Send + 'static,
    L: futures_lite::AsyncRead + Unpin,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let answer = dispatch(&h, &how, peer, false, req.map(ReqBody::Streamed));
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(smol_hyper::rt::SmolTimer::new())
        .header_read_timeout(HEADER_DEADLINE);
    let conn = builder.serve_connection(smol_hyper::rt::FuturesIo::new(io), svc);
    if let Err(e) = conn.await {
        log::debug!("connection ended: {e}");
        if e.is_parse() || e.is_parse_too_large() {
            lingering_close(linger).await;
        }
    }
}

/// After hyper answered a malformed request (400, 431) the client may still be sending: closing at once would
/// reset the connection and destroy the answer in the client's receive buffer. Read and discard what comes, for
/// a bounded time and amount, the way web servers' lingering close does.
async fn lingering_close<S: futures_lite::AsyncRead + Unpin>(mut io: S) {
    use futures_lite::AsyncReadExt;
    const MAX: usize = 64 * 1024 * 1024;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    let drain = async {
        while total < MAX {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    futures_lite::future::or(drain, async {
        async_io::Timer::after(std::time::Duration::from_secs(2)).await;
    })
    .await;
}

/// Make room for our socket at `path`: nothing there is fine; a socket nobody answers on (a daemon that died)
/// is removed; a socket a daemon answers on, or anything that is not a socket, is refused and left alone. The
/// data-root lock does not cover this: the path may be another data root's socket.
fn clear_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket; refusing to replace it", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "a daemon is answering on {}; refusing to take its socket",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

/// A bound unix socket and the identity of its file, so that we remove only our own at exit.
pub struct UnixSocket {
    pub listener: async_net::unix::UnixListener,
    pub path: std::path::PathBuf,
    inode: (u64, u64),
}

impl UnixSocket {
    /// Remove the socket file if it is still the one we bound.
    pub fn remove_file(&self) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.inode {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Bind the unix socket (see [`clear_stale_socket`] for what may already be at the path), mode 0660, group
/// `group` when it exists in `/etc/group`.
pub fn bind_unix(path: &Path, group: Option<&str>) -> io::Result<UnixSocket> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    clear_stale_socket(path)?;
    let l = async_net::unix::UnixListener::bind(path)?;
    let m = std::fs::symlink_metadata(path)?;
    let inode = (m.dev(), m.ino());
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
    Ok(UnixSocket {
        listener: l,
        path: path.to_path_buf(),
        inode,
    })
}

/// How many connections each listener serves at once. A client past the cap waits in the kernel's backlog
/// instead of taking a descriptor: a flood of TCP clients can neither starve the unix socket nor take the
/// descriptors that accepted clients need for the database, blobs and downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub unix: usize,
    pub tcp: usize,
    /// The LAN registry's listener, when there is one: its share is taken from TCP's, so that LAN clients never
    /// take what the owner's page and the socket need.
    pub registry: usize,
}

impl ConnLimits {
    /// The caps for a process that may open `nofile` descriptors: the unix socket an eighth (8 to 256), TCP what
    /// is left of half (8 to 4,096); the other half stays for files, downloads and the client's own work.
    pub fn for_nofile(nofile: u64) -> ConnLimits {
        let n = nofile.min(1 << 20) as usize;
        let unix = (n / 8).clamp(8, 256);
        let tcp = (n / 2).saturating_sub(unix).clamp(8, 4096);
        ConnLimits { unix, tcp, registry: 0 }
    }

    /// These caps with a share for the LAN registry's listener: half of TCP's (at least 8 for each).
    pub fn with_registry(self) -> ConnLimits {
        let registry = (self.tcp / 2).max(8);
        ConnLimits {
            tcp: self.tcp.saturating_sub(registry).max(8),
            registry,
            ..self
        }
    }
}

/// The connections the kernel queues for a TCP listener before `accept`: as many as `net.core.somaxconn`
/// allows (at most 4,096). A burst of LAN clients past the connection cap then waits in the queue instead of
/// having its SYNs dropped and retried a second or more later (std's listeners queue 128).
const TCP_BACKLOG: i32 = 4096;

/// A TCP listener on `addr` with [`TCP_BACKLOG`] (`SO_REUSEADDR` as std sets it: a restart rebinds at once).
pub fn bind_tcp(addr: std::net::SocketAddr) -> io::Result<async_net::TcpListener> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let family = match addr {
        std::net::SocketAddr::V4(_) => AddressFamily::Inet,
        std::net::SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(addr))?;
    socket::listen(
        &fd,
        socket::Backlog::new(TCP_BACKLOG).unwrap_or(socket::Backlog::MAXCONN),
    )?;
    async_net::TcpListener::try_from(std::net::TcpListener::from(fd))
}

/// Raise the soft limit on open descriptors to the hard one; the soft limit in force after.
// rlim_t is u32 on armv7, u64 on the 64-bit targets: the casts are needed there, not here
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => return hard as u64,
            Err(e) => log::warn!("raising the open files limit from {soft} to {hard}: {e}"),
        }
    }
    soft as u64
}

/// Accept connections on `accept` while fewer than `max` are served; each is served by `serve`. An accept that
/// fails (EMFILE, ENFILE, ENOBUFS…) waits 100 ms before the next try and is logged once per burst, not per try.
async fn accept_loop<S, F, Fut>(name: &str, max: usize, mut accept: impl FnMut() -> F, serve: impl Fn(S) -> Fut)
where
    F: Future<Output = io::Result<S>>,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(smol::lock::Semaphore::new(max));
    let mut failing_since: Option<(std::time::Instant, u64)> = None;
    loop {
        let slot = slots.acquire_arc().await;
        match accept().await {
            Ok(s) => {
                if let Some((since, n)) = failing_since.take() {
                    log::warn!(
                        "accept on {name} works again after {n} failures in {} ms",
                        since.elapsed().as_millis()
                    );
                }
                let conn = serve(s);
                smol::spawn(async move {
                    conn.await;
                    drop(slot);
                })
                .detach();
            }
            Err(e) => {
                match &mut failing_since {
                    Some((_, n)) => *n += 1,
                    None => {
                        log::warn!("accept on {name}: {e} (retrying every 100 ms)");
                        failing_since = Some((std::time::Instant::now(), 1));
                    }
                }
                drop(slot);
                async_io::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

pub async fn serve_unix(l: async_net::unix::UnixListener, h: Arc<dyn Handler>, max: usize) {
    accept_loop(
        "the unix socket",
        max,
        || {
            let l = l.clone();
            async move { l.accept().await.map(|(s, _)| s) }
        },
        |s: async_net::unix::UnixStream| serve_conn(s.clone(), s, h.clone(), Peer::Unix, Arc::default()),
    )
    .await
}

/// How a TCP listener serves (the unix socket: all defaults).
#[derive(Default)]
pub struct Serving {
    /// The owner's listener's policy (Host names, origins): it refuses requests a browser may have been tricked
    /// into. The LAN registry's listener has none (no cookie or browser reaches it).
    pub policy: Option<TcpPolicy>,
    /// Connections served at once.
    pub max_connections: usize,
    pub server: Server,
}

/// What speaks HTTP on a listener.
#[derive(Default)]
pub enum Server {
    /// hyper, in plain HTTP: the owner's APIs (uploads of any size, streamed progress). TLS in front of them is
    /// the NAS's own web server's.
    #[default]
    Hyper,
    /// [`h1`], over TLS when `tls` is set: the LAN registry, which streams large bodies to many clients (small
    /// fixed buffers per connection, stored blobs by `sendfile(2)` over plain TCP, write deadlines) and takes no
    /// large request bodies.
    Registry { tls: Option<Arc<rustls::ServerConfig>> },
}

/// Serve `h` on `l` as `how` says.
pub async fn serve_tcp(l: async_net::TcpListener, h: Arc<dyn Handler>, how: Serving) {
    let (registry, acceptor) = match &how.server {
        Server::Hyper => (false, None),
        Server::Registry { tls } => (true, tls.clone().map(futures_rustls::TlsAcceptor::from)),
    };
    let max = how.max_connections;
    let how = Arc::new(how);
    accept_loop(
        "tcp",
        max,
        || {
            let l = l.clone();
            async move { l.accept().await }
        },
        |(s, addr): (async_net::TcpStream, std::net::SocketAddr)| {
            let _ = s.set_nodelay(true);
            let (h, how, acceptor) = (h.clone(), how.clone(), acceptor.clone());
            async move {
                let peer = Peer::Tcp(addr);
                if !registry {
                    return serve_conn(s.clone(), s, h, peer, how).await;
                }
                let Some(acceptor) = acceptor else {
                    return h1::serve(Box::new(s.clone()), Some(s), h, peer, how, false).await;
                };
                let handshake = futures_lite::future::or(async { Some(acceptor.accept(s.clone()).await) }, async {
                    async_io::Timer::after(HEADER_DEADLINE).await;
                    None
                });
                match handshake.await {
                    Some(Ok(io)) => h1::serve(Box::new(io), None, h, peer, how, true).await,
                    Some(Err(e)) => log::debug!("tls handshake with {addr}: {e}"),
                    None => log::debug!("tls handshake with {addr}: no handshake within {HEADER_DEADLINE:?}"),
                }
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_caps_leave_descriptors_for_the_work() {
        let caps = |unix, tcp, registry| ConnLimits { unix, tcp, registry };
        assert_eq!(ConnLimits::for_nofile(1024), caps(128, 384, 0));
        assert_eq!(ConnLimits::for_nofile(64), caps(8, 24, 0));
        assert_eq!(ConnLimits::for_nofile(1 << 20), caps(256, 4096, 0));
        assert_eq!(ConnLimits::for_nofile(1024).with_registry(), caps(128, 192, 192));
        assert_eq!(ConnLimits::for_nofile(64).with_registry(), caps(8, 12, 12));
        for n in [32u64, 256, 1024, 4096, 65536] {
            let c = ConnLimits::for_nofile(n);
            assert!((c.unix + c.tcp) as u64 <= n / 2 + 8, "{n}: {c:?}");
        }
    }

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

    #[test]
    fn tcp_policy_hosts_and_origins() {
        let p = TcpPolicy {
            names: vec!["nas.lan".into()],
            origins: vec!["https://Admin.Example".into()],
        };
        for ok in [
            "127.0.0.1:2375",
            "127.0.0.1",
            "localhost:2375",
            "LOCALHOST",
            "[::1]:2375",
            "nas.lan:8080",
            "127.9.0.1:1",
        ] {
            assert!(p.allowed_authority(ok), "{ok}");
        }
        for bad in [
            "attacker.com",
            "attacker.com:2375",
            "10.0.0.1:2375",
            "[::2]:1",
            "localhost.attacker.com",
            "[::1]x",
            "",
            "nas.lan.evil:1",
        ] {
            assert!(!p.allowed_authority(bad), "{bad}");
        }
        let lo = Peer::Tcp("127.0.0.1:40000".parse().unwrap());
        let lan = Peer::Tcp("192.0.2.7:40000".parse().unwrap());
        let req = |hs: &[(&str, &str)]| {
            let mut b = Request::builder().uri("/images/create");
            for (k, v) in hs {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        let check_from = |peer: Peer, hs: &[(&str, &str)]| {
            let (parts, ()) = req(hs).into_parts();
            // `check` looks at headers only; any body type will do
            p.check_parts(peer, &parts)
        };
        let check = |hs: &[(&str, &str)]| check_from(lo, hs);
        assert_eq!(check(&[("host", "127.0.0.1:2375")]), None);
        assert!(check(&[]).is_some(), "no Host");
        assert!(check(&[("host", "attacker.com")]).is_some());
        assert!(check(&[("host", "127.0.0.1:2375"), ("origin", "http://evil.example")]).is_some());
        assert!(check(&[("host", "127.0.0.1:2375"), ("origin", "null")]).is_some());
        assert!(check(&[("host", "127.0.0.1:2375"), ("sec-fetch-site", "cross-site")]).is_some());
        assert_eq!(
            check(&[("host", "localhost:2375"), ("origin", "http://localhost:2375")]),
            None
        );
        // exact origins: the same host on another port, or another scheme, is another origin
        assert!(check(&[("host", "127.0.0.1:8999"), ("origin", "http://127.0.0.1:8000")]).is_some());
        assert!(check(&[("host", "127.0.0.1:8999"), ("origin", "https://127.0.0.1:8999")]).is_some());
        assert!(check(&[("host", "127.0.0.1:8999"), ("origin", "http://localhost:8999")]).is_some());
        assert!(check(&[("host", "127.0.0.1"), ("origin", "http://127.0.0.1:81")]).is_some());
        assert_eq!(check(&[("host", "127.0.0.1"), ("origin", "http://127.0.0.1:80")]), None);
        assert_eq!(check(&[("host", "[::1]:8999"), ("origin", "http://[::1]:8999")]), None);
        assert!(check(&[("host", "[::1]"), ("origin", "http://[::1]x")]).is_some());
        // an origin configured explicitly
        assert_eq!(
            check(&[("host", "127.0.0.1:8999"), ("origin", "https://admin.example:443")]),
            None
        );
        // the page behind the NAS's proxy: the origin is the one the proxy forwards, scheme included
        let proxied = [
            ("host", "127.0.0.1:8999"),
            ("origin", "https://MyNAS:443"),
            ("x-forwarded-host", "mynas:443"),
            ("x-forwarded-proto", "https"),
        ];
        assert_eq!(check(&proxied), None);
        assert_eq!(
            check(&[
                ("host", "127.0.0.1:8999"),
                ("origin", "https://mynas"),
                ("x-forwarded-host", "mynas"),
                ("x-forwarded-proto", "https")
            ]),
            None
        );
        // …but not from a peer that is not the loopback proxy, nor with the wrong scheme or port
        assert!(check_from(
            lan,
            &[
                ("host", "nas.lan:8999"),
                ("origin", "https://mynas"),
                ("x-forwarded-host", "mynas"),
                ("x-forwarded-proto", "https")
            ]
        )
        .is_some());
        assert!(check(&[
            ("host", "127.0.0.1:8999"),
            ("origin", "http://mynas:443"),
            ("x-forwarded-host", "mynas:443"),
            ("x-forwarded-proto", "https")
        ])
        .is_some());
        assert!(check(&[
            ("host", "127.0.0.1:8999"),
            ("origin", "https://mynas:8443"),
            ("x-forwarded-host", "mynas"),
            ("x-forwarded-proto", "https")
        ])
        .is_some());
        // a proxy that does not say the scheme: host and port decide
        assert_eq!(
            check(&[
                ("host", "127.0.0.1:8999"),
                ("origin", "https://mynas"),
                ("x-forwarded-host", "mynas")
            ]),
            None
        );
        assert!(check(&[
            ("host", "127.0.0.1:8999"),
            ("origin", "https://mynas:8080"),
            ("x-forwarded-host", "mynas")
        ])
        .is_some());
        assert!(check(&[
            ("host", "127.0.0.1:8999"),
            ("origin", "https://evil.example"),
            ("x-forwarded-host", "mynas:443")
        ])
        .is_some());
        // a browser's POST without an Origin
        let (mut parts, ()) = req(&[("host", "127.0.0.1:2375"), ("sec-fetch-site", "same-origin")]).into_parts();
        assert_eq!(p.check_parts(lo, &parts), None, "a GET");
        parts.method = http::Method::POST;
        assert!(p.check_parts(lo, &parts).is_some(), "a POST");
    }
}
