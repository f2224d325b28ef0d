//! The NAS owner's page: static files embedded in the binary (gzip-compressed by build.rs), served at `/` and
//! `/ui/…` without a session (they hold no data: everything the page shows comes from the station API, behind
//! the session). Every answer carries a strict Content-Security-Policy (no inline script or style, nothing from
//! another origin), `nosniff`, no referrer, and no framing by other sites.

use crate::http::{Req, Resp};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};

include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// The policy of every answer of the page.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'none'; object-src 'none'; form-action 'self'; frame-ancestors 'self'; \
     base-uri 'none'";

/// Whether `path` is the page's.
pub fn is_page(path: &str) -> bool {
    path == "/" || path == "/index.html" || path.starts_with("/ui/")
}

fn mime(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The headers every answer of the page carries (also its errors).
pub fn secure(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "SAMEORIGIN"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        h.insert(k, v.parse().expect("static header"));
    }
    r
}

fn plain(status: StatusCode, text: &str) -> Resp {
    let mut r = hyper::Response::new(
        http_body_util::Full::new(Bytes::from(text.to_string()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "text/plain; charset=utf-8".parse().expect("static"));
    secure(r)
}

/// The total size of the page as served (compressed), for the record.
pub fn weight() -> usize {
    FILES.iter().map(|f| f.1.len()).sum()
}

/// Serve a file of the page.
pub fn serve(req: &Req, path: &str) -> Resp {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "the page's files are read with GET");
    }
    let name = match path {
        "/" | "/index.html" => "index.html",
        p => p.strip_prefix("/ui/").unwrap_or(""),
    };
    let Some(&(_, gz, len, etag)) = FILES.iter().find(|f| f.0 == name && !name.contains('/')) else {
        return plain(StatusCode::NOT_FOUND, "no such file");
    };
    let gzip_ok = req
        .headers()
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    if req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        let mut r = plain(StatusCode::NOT_MODIFIED, "");
        r.headers_mut().insert("etag", etag.parse().expect("ascii"));
        return r;
    }
    let body = if gzip_ok {
        Bytes::from_static(gz)
    } else {
        // a client without gzip (rare): decompressed on the way out
        let mut out = Vec::with_capacity(len);
        if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut out).is_err() {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "the embedded file is damaged");
        }
        Bytes::from(out)
    };
    let head = req.method() == Method::HEAD;
    let mut r = hyper::Response::new(
        http_body_util::Full::new(if head { Bytes::new() } else { body })
            .map_err(|e| match e {})
            .boxed(),
    );
    let h = r.headers_mut();
    h.insert("content-type", mime(name).parse().expect("static"));
    h.insert("etag", etag.parse().expect("ascii"));
    h.insert("vary", "accept-encoding".parse().expect("static"));
    // the page itself is checked every time (a new depot brings a new page); its assets by their etag too
    h.insert("cache-control", "no-cache".parse().expect("static"));
    if gzip_ok {
        h.insert("content-encoding", "gzip".parse().expect("static"));
    }
    secure(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_embedded_small_and_whole() {
        for want in ["index.html", "app.js", "app.css"] {
            assert!(FILES.iter().any(|f| f.0 == want), "{want} embedded");
        }
        for (name, gz, len, _) in FILES {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(*gz), &mut out).unwrap();
            assert_eq!(out.len(), *len, "{name}");
            let text = String::from_utf8_lossy(&out);
            // nothing is loaded from outside: the only absolute URLs are the SVG namespace and placeholders
            for (i, _) in text.match_indices("://") {
                let host: String = text[i + 3..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || ".-:".contains(*c))
                    .collect();
                let host = host.split(':').next().unwrap_or("");
                assert!(
                    host == "www.w3.org" || host.ends_with(".example"),
                    "{name}: a URL to {host}"
                );
            }
            if name.ends_with(".html") {
                assert!(
                    !text.contains("<script>") && !text.contains(" style="),
                    "{name}: no inline script or style"
                );
            }
        }
        assert!(weight() <= 150 * 1024, "the page weighs {} bytes", weight());
    }
}
