//! Plain HTTP(S) files (an LXC rootfs, an image server's index, a catalog): GET from an offset with `Range`,
//! redirects followed (a mirror network answers 302 to another host), the stall timeout of [`super::Net`], and
//! errors that say whether another attempt can help. No credentials are ever sent, so a redirect to another
//! host leaks nothing.

use super::{Net, Retry, RetryPolicy};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use ureq::http::{Response, StatusCode};
use ureq::Body;

const MAX_REDIRECTS: usize = 5;
const MAX_ERROR_BODY: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {msg}")]
    Transport { url: String, msg: String },
    #[error("{url}: not found (404)")]
    NotFound { url: String },
    #[error("{url}: server answered {status}{}{}", if .reason.is_empty() { String::new() } else { format!(" {}", .reason) }, if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Status {
        url: String,
        status: u16,
        reason: String,
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("{url}: larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    Redirects { url: String },
    #[error("{url}: the server gave no length for the file")]
    NoLength { url: String },
}

impl HttpError {
    /// Resets, timeouts and 5xx answers are worth another attempt (after `Retry-After` when given, and a 429
    /// only then); a 404 or another 4xx is final.
    pub fn retry(&self) -> Retry {
        match self {
            HttpError::Transport { .. } => Retry::Backoff,
            HttpError::Status {
                status: 500 | 502 | 503 | 504,
                retry_after,
                ..
            } => retry_after.map(Retry::After).unwrap_or(Retry::Backoff),
            HttpError::Status {
                status: 429,
                retry_after: Some(d),
                ..
            } => Retry::After(*d),
            _ => Retry::Never,
        }
    }
}

/// A body being read; `offset` is where it starts in the file (0 when the server ignored our `Range`).
pub struct Stream {
    pub reader: Box<dyn Read + Send>,
    pub offset: u64,
    /// The whole file's length, when the server said (`Content-Range` total, or `Content-Length` of a 200).
    pub total: Option<u64>,
}

/// A client for plain files over the daemon's [`Net`] (resolver, roots and `certs.d`, proxies, timeouts).
#[derive(Clone)]
pub struct Web {
    net: Arc<Net>,
}

fn transport(url: &str, e: impl std::fmt::Display) -> HttpError {
    HttpError::Transport {
        url: url.to_string(),
        msg: e.to_string(),
    }
}

/// `host[:port]` of a URL: the `certs.d` key.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    auth.rsplit_once('@').map(|(_, h)| h).unwrap_or(auth)
}

/// Where a `Location` header points, seen from `base_url`.
pub fn resolve_location(base_url: &str, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    let scheme_end = base_url.find("://").map(|i| i + 3).unwrap_or(0);
    let origin_end = base_url[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base_url.len());
    if let Some(rest) = loc.strip_prefix("//") {
        return format!("{}{rest}", &base_url[..scheme_end]);
    }
    if loc.starts_with('/') {
        return format!("{}{loc}", &base_url[..origin_end]);
    }
    let dir_end = base_url.rfind('/').filter(|&i| i >= origin_end).unwrap_or(origin_end);
    format!("{}/{}", &base_url[..dir_end], loc)
}

fn header<'a>(r: &'a Response<Body>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn error_from(r: Response<Body>, url: &str) -> HttpError {
    let status = r.status();
    if status == StatusCode::NOT_FOUND {
        return HttpError::NotFound { url: url.to_string() };
    }
    let retry_after = header(&r, "retry-after").and_then(super::retry::parse_retry_after);
    let mut body = Vec::new();
    let _ = r.into_body().into_reader().take(MAX_ERROR_BODY).read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body);
    let detail = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    HttpError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        detail,
        retry_after,
    }
}

impl Web {
    pub fn new(net: Arc<Net>) -> Web {
        Web { net }
    }

    /// GET `url` from byte `offset` (a `Range` request when > 0), following redirects. A range the server cannot
    /// satisfy (it has fewer bytes than we kept) starts over from zero.
    pub fn get(&self, url: &str, offset: u64) -> Result<Stream, HttpError> {
        match self.get_once(url, offset) {
            Err(HttpError::Status { status: 416, .. }) if offset > 0 => self.get_once(url, 0),
            r => r,
        }
    }

