//! Errors of image operations. Each variant names a class the API layers map to a status exhaustively.

use crate::platform::PlatformError;
use crate::reference::ReferenceError;
use crate::registry::manifest::ManifestError;
use crate::registry::{ErrorList, RegistryError};
use crate::store::{BlobError, DbError};
use crate::transfer::TransferError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("'{0}' is a reserved name")]
    Reserved(String),
    #[error("manifest for {reference} not found: {errors}")]
    ManifestUnknown { reference: String, errors: ErrorList },
    #[error("pull access denied for {name}, repository does not exist or may require 'docker login': {}", if .errors.0.is_empty() { "denied: requested access to the resource is denied".to_string() } else { .errors.to_string() })]
    AccessDenied { name: String, errors: ErrorList },
    #[error(transparent)]
    Registry(RegistryError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Transfer(#[from] TransferError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// A pull failed and the failure could not be recorded: the database still says it runs, so it resumes at
    /// the next start, and the client is told exactly that.
    #[error(
        "{error}; recording the failure failed too ({db}): the download stays queued and resumes at the next start"
    )]
    Unrecorded { error: String, db: DbError },
}

impl From<RegistryError> for ImageError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Manifest(m) => ImageError::Manifest(m),
            e => ImageError::Registry(e),
        }
    }
}

/// The class of an error, for status mapping in the APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidParameter,
    NotFound,
    Conflict,
    Forbidden,
    Unauthorized,
    RateLimited,
    Unavailable,
    Internal,
}

impl ImageError {
    pub fn class(&self) -> ErrorClass {
        use ErrorClass::*;
        match self {
            ImageError::Reference(_) | ImageError::Platform(_) | ImageError::InvalidParameter(_) => InvalidParameter,
            ImageError::NotFound(_) | ImageError::ManifestUnknown { .. } | ImageError::AccessDenied { .. } => NotFound,
            ImageError::Conflict(_) => Conflict,
            ImageError::Reserved(_) => Forbidden,
            ImageError::Registry(r) => match r {
                RegistryError::NoCredentials { .. } => Unauthorized,
                RegistryError::RateLimited { .. } => RateLimited,
                RegistryError::Transport { .. } => Unavailable,
                RegistryError::NotFound { .. }
                | RegistryError::Denied { .. }
                | RegistryError::Status { .. }
                | RegistryError::TooLarge { .. }
                | RegistryError::Redirects { .. }
                | RegistryError::Token { .. }
                | RegistryError::DigestMismatch { .. }
                | RegistryError::Manifest(_) => Internal,
            },
            ImageError::Transfer(TransferError::Registry(RegistryError::RateLimited { .. })) => RateLimited,
            ImageError::Manifest(ManifestError::NoMatch { .. }) => NotFound,
            ImageError::Manifest(_)
            | ImageError::Transfer(_)
            | ImageError::Blob(_)
            | ImageError::Db(_)
            | ImageError::Unrecorded { .. }
            | ImageError::Io { .. } => Internal,
        }
    }
}

/// Translate a registry error met while resolving `reference` into Docker's pull errors.
pub fn pull_error(e: RegistryError, familiar: &str, familiar_name: &str) -> ImageError {
    match e {
        RegistryError::NotFound { errors, .. } if errors.has("NAME_UNKNOWN") => ImageError::AccessDenied {
            name: familiar_name.to_string(),
            errors,
        },
        RegistryError::NotFound { errors, .. } => {
            let errors = if errors.0.is_empty() {
                ErrorList(vec![("MANIFEST_UNKNOWN".into(), "manifest unknown".into())])
            } else {
                errors
            };
            ImageError::ManifestUnknown {
                reference: familiar.to_string(),
                errors,
            }
        }
        RegistryError::Denied { errors, .. } => ImageError::AccessDenied {
            name: familiar_name.to_string(),
            errors,
        },
        e => e.into(),
    }
}
