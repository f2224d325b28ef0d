//! Registry access (OCI distribution / Docker Registry HTTP API v2). Knows nothing about disk.

pub mod auth;
pub mod client;
pub mod manifest;
pub mod push;

pub use auth::Credentials;
pub use client::{BlobStream, FetchedManifest, Registry, RegistryOptions, Repo};

use crate::digest::Digest;
use std::fmt;

/// The `errors` array of a registry error body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorList(pub Vec<(String, String)>);

impl ErrorList {
    pub fn parse(body: &[u8]) -> ErrorList {
        #[derive(serde::Deserialize)]
        struct E {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<E>,
        }
        let list = serde_json::from_slice::<Body>(body)
            .map(|b| b.errors)
            .unwrap_or_default();
        ErrorList(list.into_iter().map(|e| (e.code, e.message)).collect())
    }

    pub fn has(&self, code: &str) -> bool {
        self.0.iter().any(|(c, _)| c == code)
    }
}

impl fmt::Display for ErrorList {
    /// Docker's errcode rendering: `manifest unknown: manifest unknown`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(c, m)| {
                let c = c.to_lowercase().replace('_', " ");
                if m.is_empty() {
                    c
                } else {
                    format!("{c}: {m}")
                }
            })
            .collect();
        f.write_str(&parts.join("; "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{url}: {msg}")]
    Transport { url: String, msg: String },
    #[error("{url}: not found: {errors}")]
    NotFound { url: String, errors: ErrorList },
    #[error("{url}: access denied ({status}): {errors}")]
    Denied {
        url: String,
        status: u16,
        errors: ErrorList,
    },
    #[error("{url}: no basic auth credentials")]
    NoCredentials { url: String },
    #[error("toomanyrequests: the registry's rate limit was reached{}{}{}", .remaining.as_ref().map(|r| format!(" (ratelimit-remaining: {r})")).unwrap_or_default(), .retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default(), if .errors.0.is_empty() { String::new() } else { format!(": {}", .errors) })]
    RateLimited {
        url: String,
        remaining: Option<String>,
        retry_after: Option<std::time::Duration>,
        errors: ErrorList,
    },
    /// Any other non-success answer: `registry answered 503 Service Unavailable: <the body's first line>`.
    #[error("{url}: registry answered {status}{}{}", if .reason.is_empty() { String::new() } else { format!(" {}", .reason) }, if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Status {
        url: String,
        status: u16,
        reason: String,
        detail: String,
        retry_after: Option<std::time::Duration>,
    },
    #[error("{url}: response larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: too many redirects")]
    Redirects { url: String },
    #[error("token from {realm}: {msg}")]
    Token { realm: String, msg: String },
    #[error("digest mismatch: expected {expected}, got {got}")]
    DigestMismatch { expected: Digest, got: Digest },
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
}

impl RegistryError {
    /// Whether another attempt can help, and when: resets, timeouts and truncations after the backoff; 5xx
    /// answers after their `Retry-After` if they give one; a 429 only when it says when (Docker Hub's limits
    /// last hours, so a 429 without `Retry-After` is final); everything else is final.
    pub fn retry(&self) -> crate::net::Retry {
        use crate::net::Retry;
        match self {
            RegistryError::Transport { .. } => Retry::Backoff,
            RegistryError::Status {
                status: 500 | 502 | 503 | 504,
                retry_after,
                ..
            } => retry_after.map(Retry::After).unwrap_or(Retry::Backoff),
            RegistryError::RateLimited {
                retry_after: Some(d), ..
            } => Retry::After(*d),
            _ => Retry::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_list_renders_like_docker() {
        let l = ErrorList::parse(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
        );
        assert_eq!(l.to_string(), "manifest unknown: manifest unknown");
        assert!(l.has("MANIFEST_UNKNOWN"));
        assert_eq!(ErrorList::parse(b"<html>").0.len(), 0);
        let e = RegistryError::RateLimited {
            url: "u".into(),
            remaining: Some("0;w=21600".into()),
            retry_after: None,
            errors: ErrorList::default(),
        };
        assert_eq!(
            e.retry(),
            crate::net::Retry::Never,
            "a 429 that does not say when is final"
        );
        let s = RegistryError::Status {
            url: "http://r/v2/x/blobs/sha256:1".into(),
            status: 503,
            reason: "Service Unavailable".into(),
            detail: "upstream overloaded".into(),
            retry_after: Some(std::time::Duration::from_secs(2)),
        };
        assert_eq!(
            s.to_string(),
            "http://r/v2/x/blobs/sha256:1: registry answered 503 Service Unavailable: upstream overloaded"
        );
        assert_eq!(s.retry(), crate::net::Retry::After(std::time::Duration::from_secs(2)));
        assert_eq!(
            e.to_string(),
            "toomanyrequests: the registry's rate limit was reached (ratelimit-remaining: 0;w=21600)"
        );
    }
}
