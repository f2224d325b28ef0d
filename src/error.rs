//! The classes every error of the services falls in. A service says which class each of its errors is
//! (`ImageError::class`, `LxcError::class`, `JobError::class`); each API maps a class to its status once, in
//! its own words, so that a new error needs no edit in any API.

/// The class of an error, for status mapping in the APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    InvalidParameter,
    NotFound,
    Conflict,
    Forbidden,
    Unauthorized,
    RateLimited,
    Unavailable,
    /// A server depot fetched from failed or answered what cannot be used.
    Upstream,
    /// Well-formed input whose content cannot be used (an unsafe archive).
    Unprocessable,
    /// The volume has no room for it.
    InsufficientStorage,
    Internal,
}
