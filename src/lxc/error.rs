//! What goes wrong with templates, each kind mapped to a class the APIs answer with a status.

use super::index::NameError;
use super::meta;
use super::unpack::UnpackError;
use crate::net::http::HttpError;
use crate::store::db::DbError;
use crate::transfer::TransferError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LxcError {
    /// Removing a template an owner pinned.
    #[error("template {name} is pinned by {} (depot pin rm first)", .owners.join(", "))]
    Pinned { name: String, owners: Vec<String> },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("source {source_name}: {error}")]
    Source { source_name: String, error: String },
    #[error("no LXC source is named {0:?}")]
    UnknownSource(String),
    #[error("no source offers the template {name}{}", .source_name.as_ref().map(|s| format!(" (source {s})")).unwrap_or_default())]
    NoOffer { name: String, source_name: Option<String> },
    #[error("no LXC template {0} is kept")]
    NoTemplate(String),
    #[error("no unfinished LXC download {0}")]
    NoDownload(i64),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Transfer(#[from] TransferError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Blob(#[from] crate::store::blobs::BlobError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Meta(#[from] meta::MetaError),
    #[error("{url} is not a usable rootfs tarball: {why}")]
    NotATarball { url: String, why: String },
    #[error("template {name} needs {need} bytes more, but the volume has {free} free")]
    NoSpace { name: String, need: u64, free: u64 },
    #[error("{0}: the destination must be an absolute path in one of the allowed directories ({1})")]
    DestNotAllowed(PathBuf, String),
    #[error("download of {0} cancelled")]
    Cancelled(String),
    #[error("download of {0} paused")]
    Paused(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl LxcError {
    pub fn class(&self) -> crate::error::ErrorClass {
        use super::unpack::UnpackError as U;
        use crate::error::ErrorClass;
        match self {
            LxcError::Name(_) | LxcError::DestNotAllowed(..) => ErrorClass::InvalidParameter,
            LxcError::UnknownSource(_)
            | LxcError::NoOffer { .. }
            | LxcError::NoTemplate(_)
            | LxcError::NoDownload(_) => ErrorClass::NotFound,
            LxcError::Source { .. } | LxcError::Http(_) | LxcError::NotATarball { .. } => ErrorClass::Upstream,
            LxcError::NoSpace { .. } => ErrorClass::InsufficientStorage,
            LxcError::Cancelled(_) | LxcError::Paused(_) | LxcError::Pinned { .. } => ErrorClass::Conflict,
            LxcError::Unpack(u) => match u {
                U::Exists(_) => ErrorClass::Conflict,
                U::Unsafe { .. } | U::Broken { .. } | U::NoLinkTarget { .. } | U::OutsideShift { .. } => {
                    ErrorClass::Unprocessable
                }
                U::TooBig { .. } => ErrorClass::InsufficientStorage,
                U::Io { .. } => ErrorClass::Internal,
            },
            LxcError::Meta(_) => ErrorClass::Unprocessable,
            LxcError::Transfer(_) | LxcError::Db(_) | LxcError::Blob(_) | LxcError::Io { .. } => ErrorClass::Internal,
        }
    }
}

impl LxcError {
    pub(super) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LxcError {
        let context = context.into();
        move |source| LxcError::Io { context, source }
    }
}
