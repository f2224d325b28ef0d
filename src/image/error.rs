//! Errors of image operations, in depot's own words: each API renders them in its own (Docker's strings live in
//! `api/engine`), and each variant names a class the APIs map to a status exhaustively.

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
    #[error("an image name is needed")]
    BlankName,
    /// `reference` as the user would write it, with `:latest` added to a bare name.
    #[error("image {reference} not found")]
    NotFound { reference: String },
    /// Deleting by id an image that several repositories or tags name, without force.
    #[error("image {} is referenced in several repositories; remove it by name, or force it", .id.short())]
    InUse { id: crate::digest::Digest },
    /// Deleting what an owner pinned, without force.
    #[error("{reference} is pinned by {} (depot pin rm, or force)", .owners.join(", "))]
    Pinned { reference: String, owners: Vec<String> },
    /// The registry refused the credentials of a login.
    #[error("{url}: the registry refused the username or password")]
    LoginFailed { url: String },
    /// A push of a tag this store does not have.
    #[error("no local image is tagged {reference}")]
    NoLocalTag { reference: String },
    /// A push of a repository this store has no tag of.
    #[error("no local image is tagged in repository {name}")]
    NoLocalRepo { name: String },
    /// The container engine did not take a hand-off.
    #[error("handing off to the container engine at {engine}: {msg}")]
    Handoff { engine: String, msg: String },
    /// A tag that names no image (save).
    #[error("no image is tagged {reference}")]
    UnknownTag { reference: String },
    /// Another operation that runs alone is running.
    #[error("{0}")]
    Busy(String),
    #[error("{0} is a reserved name")]
    Reserved(String),
    /// An image naming a blob the store does not have: never recorded (see [`super::admit`]).
    #[error("{names}: blob {blob} is not in the store")]
    Incomplete { names: String, blob: crate::digest::Digest },
    /// A policy refused the image: nothing of it is visible.
    #[error("{names} refused: {why}")]
    Refused { names: String, why: String },
    #[error("the registry has no manifest {reference}: {errors}")]
    ManifestUnknown { reference: String, errors: ErrorList },
    /// The registry refused: the repository does not exist, or it needs credentials.
    #[error("the registry denied access to {name} (it does not exist or needs credentials){}", if .errors.0.is_empty() { String::new() } else { format!(": {}", .errors) })]
    AccessDenied { name: String, errors: ErrorList },
    /// A download that would not fit: refused before its first layer byte.
    #[error("not enough space for {reference}: it needs {} more, the volume has {} free", crate::progress::human_size(*.need), crate::progress::human_size(*.free))]
    NoSpace { reference: String, need: u64, free: u64 },
    /// A user paused the download: it keeps its bytes and continues when resumed.
    #[error("download of {reference} paused")]
    Paused { reference: String },
    /// A user cancelled the download.
    #[error("download of {reference} cancelled")]
    Cancelled { reference: String },
    /// No station record (a registry, a private image) with this id.
    #[error("no {what} with id {id}")]
    NoRecord { what: &'static str, id: i64 },
    /// No download with this id (or not one in a state the operation applies to).
    #[error("no {what} download {id}")]
    NoDownload { id: i64, what: &'static str },
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

pub use crate::error::ErrorClass;

impl ImageError {
    pub fn class(&self) -> ErrorClass {
        use ErrorClass::*;
        match self {
            ImageError::Reference(_)
            | ImageError::Platform(_)
            | ImageError::InvalidParameter(_)
            | ImageError::BlankName => InvalidParameter,
            ImageError::NotFound { .. }
            | ImageError::UnknownTag { .. }
            | ImageError::NoLocalTag { .. }
            | ImageError::NoLocalRepo { .. }
            | ImageError::ManifestUnknown { .. }
            | ImageError::AccessDenied { .. }
            | ImageError::NoDownload { .. }
            | ImageError::NoRecord { .. } => NotFound,
            ImageError::InUse { .. }
            | ImageError::Pinned { .. }
            | ImageError::Busy(_)
            | ImageError::Paused { .. }
            | ImageError::Cancelled { .. } => Conflict,
            ImageError::NoSpace { .. } => InsufficientStorage,
            ImageError::Db(DbError::Conflict(_)) => Conflict,
            ImageError::LoginFailed { .. } => Unauthorized,
            ImageError::Reserved(_) | ImageError::Refused { .. } => Forbidden,
            ImageError::Incomplete { .. } => Internal,
            ImageError::Registry(r) => match r {
                // dockerd answers a registry that wants credentials it was not given with 500 (its
                // translatePullError leaves the error unknown): a 401 would make the docker CLI prompt for a
                // login, and a script with an open stdin would wait for ever
                RegistryError::NoCredentials { .. } => Internal,
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
            | ImageError::Handoff { .. }
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
