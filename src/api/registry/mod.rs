//! The OCI distribution API, read-only, for the machines of the LAN: what depot holds, served as a registry on a
//! listener of its own (`serve --registry ADDR`), where neither the Engine API, the station API nor the owner's
//! page answer.
//!
//! - `GET /v2/`; `GET`/`HEAD` of manifests by tag, cosign `.sig` tag or digest (the manifest's own media type,
//!   `Docker-Content-Digest`) and of blobs by digest (`Range` honoured); `tags/list` and `_catalog` with
//!   `n`/`last` and a `Link` to the next page; the referrers API (the repository's manifests whose `subject` is
//!   the digest; cosign signatures, which have none, are served and listed under their `.sig` tags).
//! - Writes answer 405 `UNSUPPORTED`; every error is the spec's `{"errors":[{"code","message","detail"}]}`.
//! - Names: see [`names`]. A blob is served under a repository only when one of its images needs it.
//!
//! Who may pull is the gate's ([`super::Access::Registry`]): an API token of depot, as a bearer, as Basic's
//! password, or traded at `GET /v2/token` (the distribution token flow: a 401 carries `WWW-Authenticate: Bearer
//! realm=…,service=…,scope=…`) for a pull token; anyone only when `registry_anonymous` says so. TLS is the
//! listener's ([`crate::http::tls`]).

pub mod names;
pub mod switch;

use super::{Answering, Caller, Served};
use crate::digest::Digest;
use crate::http::{decoded_path, empty, full, query_get, query_pairs, streaming_fallible, Req, Resp};
use crate::image::served::ServedBlob;
use crate::image::{ImageError, ImageService};
use hyper::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

/// The base path the API is mounted under.
pub const BASES: [&str; 1] = ["/v2"];
/// The most entries one page of `tags/list` or `_catalog` holds when the client asks for more (or for none).
const PAGE_MAX: usize = 1000;

/// The `service` of the challenge and the token endpoint.
const SERVICE: &str = "depot";

/// The registry over the image service.
pub struct Registry {
    images: Arc<ImageService>,
    auth: Arc<crate::auth::Auth>,
    /// Whether everyone may pull (the gate's [`super::Access::Registry`] says the same): the token endpoint then
    /// answers without credentials too.
    anonymous: bool,
    /// Whether a manifest depot does not hold is pulled from its registry (see [`crate::image::served`]).
    pull_through: bool,
}

impl Registry {
    pub fn new(
        images: Arc<ImageService>,
        auth: Arc<crate::auth::Auth>,
        anonymous: bool,
        pull_through: bool,
    ) -> Registry {
        Registry {
            images,
            auth,
            anonymous,
            pull_through,
        }
    }
}

/// A spec error: its status, code and message.
struct Error(StatusCode, &'static str, String);

type Answer = Result<Resp, Error>;

fn error(status: StatusCode, code: &str, message: &str) -> Resp {
    let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
    with_version(full(status, "application/json", body.to_string()))
}

fn with_version(mut r: Resp) -> Resp {
    r.headers_mut().insert(
        "docker-distribution-api-version",
        hyper::header::HeaderValue::from_static("registry/2.0"),
    );
    r
}

fn header(r: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn internal(e: ImageError) -> Error {
    log::warn!("registry: {e}");
    Error(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string())
}

/// What a path below `/v2` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'p> {
    Base,
    Catalog,
    Manifest(&'p str, &'p str),
    Blob(&'p str, &'p str),
    Tags(&'p str),
    Referrers(&'p str, &'p str),
    /// The token endpoint (`/v2/token`): no repository is called `token` alone, a name has its routes below it.
    Token,
    /// Uploads and anything else no reader sends.
    Other,
}

fn route(rest: &str) -> Route<'_> {
    match rest {
        "" | "/" => return Route::Base,
        "/_catalog" => return Route::Catalog,
        "/token" => return Route::Token,
        _ => {}
    }
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags(name);
    }
    for sep in ["/manifests/", "/blobs/", "/referrers/"] {
        let Some(i) = rest.rfind(sep) else { continue };
        let (name, what) = (&rest[..i], &rest[i + sep.len()..]);
        if what.is_empty() || what.contains('/') {
            continue;
        }
        return match sep {
            "/manifests/" => Route::Manifest(name, what),
            "/blobs/" => Route::Blob(name, what),
            _ => Route::Referrers(name, what),
        };
    }
    Route::Other
}

