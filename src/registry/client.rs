//! The OCI distribution client: scheme discovery, auth challenges and tokens, redirects, retries, and streaming
//! blob reads. It knows nothing about disk: blob bodies are handed to the caller as a reader.
//!
//! Blocking by design (ureq): it runs on the transfer threads, one per active download, so that network reads,
//! hashing and disk writes never stall the async reactor.

use super::auth::{parse_challenges, Challenge, Credentials, TokenResponse};
use super::manifest::{parse_manifest, Manifest};
use super::RegistryError;
use crate::digest::Digest;
use crate::net::{is_loopback, Net, NetOptions};
use crate::oci::ACCEPT;
use crate::sync::Locked;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ureq::http::{Response, StatusCode};
use ureq::Body;

/// Where Docker Hub's registry actually lives.
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";
const MAX_REDIRECTS: usize = 5;
const MAX_ERROR_BODY: u64 = 64 * 1024;
const MAX_TOKEN_BODY: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct RegistryOptions {
    pub net: NetOptions,
    /// Registries (`host[:port]`) that may be reached over plain HTTP after TLS fails. Loopback always may.
    pub insecure: Vec<String>,
    pub max_manifest_bytes: u64,
    /// Where Docker Hub style searches go (`<index>/v1/search`).
    pub search_index: String,
    /// Per registry (`docker.io`, `host:port`), the mirrors (`host[:port]`) tried before it, in order.
    pub mirrors: Vec<(String, String)>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            net: NetOptions::default(),
            insecure: Vec::new(),
            max_manifest_bytes: crate::oci::MAX_MANIFEST,
            search_index: "https://index.docker.io".into(),
            mirrors: Vec::new(),
        }
    }
}

/// A registry client shared by all pulls: per-host connection pools, schemes, challenges and tokens.
pub struct Registry {
    opts: RegistryOptions,
    net: Arc<Net>,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    /// Registries allowed plain HTTP at run time (a station registry record's insecure flag).
    insecure_extra: Mutex<std::collections::HashSet<String>>,
    /// Docker Hub's mirrors (`host[:port]`) as set at run time (the owner's page), in place of the configured.
    hub_mirrors: Mutex<Option<Vec<String>>>,
}

pub(super) struct Host {
    /// What we connect to (`registry-1.docker.io` for `docker.io`).
    pub(super) endpoint: String,
    pub(super) agent: ureq::Agent,
    insecure_ok: bool,
    base: Mutex<Option<String>>,
    pub(super) challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// One repository on one registry, with the caller's credentials.
pub struct Repo {
    pub(super) host: Arc<Host>,
    pub(super) opts: RegistryOptions,
    pub(super) path: String,
    pub(super) creds: Option<Credentials>,
    /// Tokens are asked for `pull,push` (a push) or `pull`.
    pub(super) push: bool,
    /// A scope that is not this repository's (`registry:catalog:*`).
    pub(super) scope: Option<String>,
}

/// A manifest as fetched: the exact bytes (the digest is over them), the media type and the parsed document.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub manifest: Manifest,
}

/// A blob body being streamed. `offset` is where the body starts in the blob (a resumed read).
pub struct BlobStream {
    pub reader: Box<dyn Read + Send>,
    pub offset: u64,
}

impl Registry {
    pub fn new(opts: RegistryOptions) -> Registry {
        Registry {
            net: Arc::new(Net::new(opts.net.clone())),
            opts,
            hosts: Mutex::new(HashMap::new()),
            insecure_extra: Mutex::default(),
            hub_mirrors: Mutex::default(),
        }
    }

