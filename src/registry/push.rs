//! The push side of the distribution client: blob existence, cross-repository mounts, monolithic uploads and
//! manifest puts, each one attempt with auth (a new challenge or an expired token is learnt once per attempt);
//! callers own the retry budget.

use super::auth::{parse_challenges, Challenge};
use super::client::{error_from, header, read_capped, resolve_location, transport, Repo};
use super::RegistryError;
use crate::digest::Digest;
use crate::sync::Locked;
use std::io::Read;
use ureq::http::Response;
use ureq::Body;

fn authed<B>(r: ureq::RequestBuilder<B>, auth: &Option<String>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => r.header("Authorization", a),
        None => r,
    }
}

/// What a request carries.
enum Payload<'a> {
    None,
    Bytes(&'a [u8], &'a str),
    Stream(&'a mut dyn Read, u64),
}

/// How a blob reached the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Exists,
    Mounted { from: String },
    Uploaded,
}

impl Repo {
    /// One request with auth; `target` is a path under `/v2/<repo>/` or an absolute URL (an upload location).
    fn send(&self, method: &str, target: &str, payload: Payload<'_>) -> Result<Response<Body>, RegistryError> {
        let base = self.base()?;
        let url = if target.contains("://") {
            target.to_string()
        } else if let Some(abs) = target.strip_prefix('/') {
            resolve_location(&base, &format!("/{abs}"))
        } else {
            format!("{base}/v2/{}/{target}", self.path)
        };
        let (mut payload, mut refreshed) = (payload, false);
        loop {
            let auth = self.authorization(false)?;
            let with_auth = |r| authed(r, &auth);
            let with_auth_body = |r| authed(r, &auth);
            let r = match (method, &mut payload) {
                ("HEAD", _) => with_auth(self.host.agent.head(&url)).call(),
                ("GET", _) => with_auth(self.host.agent.get(&url)).call(),
                (m, Payload::None) => {
                    let b = if m == "POST" {
                        self.host.agent.post(&url)
                    } else {
                        self.host.agent.put(&url)
                    };
                    with_auth_body(b).header("Content-Length", "0").send(&[][..])
                }
                (m, Payload::Bytes(bytes, ct)) => {
                    let b = if m == "POST" {
                        self.host.agent.post(&url)
                    } else {
                        self.host.agent.put(&url)
                    };
                    with_auth_body(b).header("Content-Type", *ct).send(*bytes)
                }
                (m, Payload::Stream(reader, len)) => {
                    let b = if m == "POST" {
                        self.host.agent.post(&url)
                    } else {
                        self.host.agent.put(&url)
                    };
                    with_auth_body(b)
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Length", len.to_string())
                        .send(ureq::SendBody::from_reader(*reader))
                }
            }
            .map_err(|e| transport(&url, e))?;
            // A stream cannot be sent twice: only bodiless and in-memory requests learn a challenge and retry.
            let can_retry = !matches!(payload, Payload::Stream(..));
            if r.status().as_u16() == 401 && !refreshed && can_retry {
                if let Some(c) = header(&r, "www-authenticate").and_then(|h| parse_challenges(h).into_iter().next()) {
                    if matches!(c, Challenge::Basic { .. }) && self.creds.is_none() {
                        return Err(RegistryError::NoCredentials { url });
                    }
                    *self.host.challenge.locked() = Some(c);
                    self.authorization(true)?;
                    refreshed = true;
                    continue;
                }
            }
            return Ok(r);
        }
    }

    /// Whether the registry has `d` in this repository.
    pub fn has_blob(&self, d: &Digest) -> Result<bool, RegistryError> {
        let r = self.send("HEAD", &format!("blobs/{d}"), Payload::None)?;
        match r.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(error_from(r.status(), r, &format!("blobs/{d}"))),
        }
    }

    /// Ask the registry to link `d` from repository `from` (same registry) instead of uploading it.
    pub fn mount(&self, d: &Digest, from: &str) -> Result<bool, RegistryError> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("mount", d.as_str())
            .append_pair("from", from)
            .finish();
        let r = self.send("POST", &format!("blobs/uploads/?{q}"), Payload::None)?;
        match r.status().as_u16() {
            201 => Ok(true),
            // The registry started an ordinary upload instead; it expires unused.
            202 => Ok(false),
            _ => Err(error_from(r.status(), r, "blobs/uploads/")),
        }
    }

    /// Upload `size` bytes of `body` as blob `d`: a POST for a session, then one PUT with the whole blob.
    pub fn upload(&self, d: &Digest, size: u64, body: &mut dyn Read) -> Result<(), RegistryError> {
        let r = self.send("POST", "blobs/uploads/", Payload::None)?;
        if r.status().as_u16() != 202 {
            return Err(error_from(r.status(), r, "blobs/uploads/"));
        }
        let Some(loc) = header(&r, "location").map(str::to_string) else {
            return Err(transport("blobs/uploads/", "the registry gave no upload location"));
        };
        let _ = read_capped(r, 64 * 1024, "blobs/uploads/");
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!(
            "{loc}{sep}digest={}",
            form_urlencoded::byte_serialize(d.as_str().as_bytes()).collect::<String>()
        );
        let r = self.send("PUT", &put, Payload::Stream(body, size))?;
        match r.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(error_from(r.status(), r, &put)),
        }
    }

    /// Put a manifest under `reference` (a tag or digest).
    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let path = format!("manifests/{reference}");
        let r = self.send("PUT", &path, Payload::Bytes(bytes, media_type))?;
        match r.status().as_u16() {
            200..=299 => Ok(()),
            _ => Err(error_from(r.status(), r, &path)),
        }
    }
}
