//! Docker's JSON message stream (moby `pkg/jsonmessage`): one JSON object and `\r\n` per message, as pull,
//! push, load and import answer.

use bytes::Bytes;
use serde::Serialize;

#[derive(Serialize, Default)]
pub struct Detail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

#[derive(Serialize)]
pub struct ErrDetail<'a> {
    message: &'a str,
}

/// Docker's `JSONMessage`, field order included.
#[derive(Serialize, Default)]
pub struct Message<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a str>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<Detail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrDetail<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

pub fn line(m: &Message<'_>) -> Bytes {
    let mut v = serde_json::to_vec(m).unwrap_or_default();
    v.extend_from_slice(b"\r\n");
    Bytes::from(v)
}

/// A status-only message.
pub fn status_line(s: &str) -> Bytes {
    line(&Message {
        status: Some(s),
        ..Default::default()
    })
}

/// Any other message (`stream`, `aux`, push progress) from its JSON.
pub fn json_line(v: serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(&v).unwrap_or_default();
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

/// An error inside a stream (spec §2.2): both fields, as the CLI reads only `errorDetail`.
pub fn error_line(msg: &str) -> Bytes {
    line(&Message {
        error_detail: Some(ErrDetail { message: msg }),
        error: Some(msg),
        ..Default::default()
    })
}