    /// The agent builder every outgoing request of the daemon shares (the LXC sources use it too).
    pub fn net(&self) -> Arc<Net> {
        self.net.clone()
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    /// Allow (or stop allowing) plain HTTP to `domain` from now on.
    pub fn set_insecure(&self, domain: &str, insecure: bool) {
        let mut extra = self.insecure_extra.locked();
        let changed = if insecure {
            extra.insert(domain.to_string())
        } else {
            extra.remove(domain)
        };
        drop(extra);
        if changed {
            // the host's scheme was decided with the old rule
            self.hosts.locked().remove(domain);
        }
    }

    pub fn repo(&self, domain: &str, path: &str, creds: Option<Credentials>) -> Repo {
        let host = {
            let mut hosts = self.hosts.locked();
            hosts
                .entry(domain.to_string())
                .or_insert_with(|| Arc::new(self.new_host(domain)))
                .clone()
        };
        Repo {
            host,
            opts: self.opts.clone(),
            path: path.to_string(),
            creds: creds.filter(|c| !c.is_empty()),
            push: false,
            scope: None,
        }
    }

    /// The registry's repository list, `/v2/_catalog` (paginated, bounded to 10,000 names).
    pub fn catalog(&self, domain: &str, creds: Option<Credentials>) -> Result<Vec<String>, RegistryError> {
        let r = Repo {
            scope: Some("registry:catalog:*".into()),
            ..self.repo(domain, "", creds)
        };
        r.catalog()
    }

    /// Docker Hub style search: `GET <index>/v1/search?q=&n=`; the `results` as they come.
    pub fn search_index(&self, term: &str, limit: u32) -> Result<Vec<serde_json::Value>, RegistryError> {
        let index = &self.opts.search_index;
        let host = index.split("://").nth(1).unwrap_or("").split('/').next().unwrap_or("");
        let agent = self.net.agent_for(host);
        let url = format!("{index}/v1/search");
        let r = agent
            .get(&url)
            .query("q", term)
            .query("n", limit.to_string())
            .header("X-Docker-Token", "true")
            .call()
            .map_err(|e| transport(&url, e))?;
        if !r.status().is_success() {
            return Err(error_from(r.status(), r, &url));
        }
        let body = read_capped(r, 4 * 1024 * 1024, &url)?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| transport(&url, format!("bad search answer: {e}")))?;
        Ok(v["results"].as_array().cloned().unwrap_or_default())
    }

    /// A plain HTTP(S) GET of `url` into `out` (an import's source): redirects followed, the stall timeout
    /// applied. The number of bytes.
    pub fn download(&self, url: &str, out: &mut dyn std::io::Write) -> Result<u64, RegistryError> {
        crate::net::http::Web::new(self.net.clone())
            .download(url, out)
            .map_err(|e| RegistryError::Transport {
                url: url.to_string(),
                msg: e.to_string(),
            })
    }

    /// Replace Docker Hub's mirrors (`host[:port]`, in order) from now on; `None` goes back to the configured.
    pub fn set_hub_mirrors(&self, hosts: Option<Vec<String>>) {
        *self.hub_mirrors.locked() = hosts;
    }

    /// The mirrors of `domain`, in the order they are tried.
    pub fn mirrors_of(&self, domain: &str) -> Vec<String> {
        if domain == crate::reference::DEFAULT_DOMAIN {
            if let Some(m) = self.hub_mirrors.locked().as_ref() {
                return m.clone();
            }
        }
        self.opts
            .mirrors
            .iter()
            .filter(|(d, _)| d == domain)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// A repository to push to: its tokens are asked for `pull,push`.
    pub fn repo_for_push(&self, domain: &str, path: &str, creds: Option<Credentials>) -> Repo {
        Repo {
            push: true,
            ..self.repo(domain, path, creds)
        }
    }

    fn new_host(&self, domain: &str) -> Host {
        let endpoint = if domain == crate::reference::DEFAULT_DOMAIN {
            DOCKER_HUB_ENDPOINT
        } else {
            domain
        };
        let insecure_ok = is_loopback(endpoint)
            || self.opts.insecure.iter().any(|i| i == domain || i == endpoint)
            || self.insecure_extra.locked().contains(domain);
        Host {
            endpoint: endpoint.to_string(),
            agent: self.net.agent_for(domain),
            insecure_ok,
            base: Mutex::new(None),
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }
}

pub(super) fn transport(url: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Transport {
        url: url.to_string(),
        msg: e.to_string(),
    }
}

pub(super) use crate::net::http::{authority, resolve_location};

pub(super) fn header<'a>(r: &'a Response<Body>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn read_capped(r: Response<Body>, limit: u64, url: &str) -> Result<Vec<u8>, RegistryError> {
    let mut buf = Vec::new();
    r.into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| transport(url, e))?;
    if buf.len() as u64 > limit {
        return Err(RegistryError::TooLarge {
            url: url.to_string(),
            limit,
        });
    }
    Ok(buf)
}

pub(super) fn error_from(status: StatusCode, r: Response<Body>, url: &str) -> RegistryError {
    let remaining = header(&r, "ratelimit-remaining").map(str::to_string);
    let retry_after = header(&r, "retry-after").and_then(crate::net::retry::parse_retry_after);
    let body = read_capped(r, MAX_ERROR_BODY, url).unwrap_or_default();
    let errors = super::ErrorList::parse(&body);
    let url = url.to_string();
    match status.as_u16() {
        429 => RegistryError::RateLimited {
            url,
            remaining,
            retry_after,
            errors,
        },
        401 | 403 => RegistryError::Denied {
            url,
            status: status.as_u16(),
            errors,
        },
        404 => RegistryError::NotFound { url, errors },
        s => {
            // The registry's own errors when it sent them, else the first line of whatever it sent.
            let detail = if errors.0.is_empty() {
                first_line(&body)
            } else {
                errors.to_string()
            };
            RegistryError::Status {
                url,
                status: s,
                reason: status.canonical_reason().unwrap_or("").to_string(),
                detail,
                retry_after,
            }
        }
    }
}

/// The first non-empty line of a body, trimmed and cut to 200 characters (an HTML error page stays readable).
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && *l != "{}")
        .unwrap_or("");
    line.chars().take(200).collect()
}