impl Served for Registry {
    /// The token endpoint checks what it is shown itself: Basic's password on `GET` (the gate's), or the OAuth2
    /// form's on `POST` (containerd's), which the gate cannot read.
    fn is_public(&self, _req: &Req, rest: &str) -> bool {
        route(rest) == Route::Token
    }

    fn handle(&self, req: Req, caller: Caller) -> Answering<'_> {
        Box::pin(async move {
            match self.answer(req, caller).await {
                Ok(r) => with_version(r),
                Err(Error(status, code, message)) => error(status, code, &message),
            }
        })
    }

    fn refuse(&self, status: StatusCode, message: &str) -> Resp {
        let code = match status {
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            _ => "DENIED",
        };
        error(status, code, message)
    }

    fn challenge(&self, req: &Req, rest: &str) -> Option<String> {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && !h.contains(['"', '\\', ' ']))?;
        let scheme = if crate::http::via_https(req) { "https" } else { "http" };
        let scope = match route(rest) {
            Route::Manifest(n, _) | Route::Blob(n, _) | Route::Tags(n) | Route::Referrers(n, _)
                if !n.contains(['"', '\\']) =>
            {
                format!(",scope=\"repository:{n}:pull\"")
            }
            Route::Catalog => ",scope=\"registry:catalog:*\"".to_string(),
            _ => String::new(),
        };
        Some(format!(
            "Bearer realm=\"{scheme}://{host}/v2/token\",service=\"{SERVICE}\"{scope}"
        ))
    }
}

