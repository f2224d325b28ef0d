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

/// What a push's last message adds for the client (moby's `PushResult`).
#[derive(Serialize)]
pub struct Aux<'a> {
    #[serde(rename = "Tag")]
    pub tag: &'a str,
    #[serde(rename = "Digest")]
    pub digest: &'a str,
    #[serde(rename = "Size")]
    pub size: u64,
}

/// Docker's `JSONMessage`, field order included.
#[derive(Serialize, Default)]
pub struct Message<'a> {
    /// Text for the terminal as it is (a load's "Loaded image: …\n").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<&'a str>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<Aux<'a>>,
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

/// Text for the terminal.
pub fn stream_line(text: &str) -> Bytes {
    line(&Message {
        stream: Some(text),
        ..Default::default()
    })
}

/// A layer's state (`Preparing`, `Pushed`, …), with the empty detail that keeps the CLI's line for `id`.
pub fn layer_line(status: &str, id: &str) -> Bytes {
    line(&Message {
        status: Some(status),
        progress_detail: Some(Detail::default()),
        id: Some(id),
        ..Default::default()
    })
}

/// Progress of `current` of `total` bytes, with the CLI's bar; `id` is the layer's, if any.
pub fn progress_line(status: &str, id: Option<&str>, current: u64, total: u64) -> Bytes {
    line(&Message {
        status: Some(status),
        progress_detail: Some(Detail {
            current: Some(current),
            total: Some(total),
        }),
        progress: Some(crate::progress::bar(current, total)),
        id,
        ..Default::default()
    })
}

/// An error inside a stream (spec §2.2): both fields, as the CLI reads only `errorDetail`.
pub fn error_line(msg: &str) -> Bytes {
    line(&Message {
        error_detail: Some(ErrDetail { message: msg }),
        error: Some(msg),
        ..Default::default()
    })
}
