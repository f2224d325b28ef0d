//! A client of the Docker Engine API over a unix socket: depot's own daemon for the `depot` commands, and the
//! container engine an image is handed off to after a pull (`image::save`). Requests, streamed bodies, and the
//! daemon's error shapes; what the commands print is `cli`'s.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, Response, StatusCode};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the depot daemon at {socket}: {msg} (is `depot serve` running?)")]
    Connect { socket: String, msg: String },
    #[error("{0}")]
    Daemon(String),
    #[error("{0}")]
    Usage(String),
    #[error("talking to the daemon: {0}")]
    Protocol(String),
    /// A policy refused what was asked (`depot ensure` exits 3).
    #[error("{0}")]
    Refused(String),
    /// The volume has no room for it (`depot ensure` exits 4).
    #[error("{0}")]
    NoSpace(String),
}

pub struct Client {
    pub socket: PathBuf,
}

/// A request body: none, in memory, or streamed (a file read by a thread of its own).
pub enum Outgoing {
    Empty,
    Bytes(Bytes),
    Stream(async_channel::Receiver<std::io::Result<Bytes>>),
}

/// Stream `r` as a request body, 64 KiB at a time.
pub(crate) fn stream_reader(mut r: impl std::io::Read + Send + 'static) -> Outgoing {
    let (tx, rx) = async_channel::bounded(8);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.send_blocking(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send_blocking(Err(e));
                    return;
                }
            }
        }
    });
    Outgoing::Stream(rx)
}

impl Client {
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, String)],
    ) -> Result<Response<hyper::body::Incoming>, ClientError> {
        self.send_body(method, uri, headers, Outgoing::Empty).await
    }

    pub async fn send_body(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, String)],
        body: Outgoing,
    ) -> Result<Response<hyper::body::Incoming>, ClientError> {
        let conn_err = |e: &dyn std::fmt::Display| ClientError::Connect {
            socket: self.socket.display().to_string(),
            msg: e.to_string(),
        };
        let stream = async_net::unix::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| conn_err(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(smol_hyper::rt::FuturesIo::new(stream))
            .await
            .map_err(|e| conn_err(&e))?;
        smol::spawn(async move {
            let _ = conn.await;
        })
        .detach();
        let mut req = Request::builder().method(method).uri(uri).header("host", "depot");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let body: http_body_util::combinators::BoxBody<Bytes, std::io::Error> = match body {
            Outgoing::Empty => Empty::<Bytes>::new().map_err(|e| match e {}).boxed(),
            Outgoing::Bytes(b) => http_body_util::Full::new(b).map_err(|e| match e {}).boxed(),
            Outgoing::Stream(rx) => {
                let frames =
                    futures_lite::StreamExt::map(rx, |r: std::io::Result<Bytes>| r.map(hyper::body::Frame::data));
                http_body_util::StreamBody::new(frames).boxed()
            }
        };
        let req = req.body(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// A whole JSON answer, or the daemon's `{"message"}` as an error.
    pub(crate) async fn call(&self, method: Method, uri: &str) -> Result<serde_json::Value, ClientError> {
        self.call_json(method, uri, None).await
    }

    /// [`Client::call`] with a JSON request body.
    pub(crate) async fn call_json(
        &self,
        method: Method,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let resp = match body {
            None => self.send(method, uri, &[]).await?,
            Some(b) => {
                let bytes = Bytes::from(serde_json::to_vec(&b).unwrap_or_default());
                self.send_body(
                    method,
                    uri,
                    &[("content-type", "application/json".to_string())],
                    Outgoing::Bytes(bytes),
                )
                .await?
            }
        };
        let status = resp.status();
        let body = body_bytes(resp).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            return Err(daemon_error(status, &v, &body));
        }
        Ok(v)
    }
}

pub(crate) async fn body_bytes(resp: Response<hyper::body::Incoming>) -> Result<Bytes, ClientError> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .to_bytes())
}

pub(crate) fn daemon_error(status: StatusCode, v: &serde_json::Value, body: &[u8]) -> ClientError {
    // the Engine API's `{"message"}` or the station API's `{"error":{"message"}}`
    let msg = v
        .get("message")
        .or_else(|| v.get("error").and_then(|e| e.get("message")))
        .and_then(|m| m.as_str())
        .map(str::to_string);
    ClientError::Daemon(format!(
        "Error response from daemon: {}",
        msg.unwrap_or_else(|| format!("{status}: {}", String::from_utf8_lossy(body).trim()))
    ))
}

pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Draws per-layer progress: one line per layer, rewritten in place on a terminal; plain lines otherwise.
/// The response if it succeeded, else the daemon's message as the error.
pub(crate) async fn check(
    resp: Response<hyper::body::Incoming>,
) -> Result<Response<hyper::body::Incoming>, ClientError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body = body_bytes(resp).await?;
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Err(daemon_error(status, &v, &body))
}

/// POST a tar stream to `uri`.
pub(crate) async fn post_tar(
    c: &Client,
    uri: &str,
    body: Outgoing,
) -> Result<Response<hyper::body::Incoming>, ClientError> {
    c.send_body(Method::POST, uri, &[("content-type", "application/x-tar".into())], body)
        .await
}

/// Load a tar stream into a Docker engine (`POST /images/load`): its `Loaded image…` lines, or its error. The
/// engine is spoken to at API 1.41 (dockerd 20.10, Container Station's).
pub async fn engine_load(engine: &Client, body: Outgoing) -> Result<Vec<String>, ClientError> {
    let mut resp = check(post_tar(engine, "/v1.41/images/load?quiet=1", body).await?).await?;
    let mut text = Vec::new();
    while let Some(frame) = resp.body_mut().frame().await {
        let frame = frame.map_err(|e| ClientError::Protocol(format!("the engine's answer: {e}")))?;
        if let Ok(d) = frame.into_data() {
            text.extend_from_slice(&d);
        }
    }
    let mut loaded = Vec::new();
    for line in text
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
    {
        let m: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
        if let Some(err) = m["errorDetail"]["message"].as_str() {
            return Err(ClientError::Daemon(format!(
                "the container engine refused the image: {err}"
            )));
        }
        if let Some(s) = m["stream"].as_str() {
            loaded.extend(s.lines().filter(|l| !l.is_empty()).map(str::to_string));
        }
    }
    Ok(loaded)
}