impl Registry {
    async fn answer(&self, req: Req, caller: Caller) -> Answer {
        let path = decoded_path(req.uri().path());
        let rest = path.strip_prefix(BASES[0]).unwrap_or(&path).to_string();
        let q = query_pairs(req.uri().query());
        let head = req.method() == Method::HEAD;
        if req.method() == Method::POST && route(&rest) == Route::Token {
            return self.oauth_token(req, caller).await;
        }
        if req.method() != Method::GET && !head {
            return Err(Error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry is read-only".into(),
            ));
        }
        let ns = query_get(&q, "ns").map(str::to_string);
        let repo = |name: &str| {
            names::canonical(name, ns.as_deref()).ok_or_else(|| {
                Error(
                    StatusCode::BAD_REQUEST,
                    "NAME_INVALID",
                    format!("invalid repository name {name:?}"),
                )
            })
        };
        match route(&rest) {
            Route::Base => Ok(full(StatusCode::OK, "application/json", "{}")),
            Route::Token => self.token(&caller),
            Route::Catalog => self.catalog(&q).await,
            Route::Tags(name) => self.tags(name, &repo(name)?, &q).await,
            Route::Manifest(name, reference) => self.manifest(&repo(name)?, reference, head).await,
            Route::Blob(name, digest) => self.blob(&repo(name)?, digest, &req, head).await,
            Route::Referrers(name, digest) => self.referrers(&repo(name)?, digest, &q).await,
            Route::Other => Err(Error(StatusCode::NOT_FOUND, "UNSUPPORTED", format!("no route {rest}"))),
        }
    }

    /// The token endpoint's answer to `GET` (the distribution token spec: Basic credentials, `service` and
    /// `scope` in the query): a pull token for the API token the gate saw, in both fields clients read. Every
    /// API token may pull every repository, so the scope asked for is the scope granted. An anonymous registry
    /// lets everyone through whatever they show; the token it gives the credential-less says so and means
    /// nothing.
    fn token(&self, caller: &Caller) -> Answer {
        let (token, lifetime) = self.issue(caller)?;
        Ok(crate::http::json(
            StatusCode::OK,
            &json!({"token": token, "access_token": token, "expires_in": lifetime.as_secs(), "issued_at": now_rfc3339()}),
        ))
    }

    /// The token endpoint's answer to the OAuth2 password grant (`POST`, a form with `grant_type=password`,
    /// `username`, `password`, `service`, `scope`): what containerd sends first.
    async fn oauth_token(&self, req: Req, caller: Caller) -> Answer {
        let body = crate::http::read_body(req.into_body(), crate::http::MAX_SMALL_BODY)
            .await
            .map_err(|e| Error(StatusCode::BAD_REQUEST, "UNSUPPORTED", e.to_string()))?;
        let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if field("grant_type").as_deref() != Some("password") {
            return Err(Error(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                "only grant_type=password is served (depot issues no refresh tokens)".into(),
            ));
        }
        let mut caller = caller;
        if let Some(password) = field("password") {
            let auth = self.auth.clone();
            let row = crate::pool::run(move || auth.token(&password))
                .await
                .map_err(|e| Error(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string()))?;
            if let Some(t) = row {
                caller.principal = Some(crate::auth::Principal::Token { id: t.id, name: t.name });
            }
        }
        let (token, lifetime) = self.issue(&caller)?;
        Ok(crate::http::json(
            StatusCode::OK,
            &json!({"access_token": token, "expires_in": lifetime.as_secs(), "issued_at": now_rfc3339(), "scope": field("scope").unwrap_or_default()}),
        ))
    }

    fn issue(&self, caller: &Caller) -> Result<(String, std::time::Duration), Error> {
        match &caller.principal {
            Some(crate::auth::Principal::Token { id, name }) => Ok(self.auth.issue_pull_token(*id, name)),
            _ if self.anonymous => Ok(("anonymous".to_string(), crate::auth::PULL_TOKEN_LIFETIME)),
            _ => Err(Error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "a token is issued for an API token of depot (`depot token create`), given as the password".into(),
            )),
        }
    }

    async fn manifest(&self, repo: &str, reference: &str, head: bool) -> Answer {
        let (images, r, rf) = (self.images.clone(), repo.to_string(), reference.to_string());
        let held = crate::pool::run(move || images.served_manifest(&r, &rf))
            .await
            .map_err(internal)?;
        let m = match held {
            Some(m) => m,
            None => self.through(repo, reference).await?,
        };
        let (images, d) = (self.images.clone(), m.digest.clone());
        let bytes = crate::pool::run(move || images.store_read(&d, crate::oci::MAX_MANIFEST))
            .await
            .map_err(internal)?;
        let len = bytes.len();
        let mut r = match head {
            true => empty(StatusCode::OK),
            false => full(StatusCode::OK, &m.media_type, bytes),
        };
        header(&mut r, "content-type", &m.media_type);
        header(&mut r, "content-length", &len.to_string());
        header(&mut r, "docker-content-digest", m.digest.as_str());
        Ok(r)
    }

    /// A manifest depot does not hold, pulled from its registry (when pull-through is on): its registry's answer
    /// in the spec's shape when that pull fails or the policy refuses it. Signatures (`.sig` tags) are never
    /// pulled alone: a pull fetches those its policy asks for.
    async fn through(&self, repo: &str, reference: &str) -> Result<crate::image::served::ServedManifest, Error> {
        let unknown = || {
            Error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("manifest unknown: {reference}"),
            )
        };
        if !self.pull_through || reference.ends_with(".sig") {
            return Err(unknown());
        }
        let sep = if reference.parse::<Digest>().is_ok() { '@' } else { ':' };
        let upstream = crate::reference::Reference::parse(&format!("{repo}{sep}{reference}")).map_err(|_| unknown())?;
        self.images.pull_through(upstream).await.map_err(|e| {
            use crate::image::ErrorClass as C;
            let (status, code) = match e.class() {
                C::NotFound => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
                C::Forbidden | C::Unauthorized => (StatusCode::FORBIDDEN, "DENIED"),
                C::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
                C::InvalidParameter | C::Unprocessable => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
                C::InsufficientStorage => (StatusCode::INSUFFICIENT_STORAGE, "UNKNOWN"),
                _ => (StatusCode::BAD_GATEWAY, "UNKNOWN"),
            };
            Error(status, code, e.to_string())
        })
    }

    async fn blob(&self, repo: &str, digest: &str, req: &Req, head: bool) -> Answer {
        let d: Digest = digest
            .parse()
            .map_err(|e: crate::digest::DigestError| Error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string()))?;
        let (images, r, d2) = (self.images.clone(), repo.to_string(), d.clone());
        let found = crate::pool::run(move || images.served_blob(&r, &d2))
            .await
            .map_err(internal)?;
        let Some(blob) = found else {
            return Err(Error(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                format!("blob unknown: {d}"),
            ));
        };
        let size = blob.size();
        let range = match req.headers().get("range").and_then(|v| v.to_str().ok()) {
            None => None,
            Some(v) => Some(parse_range(v, size).ok_or_else(|| {
                Error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "RANGE_INVALID",
                    format!("range {v:?} of a {size}-byte blob"),
                )
            })?),
        };
        let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
        let len = if size == 0 { 0 } else { end - start + 1 };
        let status = if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        let file = match &blob {
            ServedBlob::Stored(file, _) => Some(file.clone()),
            ServedBlob::Arriving(_) => None,
        };
        let mut resp = if head || len == 0 {
            empty(status)
        } else {
            streaming_fallible(status, "application/octet-stream", chunks(blob, start, start + len))
        };
        if let Some(file) = file.filter(|_| len > 0) {
            resp.extensions_mut().insert(crate::http::FileBody { file, start, len });
        }
        header(&mut resp, "content-type", "application/octet-stream");
        header(&mut resp, "content-length", &len.to_string());
        header(&mut resp, "docker-content-digest", d.as_str());
        header(&mut resp, "accept-ranges", "bytes");
        if range.is_some() {
            header(&mut resp, "content-range", &format!("bytes {start}-{end}/{size}"));
        }
        Ok(resp)
    }

    /// The manifests of `repo` whose `subject` is `digest`, as an image index (empty when none are: never 404),
    /// filtered by `artifactType` when the query asks (and then saying so in `OCI-Filters-Applied`).
    async fn referrers(&self, repo: &str, digest: &str, q: &[(String, String)]) -> Answer {
        let d: Digest = digest
            .parse()
            .map_err(|e: crate::digest::DigestError| Error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string()))?;
        let kind = query_get(q, "artifactType").map(str::to_string);
        let (images, r, k) = (self.images.clone(), repo.to_string(), kind.clone());
        let manifests = crate::pool::run(move || images.served_referrers(&r, &d, k.as_deref()))
            .await
            .map_err(internal)?;
        let index = json!({"schemaVersion": 2, "mediaType": crate::oci::OCI_INDEX, "manifests": manifests});
        let mut resp = full(StatusCode::OK, crate::oci::OCI_INDEX, index.to_string());
        if kind.is_some() {
            header(&mut resp, "oci-filters-applied", "artifactType");
        }
        Ok(resp)
    }

    async fn tags(&self, name: &str, repo: &str, q: &[(String, String)]) -> Answer {
        let (n, last) = page(q)?;
        let (images, r) = (self.images.clone(), repo.to_string());
        let tags = crate::pool::run(move || images.served_tags(&r))
            .await
            .map_err(internal)?;
        if tags.is_empty() {
            return Err(Error(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("repository name not known: {name}"),
            ));
        }
        let (shown, next) = paged(tags, n, last);
        let mut r = crate::http::json(StatusCode::OK, &json!({"name": name, "tags": shown}));
        if let Some(last) = next {
            header(
                &mut r,
                "link",
                &format!(
                    "</v2/{name}/tags/list?n={}&last={last}>; rel=\"next\"",
                    n.unwrap_or(PAGE_MAX)
                ),
            );
        }
        Ok(r)
    }

    async fn catalog(&self, q: &[(String, String)]) -> Answer {
        let (n, last) = page(q)?;
        let images = self.images.clone();
        let repos = crate::pool::run(move || images.repositories())
            .await
            .map_err(internal)?;
        let mut served: Vec<String> = repos.iter().filter_map(|r| names::served(r)).collect();
        served.sort();
        served.dedup();
        let (shown, next) = paged(served, n, last);
        let mut r = crate::http::json(StatusCode::OK, &json!({"repositories": shown}));
        if let Some(last) = next {
            header(
                &mut r,
                "link",
                &format!("</v2/_catalog?n={}&last={last}>; rel=\"next\"", n.unwrap_or(PAGE_MAX)),
            );
        }
        Ok(r)
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Bytes a chunk read of a blob takes at most (when it is not sent by `sendfile`: over TLS, or still arriving).
const BLOB_CHUNK: usize = 64 * 1024;

/// Bytes `start..end` of `blob` as a body: a chunk the page cache holds copied at once, any other read on the
/// reads' pool, a chunk not there yet (an arriving blob) waited for without holding a thread; a failed read cuts
/// the body short.
fn chunks(
    blob: ServedBlob,
    start: u64,
    end: u64,
) -> impl futures_lite::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures_lite::stream::unfold(Some((blob, start)), move |state| async move {
        let (mut blob, at) = state?;
        if at >= end {
            return None;
        }
        let max = (end - at).min(BLOB_CHUNK as u64) as usize;
        if let Some(buf) = blob.chunk_cached(at, max) {
            let n = buf.len() as u64;
            return Some((Ok(bytes::Bytes::from(buf)), Some((blob, at + n))));
        }
        loop {
            let (b, read) = crate::pool::read(move || {
                let r = blob.chunk(at, max);
                (blob, r)
            })
            .await;
            blob = b;
            match read {
                Ok(Some(buf)) => {
                    let n = buf.len() as u64;
                    return Some((Ok(bytes::Bytes::from(buf)), Some((blob, at + n))));
                }
                Ok(None) => {
                    async_io::Timer::after(crate::image::served::ARRIVAL_POLL).await;
                }
                Err(e) => {
                    log::warn!("registry: serving a blob: {e}");
                    return Some((Err(e), None));
                }
            }
        }
    })
}