impl Repo {
    pub fn path(&self) -> &str {
        &self.path
    }

    fn scope(&self) -> String {
        if let Some(s) = &self.scope {
            return s.clone();
        }
        let actions = if self.push { "pull,push" } else { "pull" };
        format!("repository:{}:{actions}", self.path)
    }

    /// `https://host` or, for a registry allowed to be insecure whose TLS fails, `http://host`. Probes `/v2/`
    /// once per host and keeps the challenge it answers with.
    pub(super) fn base(&self) -> Result<String, RegistryError> {
        if let Some(b) = self.host.base.locked().clone() {
            return Ok(b);
        }
        let https = format!("https://{}", self.host.endpoint);
        let probe = |base: &str| -> Result<Response<Body>, RegistryError> {
            let url = format!("{base}/v2/");
            self.host.agent.get(&url).call().map_err(|e| transport(&url, e))
        };
        let (base, resp) = match probe(&https) {
            Ok(r) => (https, r),
            Err(tls_err) if self.host.insecure_ok => {
                // Only a registry's answer counts (200, or 401 with a challenge): a TLS-only server answering
                // plain HTTP with 400 must not hide the TLS error.
                let http = format!("http://{}", self.host.endpoint);
                match probe(&http) {
                    Ok(r) if matches!(r.status().as_u16(), 200 | 401) => (http, r),
                    _ => return Err(tls_err),
                }
            }
            Err(e) => return Err(e),
        };
        if resp.status() == StatusCode::UNAUTHORIZED {
            if let Some(c) = header(&resp, "www-authenticate").and_then(|h| parse_challenges(h).into_iter().next()) {
                *self.host.challenge.locked() = Some(c);
            }
        }
        let _ = read_capped(resp, MAX_ERROR_BODY, &base);
        *self.host.base.locked() = Some(base.clone());
        Ok(base)
    }

    fn token_key(&self, scope: &str) -> String {
        let who = self.creds.as_ref().map(|c| c.username.as_str()).unwrap_or("");
        format!("{who}\n{scope}")
    }

