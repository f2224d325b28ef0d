//! The LAN registry's HTTP/1.1: GETs and HEADs of manifests and blobs for many clients at once, which hyper
//! would copy byte by byte through its buffers. Here a stored blob ([`FileBody`]) goes from the page cache to a
//! plain TCP socket by `sendfile(2)`, run on the reads' pool because its pages may have to come from the disk;
//! over TLS (or for a blob still arriving) the body is streamed in the chunks the handler yields.
//!
//! Bounds, per connection: a request head of at most [`MAX_HEAD`] bytes within [`HEADER_DEADLINE`] (also the
//! idle time of a kept-alive connection), a request body of at most [`MAX_BODY`] within [`BODY_DEADLINE`] (the
//! registry's only body is the token form), and a write that makes no progress for [`BODY_IDLE_GAP`] ends the
//! connection. A larger or chunked request body is not read: the request is answered (a handler that wants the
//! body refuses it as too large) and the connection closed after a lingering close. Requests on a connection are
//! taken one at a time, in order; HTTP/1.0 connections close after their answer.

use super::{
    dispatch, lingering_close, FileBody, Handler, Peer, Req, ReqBody, Resp, Serving, BODY_DEADLINE, BODY_IDLE_GAP,
    HEADER_DEADLINE,
};
use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use http_body_util::BodyExt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Largest request head (request line and headers) taken.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body read (the token form is a few hundred bytes).
pub const MAX_BODY: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
/// What a read of the head asks for at once, and what an idle connection's buffer shrinks back to.
const READ_STEP: usize = 8 * 1024;
/// Response bytes gathered before a write: a head and a small body go out in one segment.
const WRITE_GATHER: usize = 16 * 1024;
/// The most one `sendfile` call is asked to move (it moves what the socket's buffer takes).
const SENDFILE_STEP: usize = 1 << 30;

/// Serve one connection: `io` carries the bytes (TLS or plain); `plain` is the same connection's TCP socket when
/// nothing sits between (then stored blobs go by `sendfile`).
pub(super) async fn serve(
    io: Box<dyn Stream>,
    plain: Option<async_net::TcpStream>,
    h: Arc<dyn Handler>,
    peer: Peer,
    how: Arc<Serving>,
    tls: bool,
) {
    let mut conn = Conn {
        io,
        plain,
        buf: Vec::new(),
    };
    loop {
        let head = match within(HEADER_DEADLINE, conn.read_head()).await {
            Err(_) => {
                log::debug!("{peer:?}: no request within {HEADER_DEADLINE:?}");
                return;
            }
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => return,
            Ok(Err(Refused::Io(e))) => {
                log::debug!("{peer:?}: reading a request: {e}");
                return;
            }
            Ok(Err(Refused::Bad(status, why))) => {
                log::debug!("{peer:?}: refused a request: {why}");
                let _ = conn.respond(h.refuse(status, &why), &Method::GET, false).await;
                let _ = within(HEADER_DEADLINE, conn.io.close()).await;
                lingering_close(&mut conn.io).await;
                return;
            }
        };
        let method = head.method().clone();
        let (req, reusable) = match conn.body_of(head).await {
            Ok(r) => r,
            Err(e) => {
                log::debug!("{peer:?}: reading a request body: {e}");
                return;
            }
        };
        let keep = reusable && req.version() == Version::HTTP_11 && !wants_close(req.headers());
        let resp = dispatch(&h, &how, peer, tls, req).await;
        match conn.respond(resp, &method, keep).await {
            Ok(true) => {}
            Ok(false) => {
                // the answer is out and our side closed: the client sees its end at once; what it still sends
                // of a body we did not read is drained, so that no reset destroys the answer on its way
                let _ = within(HEADER_DEADLINE, conn.io.close()).await;
                if !reusable {
                    lingering_close(&mut conn.io).await;
                }
                return;
            }
            Err(e) => {
                log::debug!("{peer:?}: answering {method}: {e}");
                return;
            }
        }
    }
}

/// A connection's byte stream, TLS or plain, behind one pointer: the server is compiled once for both.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Why a request is not handed to the API.
enum Refused {
    /// Answered in the API's error shape, then the connection is closed.
    Bad(StatusCode, String),
    /// The connection broke.
    Io(io::Error),
}