/// `n` and `last` of a paged list: `n` a whole number (at most [`PAGE_MAX`] served at once).
fn page(q: &[(String, String)]) -> Result<(Option<usize>, Option<String>), Error> {
    let n = match query_get(q, "n") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            Error(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n={v:?} is not a whole number"),
            )
        })?),
    };
    Ok((n, query_get(q, "last").map(str::to_string)))
}

/// The entries after `last`, at most `n` of them; and the last one shown when more follow.
fn paged(all: Vec<String>, n: Option<usize>, last: Option<String>) -> (Vec<String>, Option<String>) {
    let after: Vec<String> = all
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .collect();
    let take = n.unwrap_or(PAGE_MAX).min(PAGE_MAX);
    let more = after.len() > take;
    let shown: Vec<String> = after.into_iter().take(take).collect();
    let next = (more && !shown.is_empty()).then(|| shown[shown.len() - 1].clone());
    (shown, next)
}

/// `bytes=A-B`, `bytes=A-` or `bytes=-N` of a blob of `size` bytes, as (first, last) inclusive; `None` when it
/// is malformed, names several ranges, or none of it is in the blob.
fn parse_range(v: &str, size: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            (size.checked_sub(n.min(size))?, size - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().ok()?;
            let end = if b.is_empty() {
                size - 1
            } else {
                b.parse::<u64>().ok()?.min(size - 1)
            };
            (start, end)
        }
        (true, true) => return None,
    };
    (start <= end && start < size).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_ranges() {
        assert_eq!(route(""), Route::Base);
        assert_eq!(route("/"), Route::Base);
        assert_eq!(route("/_catalog"), Route::Catalog);
        assert_eq!(route("/library/alpine/tags/list"), Route::Tags("library/alpine"));
        assert_eq!(route("/a/b/manifests/3.20"), Route::Manifest("a/b", "3.20"));
        assert_eq!(route("/x/blobs/sha256:ab"), Route::Blob("x", "sha256:ab"));
        assert_eq!(route("/x/blobs/uploads/"), Route::Other);
        assert_eq!(route("/x/referrers/sha256:ab"), Route::Referrers("x", "sha256:ab"));
        assert_eq!(route("/token"), Route::Token);
        assert_eq!(route("/token/tags/list"), Route::Tags("token"));
        // a repository may be called `manifests`
        assert_eq!(route("/manifests/manifests/1"), Route::Manifest("manifests", "1"));
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 99)));
        for bad in [
            "bytes=100-",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-",
            "bytes=-0",
        ] {
            assert_eq!(parse_range(bad, 100), None, "{bad}");
        }
        let all: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            paged(all.clone(), Some(2), None),
            (vec!["a".into(), "b".into()], Some("b".into()))
        );
        assert_eq!(paged(all.clone(), Some(2), Some("b".into())), (vec!["c".into()], None));
        assert_eq!(paged(all, Some(0), None), (vec![], None));
    }
}