    /// The `Authorization` value for our scope under the host's current challenge; fetches a token if needed.
    pub(super) fn authorization(&self, fresh: bool) -> Result<Option<String>, RegistryError> {
        let challenge = self.host.challenge.locked().clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic { .. }) => Ok(self.creds.as_ref().map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let scope = self.scope();
                let key = self.token_key(&scope);
                if !fresh {
                    let tokens = self.host.tokens.locked();
                    if let Some((t, exp)) = tokens.get(&key) {
                        if Instant::now() < *exp {
                            return Ok(Some(format!("Bearer {t}")));
                        }
                    }
                }
                let (token, ttl) = self.fetch_token(&realm, service.as_deref(), &scope)?;
                // Renew a little early so a token never expires mid-request.
                let exp = Instant::now() + Duration::from_secs(ttl.saturating_sub(ttl / 10).max(1));
                self.host.tokens.locked().insert(key, (token.clone(), exp));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Docker token spec: `GET realm?service&scope` (Basic credentials when we have them); OAuth2 `POST` form with
    /// `grant_type=refresh_token` for identity tokens, and `grant_type=password` when the GET form is refused.
    fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<(String, u64), RegistryError> {
        self.fetch_token_full(realm, service, scope).map(|(t, ttl, _)| (t, ttl))
    }

    /// A token for `scope` (none when empty), with its lifetime and any refresh token the server gave.
    fn fetch_token_full(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, u64, Option<String>), RegistryError> {
        let token_err = |msg: String| RegistryError::Token {
            realm: realm.to_string(),
            msg,
        };
        let mut form: Vec<(&str, &str)> = vec![("client_id", "depot")];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        if let Some(s) = service {
            form.push(("service", s));
        }
        let post = |grant: Vec<(&str, &str)>| {
            let mut all = form.clone();
            all.extend(grant);
            self.host
                .agent
                .post(realm)
                .send_form(all)
                .map_err(|e| transport(realm, e))
        };
        let resp = match &self.creds {
            Some(Credentials {
                identity_token: Some(t),
                ..
            }) => post(vec![("grant_type", "refresh_token"), ("refresh_token", t.as_str())])?,
            creds => {
                let mut q: Vec<(&str, &str)> = Vec::new();
                if !scope.is_empty() {
                    q.push(("scope", scope));
                }
                if let Some(s) = service {
                    q.push(("service", s));
                }
                let mut req = self.host.agent.get(realm).query_pairs(q);
                if let Some(c) = creds {
                    req = req.header("Authorization", c.basic_header());
                }
                let r = req.call().map_err(|e| transport(realm, e))?;
                match (r.status().as_u16(), creds) {
                    (404 | 405, Some(c)) => post(vec![
                        ("grant_type", "password"),
                        ("username", c.username.as_str()),
                        ("password", c.password.as_str()),
                    ])?,
                    _ => r,
                }
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let body = read_capped(resp, MAX_ERROR_BODY, realm).unwrap_or_default();
            let detail = String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(200)
                .collect::<String>();
            return Err(token_err(format!("token endpoint answered {status}: {detail}")));
        }
        let body = read_capped(resp, MAX_TOKEN_BODY, realm)?;
        let t: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| token_err(format!("bad token response: {e}")))?;
        let refresh = t.refresh_token.clone().filter(|r| !r.is_empty());
        let (tok, ttl) = t
            .into_token()
            .ok_or_else(|| token_err("token response holds no token".into()))?;
        Ok((tok, ttl, refresh))
    }

    /// GET `path` (relative to `/v2/<repo>/`) with auth, redirects and the retry policy; returns a 2xx
    /// response. Its budget is this one request's: callers that loop themselves (blobs) use [`Repo::get_once`].
    fn get(&self, path: &str, accept: Option<&str>) -> Result<Response<Body>, RegistryError> {
        let mut budget = self.opts.net.retry.budget();
        loop {
            match self.get_once(path, accept, 0) {
                Ok(r) => return Ok(r),
                Err(e) => match budget.failed(e.retry()) {
                    Some(delay) => {
                        log::debug!("retrying in {delay:?} after: {e}");
                        std::thread::sleep(delay);
                    }
                    None => return Err(e),
                },
            }
        }
    }

    /// One attempt at GET `path`: auth (a new challenge or an expired token is learnt and tried once more within
    /// the attempt), redirects (credentials only to the registry's own origin), no retries.
    fn get_once(&self, path: &str, accept: Option<&str>, range_from: u64) -> Result<Response<Body>, RegistryError> {
        let base = self.base()?;
        // a path from the root (`/v2/_catalog`) or one under this repository
        let start_url = match path.strip_prefix('/') {
            Some(abs) => format!("{base}/{abs}"),
            None => format!("{base}/v2/{}/{path}", self.path),
        };
        let origin = authority(&start_url).to_string();
        let mut refreshed_auth = false;
        loop {
            let auth = self.authorization(false)?;
            let mut url = start_url.clone();
            let mut redirects = 0;
            let r = loop {
                let mut req = self.host.agent.get(&url);
                if let Some(a) = accept {
                    req = req.header("Accept", a);
                }
                if range_from > 0 {
                    req = req.header("Range", format!("bytes={range_from}-"));
                }
                // Credentials go only to the registry's own origin, never to a CDN a redirect points at.
                if let Some(a) = auth.as_ref().filter(|_| authority(&url) == origin) {
                    req = req.header("Authorization", a);
                }
                let r = req.call().map_err(|e| transport(&url, e))?;
                if r.status().is_redirection() {
                    let Some(loc) = header(&r, "location").map(str::to_string) else {
                        break r;
                    };
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(RegistryError::Redirects { url });
                    }
                    url = resolve_location(&url, &loc);
                    continue;
                }
                break r;
            };
            if r.status().is_success() {
                return Ok(r);
            }
            if r.status() == StatusCode::UNAUTHORIZED && !refreshed_auth {
                // New or changed challenge, or an expired token: learn it and try once more.
                let challenge = header(&r, "www-authenticate").and_then(|h| parse_challenges(h).into_iter().next());
                let Some(c) = challenge else {
                    return Err(error_from(r.status(), r, &url));
                };
                if matches!(c, Challenge::Basic { .. }) && self.creds.is_none() {
                    return Err(RegistryError::NoCredentials { url });
                }
                *self.host.challenge.locked() = Some(c);
                self.authorization(true)?;
                refreshed_auth = true;
                continue;
            }
            return Err(error_from(r.status(), r, &url));
        }
    }