    fn get_once(&self, url: &str, offset: u64) -> Result<Stream, HttpError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let agent = self.net.agent_for(authority(&url));
            let mut req = agent.get(&url);
            if offset > 0 {
                req = req.header("Range", format!("bytes={offset}-"));
            }
            let r = req.call().map_err(|e| transport(&url, e))?;
            let status = r.status();
            if status.is_redirection() {
                match header(&r, "location") {
                    Some(loc) => {
                        url = resolve_location(&url, loc);
                        continue;
                    }
                    None => return Err(error_from(r, &url)),
                }
            }
            if !status.is_success() {
                return Err(error_from(r, &url));
            }
            let length = header(&r, "content-length").and_then(|v| v.parse::<u64>().ok());
            let (start, total) = if status == StatusCode::PARTIAL_CONTENT {
                // bytes START-END/TOTAL
                let cr = header(&r, "content-range").and_then(|v| v.strip_prefix("bytes "));
                let start = cr
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(offset);
                let total = cr.and_then(|v| v.rsplit_once('/')).and_then(|(_, t)| t.parse().ok());
                (start, total)
            } else {
                (0, length)
            };
            return Ok(Stream {
                reader: Box::new(r.into_body().into_reader()),
                offset: start,
                total,
            });
        }
        Err(HttpError::Redirects { url })
    }

    /// The length of the file at `url` (a HEAD, redirects followed).
    pub fn length(&self, url: &str) -> Result<u64, HttpError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let agent = self.net.agent_for(authority(&url));
            let r = agent.head(&url).call().map_err(|e| transport(&url, e))?;
            if r.status().is_redirection() {
                if let Some(loc) = header(&r, "location") {
                    url = resolve_location(&url, loc);
                    continue;
                }
            }
            if !r.status().is_success() {
                return Err(error_from(r, &url));
            }
            return header(&r, "content-length")
                .and_then(|v| v.parse().ok())
                .ok_or(HttpError::NoLength { url });
        }
        Err(HttpError::Redirects { url })
    }

    /// A small file whole, at most `limit` bytes, retried by the configured policy.
    pub fn fetch(&self, url: &str, limit: u64) -> Result<Vec<u8>, HttpError> {
        self.fetch_with(url, limit, &self.net.opts.retry)
    }

    /// [`Web::fetch`] under another retry policy (an index that a person waits for, with a cached copy to fall
    /// back on, is not worth the transfers' patience).
    pub fn fetch_with(&self, url: &str, limit: u64, policy: &RetryPolicy) -> Result<Vec<u8>, HttpError> {
        let mut budget = policy.budget();
        loop {
            let r = self.get(url, 0).and_then(|s| {
                let mut buf = Vec::new();
                s.reader
                    .take(limit + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| transport(url, e))?;
                if buf.len() as u64 > limit {
                    return Err(HttpError::TooLarge {
                        url: url.to_string(),
                        limit,
                    });
                }
                Ok(buf)
            });
            match r {
                Ok(b) => return Ok(b),
                Err(e) => match budget.failed(e.retry()) {
                    Some(delay) => std::thread::sleep(delay),
                    None => return Err(e),
                },
            }
        }
    }

    /// GET `url` whole into `out` (an import's source, a catalog); the number of bytes.
    pub fn download(&self, url: &str, out: &mut dyn std::io::Write) -> Result<u64, HttpError> {
        let mut s = self.get(url, 0)?;
        std::io::copy(&mut s.reader, out).map_err(|e| transport(url, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_authorities() {
        assert_eq!(
            resolve_location("http://a:1/x/y/z.tar", "/other/f"),
            "http://a:1/other/f"
        );
        assert_eq!(
            resolve_location("http://a:1/x/y/z.tar", "w.tar"),
            "http://a:1/x/y/w.tar"
        );
        assert_eq!(resolve_location("http://a/x", "https://b/c"), "https://b/c");
        assert_eq!(authority("https://u:p@host:8443/meta/1.0/index"), "host:8443");
        assert_eq!(authority("http://127.0.0.1:80"), "127.0.0.1:80");
    }

    #[test]
    fn retry_classes() {
        let st = |status, retry_after| HttpError::Status {
            url: "u".into(),
            status,
            reason: String::new(),
            detail: String::new(),
            retry_after,
        };
        assert_eq!(st(503, None).retry(), Retry::Backoff);
        assert_eq!(st(429, None).retry(), Retry::Never);
        assert_eq!(
            st(429, Some(Duration::from_secs(3))).retry(),
            Retry::After(Duration::from_secs(3))
        );
        assert_eq!(st(403, None).retry(), Retry::Never);
        assert_eq!(HttpError::NotFound { url: "u".into() }.retry(), Retry::Never);
    }
}