struct Conn {
    io: Box<dyn Stream>,
    plain: Option<async_net::TcpStream>,
    /// Bytes read but not yet taken: the start of the next request (a pipelining client's).
    buf: Vec<u8>,
}

impl Conn {
    /// The next request's head; `None` when the client closed between requests.
    async fn read_head(&mut self) -> Result<Option<Request<()>>, Refused> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Request::new(&mut headers);
                match parsed.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = request_of(&parsed)?;
                        self.buf.drain(..n);
                        if self.buf.capacity() > 2 * READ_STEP {
                            self.buf.shrink_to(READ_STEP);
                        }
                        return Ok(Some(head));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(Refused::Bad(
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            format!("more than {MAX_HEADERS} request headers"),
                        ))
                    }
                    Err(e) => return Err(Refused::Bad(StatusCode::BAD_REQUEST, format!("malformed request: {e}"))),
                }
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(Refused::Bad(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!("request head larger than {MAX_HEAD} bytes"),
                ));
            }
            let want = READ_STEP.min(MAX_HEAD - self.buf.len());
            match self.fill(want).await.map_err(Refused::Io)? {
                0 if self.buf.is_empty() => return Ok(None),
                0 => return Err(Refused::Io(io::ErrorKind::UnexpectedEof.into())),
                _ => {}
            }
        }
    }

    /// Read at most `want` more bytes into the buffer; 0 at the end of the stream.
    async fn fill(&mut self, want: usize) -> io::Result<usize> {
        let at = self.buf.len();
        self.buf.resize(at + want, 0);
        let n = self.io.read(&mut self.buf[at..]).await;
        self.buf.truncate(at + *n.as_ref().unwrap_or(&0));
        n
    }

    /// The request with its body read (when it has one this server takes), and whether the connection can carry
    /// another request after it (its body was read to its end).
    async fn body_of(&mut self, head: Request<()>) -> io::Result<(Req, bool)> {
        let chunked = head.headers().contains_key(header::TRANSFER_ENCODING);
        let length = head
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if chunked || length > MAX_BODY as u64 {
            return Ok((head.map(|()| ReqBody::Unread), false));
        }
        let length = length as usize;
        if length > 0 && expects_continue(head.headers()) && self.buf.len() < length {
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            self.flush().await?;
        }
        let read = async {
            while self.buf.len() < length {
                if self.fill(length - self.buf.len()).await? == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
            }
            Ok(())
        };
        within(BODY_DEADLINE, read).await??;
        let body = Bytes::copy_from_slice(&self.buf[..length]);
        self.buf.drain(..length);
        Ok((head.map(|()| ReqBody::Read(body)), true))
    }

    /// Write `resp` as the answer to a `method` request; whether the connection stays open. An error means the
    /// answer was cut short (a failed body, a client that stopped reading): the connection is dropped.
    async fn respond(&mut self, resp: Resp, method: &Method, keep: bool) -> io::Result<bool> {
        let (parts, body) = resp.into_parts();
        let status = parts.status;
        let bodiless = *method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let file = parts
            .extensions
            .get::<FileBody>()
            .filter(|_| self.plain.is_some() && !bodiless)
            .cloned();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let exact = hyper::body::Body::size_hint(&body).exact();
        let length = match &file {
            Some(f) => Some(f.len),
            // a HEAD's answer states the length a GET's body would have
            None if bodiless => declared.or(exact),
            None => exact.or(declared),
        };
        // a body of unknown length goes chunked; HTTP/1.0 only knows its end by the connection's
        let chunked = !bodiless && length.is_none() && keep;
        let keep = keep && (bodiless || length.is_some() || chunked);

        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &parts.headers {
            if [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION].contains(name) {
                continue;
            }
            put_header(&mut out, name.as_str(), value.as_bytes());
        }
        let bodyless_length = status != StatusCode::NO_CONTENT && !status.is_informational();
        match length {
            Some(n) if !bodiless || bodyless_length => put_header(&mut out, "content-length", n.to_string().as_bytes()),
            _ if chunked => put_header(&mut out, "transfer-encoding", b"chunked"),
            _ => {}
        }
        if !keep {
            put_header(&mut out, "connection", b"close");
        }
        // RFC 9110 §6.6.1: an origin server with a clock sends the time of its answer
        if !parts.headers.contains_key(header::DATE) {
            if let Ok(now) = time::OffsetDateTime::now_utc().format(super::HTTP_DATE) {
                put_header(&mut out, "date", now.as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");

        if bodiless {
            self.write_all(&out).await?;
        } else if let Some(f) = file {
            self.write_all(&out).await?;
            self.flush().await?;
            self.send_file(&f).await?;
        } else {
            let mut body = body;
            let mut written = 0u64;
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                written += data.len() as u64;
                if length.is_some_and(|n| written > n) {
                    return Err(io::Error::other(format!(
                        "the body is longer than its {length:?} bytes"
                    )));
                }
                if chunked {
                    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                }
                if out.len() + data.len() <= WRITE_GATHER {
                    out.extend_from_slice(&data);
                } else {
                    self.write_all(&out).await?;
                    out.clear();
                    self.write_all(&data).await?;
                }
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
            }
            if length.is_some_and(|n| written != n) {
                return Err(io::Error::other(format!(
                    "the body ended at {written} of its {length:?} bytes"
                )));
            }
            if chunked {
                out.extend_from_slice(b"0\r\n\r\n");
            }
            self.write_all(&out).await?;
        }
        self.flush().await?;
        Ok(keep)
    }

    /// `bytes`, failing when the client takes none of them for [`BODY_IDLE_GAP`].
    async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match within(BODY_IDLE_GAP, self.io.write(bytes)).await?? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => bytes = &bytes[n..],
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        within(BODY_IDLE_GAP, self.io.flush()).await?
    }

    /// The file's bytes by `sendfile(2)`, each call on the reads' pool (the pages may have to come from the
    /// disk); between calls the socket is waited for without a thread.
    async fn send_file(&mut self, f: &FileBody) -> io::Result<()> {
        let plain = self.plain.clone().expect("send_file only on a plain socket");
        let sock: Arc<async_io::Async<std::net::TcpStream>> = plain.into();
        let (mut at, end) = (f.start, f.start + f.len);
        while at < end {
            let count = (end - at).min(SENDFILE_STEP as u64) as usize;
            let (s, file) = (sock.clone(), f.file.clone());
            let sent = crate::pool::read(move || {
                let mut offset = at as libc::off64_t;
                nix::sys::sendfile::sendfile64(s.get_ref(), &*file, Some(&mut offset), count)
            })
            .await;
            match sent {
                Ok(0) => return Err(io::Error::other(format!("the file ends at {at} of {end} bytes"))),
                Ok(n) => at += n as u64,
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            if at < end {
                within(BODY_IDLE_GAP, sock.writable()).await??;
            }
        }
        Ok(())
    }
}

/// The request line and headers as a request, its values checked the way `http` checks them.
fn request_of(parsed: &httparse::Request<'_, '_>) -> Result<Request<()>, Refused> {
    let bad = |why: String| Refused::Bad(StatusCode::BAD_REQUEST, why);
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|e| bad(format!("request method: {e}")))?;
    let uri: http::Uri = parsed
        .path
        .unwrap_or_default()
        .parse()
        .map_err(|e| bad(format!("request target: {e}")))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut req = Request::builder().method(method).uri(uri).version(version);
    let mut lengths = 0;
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| bad(format!("header {:?}: {e}", h.name)))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|e| bad(format!("header {:?}: {e}", h.name)))?;
        if name == header::CONTENT_LENGTH {
            lengths += 1;
            if value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).is_none() {
                return Err(bad(format!("content-length {value:?}")));
            }
        }
        req = req.header(name, value);
    }
    let req = req.body(()).map_err(|e| bad(e.to_string()))?;
    // two lengths, or a length beside chunked, let two parsers see two different requests (smuggling)
    if lengths > 1 || (lengths == 1 && req.headers().contains_key(header::TRANSFER_ENCODING)) {
        return Err(bad("a request with more than one length".into()));
    }
    Ok(req)
}

fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn has_token(headers: &http::HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn wants_close(headers: &http::HeaderMap) -> bool {
    has_token(headers, header::CONNECTION, "close")
}

fn expects_continue(headers: &http::HeaderMap) -> bool {
    has_token(headers, header::EXPECT, "100-continue")
}

/// `f`, or `TimedOut` once `limit` passes.
async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> io::Result<T> {
    futures_lite::future::or(async { Ok(f.await) }, async {
        async_io::Timer::after(limit).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("nothing for {limit:?}"),
        ))
    })
    .await
}