    /// Check the credentials against the registry as `docker login` does: `/v2/` with Basic credentials, or a
    /// token without scope from the registry's token service. `Ok` carries an identity (refresh) token when
    /// the service issued one.
    pub fn login(&self) -> Result<Option<String>, RegistryError> {
        let base = self.base()?;
        let url = format!("{base}/v2/");
        let challenge = self.host.challenge.locked().clone();
        let denied = |status: u16| RegistryError::Denied {
            url: url.clone(),
            status,
            errors: super::ErrorList(vec![("UNAUTHORIZED".into(), "incorrect username or password".into())]),
        };
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic { .. }) => {
                let Some(c) = &self.creds else {
                    return Err(RegistryError::NoCredentials { url });
                };
                let r = self
                    .host
                    .agent
                    .get(&url)
                    .header("Authorization", c.basic_header())
                    .call()
                    .map_err(|e| transport(&url, e))?;
                match r.status().as_u16() {
                    200..=299 => Ok(None),
                    s @ (401 | 403) => Err(denied(s)),
                    _ => Err(error_from(r.status(), r, &url)),
                }
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                match self.fetch_token_full(&realm, service.as_deref(), "") {
                    Ok((_, _, refresh)) => Ok(refresh),
                    Err(RegistryError::Token { msg, .. }) if msg.contains("401") || msg.contains("403") => {
                        Err(denied(401))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Fetch a manifest by tag or digest. The body is capped before parsing; a digest reference is verified.
    pub fn manifest(&self, reference: &str) -> Result<FetchedManifest, RegistryError> {
        let (bytes, digest, ct) = self.manifest_bytes(reference)?;
        let manifest = parse_manifest(&bytes, ct.as_deref())?;
        Ok(FetchedManifest {
            bytes,
            digest,
            manifest,
        })
    }

    /// A manifest's bytes, digest and content type, capped and (by digest) verified, not parsed: for the
    /// artifacts beside images (a `.sig` manifest's layers are no image layers).
    pub fn manifest_bytes(&self, reference: &str) -> Result<(Vec<u8>, Digest, Option<String>), RegistryError> {
        let resp = self.get(&format!("manifests/{reference}"), Some(ACCEPT))?;
        let url = format!("manifests/{reference}");
        let limit = self.opts.max_manifest_bytes;
        if resp.body().content_length().is_some_and(|l| l > limit) {
            return Err(RegistryError::TooLarge { url, limit });
        }
        let ct = header(&resp, "content-type").map(str::to_string);
        let bytes = read_capped(resp, limit, &url)?;
        let digest = Digest::of(&bytes);
        if let Ok(want) = reference.parse::<Digest>() {
            if want != digest {
                return Err(RegistryError::DigestMismatch {
                    expected: want,
                    got: digest,
                });
            }
        }
        Ok((bytes, digest, ct))
    }

    /// One attempt at streaming a blob from `offset` on; the caller owns the retry budget (see
    /// [`RegistryError::retry`]). If the registry ignores `Range` the stream starts at 0 (`offset` says so).
    pub fn blob(&self, digest: &Digest, offset: u64) -> Result<BlobStream, RegistryError> {
        let resp = match self.get_once(&format!("blobs/{digest}"), None, offset) {
            // A range past what the server has: start over from zero.
            Err(RegistryError::Status { status: 416, .. }) if offset > 0 => {
                self.get_once(&format!("blobs/{digest}"), None, 0)?
            }
            r => r?,
        };
        let start = if resp.status() == StatusCode::PARTIAL_CONTENT {
            header(&resp, "content-range")
                .and_then(|cr| cr.strip_prefix("bytes "))
                .and_then(|cr| cr.split('-').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(offset)
        } else {
            0
        };
        Ok(BlobStream {
            reader: Box::new(resp.into_body().into_reader()),
            offset: start,
        })
    }

    /// A small blob (an image config) whole, capped and verified.
    pub fn blob_bytes(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let url = format!("blobs/{digest}");
        let resp = self.get(&url, None)?;
        let bytes = read_capped(resp, limit, &url)?;
        let got = Digest::of(&bytes);
        if &got != digest {
            return Err(RegistryError::DigestMismatch {
                expected: digest.clone(),
                got,
            });
        }
        Ok(bytes)
    }

    /// `/v2/_catalog`, following `Link` pagination (bounded).
    fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Repos {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut next = "/v2/_catalog?n=1000".to_string();
        for _ in 0..10 {
            let resp = self.get(&next, Some("application/json"))?;
            let link = header(&resp, "link").map(str::to_string);
            let body = read_capped(resp, 16 * 1024 * 1024, &next)?;
            let r: Repos = serde_json::from_slice(&body).map_err(|e| transport(&next, format!("bad catalog: {e}")))?;
            out.extend(r.repositories.unwrap_or_default());
            match link.as_deref().and_then(|l| l.split(['<', '>']).nth(1)) {
                Some(n) if n.starts_with("/v2/_catalog") => next = n.to_string(),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// All tags, following `Link: <…>; rel="next"` pagination (bounded).
    pub fn tags(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut next = "tags/list?n=1000".to_string();
        for _ in 0..100 {
            let resp = self.get(&next, Some("application/json"))?;
            let link = header(&resp, "link").map(str::to_string);
            let body = read_capped(resp, 16 * 1024 * 1024, &next)?;
            let t: Tags = serde_json::from_slice(&body).map_err(|e| transport(&next, format!("bad tag list: {e}")))?;
            out.extend(t.tags.unwrap_or_default());
            let prefix = format!("/v2/{}/", self.path);
            match link
                .as_deref()
                .and_then(|l| l.split(['<', '>']).nth(1))
                .and_then(|u| u.split_once(&prefix))
            {
                Some((_, rest)) => next = rest.to_string(),
                None => return Ok(out),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations() {
        let base = "http://127.0.0.1:5000/v2/x/blobs/sha256:abc";
        assert_eq!(resolve_location(base, "http://cdn:1/y"), "http://cdn:1/y");
        assert_eq!(resolve_location(base, "/other"), "http://127.0.0.1:5000/other");
        assert_eq!(resolve_location(base, "//cdn/y"), "http://cdn/y");
        assert_eq!(resolve_location(base, "rel"), "http://127.0.0.1:5000/v2/x/blobs/rel");
        assert_eq!(authority("http://a:1/b?c"), "a:1");
        assert_eq!(authority("https://a"), "a");
    }
}
