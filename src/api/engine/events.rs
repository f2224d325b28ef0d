//! `GET /events?since=&until=&filters=` (spec §5.13): image events from the image service's bus, as
//! newline-delimited JSON, headers sent at once.

use super::images::parse_filters;
use super::{timestamp, ApiError, Engine};
use crate::events::{now_nano, Event};
use crate::http::{query_get, query_pairs, streaming, Req, Resp};
use bytes::Bytes;
use hyper::StatusCode;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Filter keys dockerd accepts; only `type`, `event`, `image`, `label` and `scope` can match an image event.
const KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

type Filters = BTreeMap<String, BTreeSet<String>>;

/// Whether `e` passes every filter (values of one key are alternatives; keys must all match).
pub fn matches(f: &Filters, e: &Event) -> bool {
    let any = |key: &str, ok: &dyn Fn(&str) -> bool| f.get(key).is_none_or(|vals| vals.iter().any(|v| ok(v)));
    let name = e.attributes.get("name").map(String::as_str).unwrap_or("");
    let strip_tag = |s: &str| crate::reference::split_tag(s).0.to_string();
    e.action.in_docker()
        && any("type", &|v| v == "image")
        && any("event", &|v| v == e.action.as_str())
        && any("scope", &|v| v == "local")
        && any("image", &|v| {
            v == e.actor || v == name || v == strip_tag(&e.actor) || v == strip_tag(name)
        })
        && f.get("label")
            .is_none_or(|vals| vals.iter().all(|w| crate::image::label_matches(Some(&e.attributes), w)))
        && [
            "container",
            "network",
            "volume",
            "daemon",
            "plugin",
            "node",
            "service",
            "secret",
            "config",
        ]
        .iter()
        .all(|k| !f.contains_key(*k))
}

/// Docker's JSON for one event.
pub fn line(e: &Event) -> Bytes {
    let mut v = serde_json::to_vec(&super::dto::EventMessage {
        status: e.action.as_str(),
        id: &e.actor,
        kind: "image",
        action: e.action.as_str(),
        actor: super::dto::Actor {
            id: &e.actor,
            attributes: &e.attributes,
        },
        scope: "local",
        time: e.time_nano / 1_000_000_000,
        time_nano: e.time_nano,
    })
    .unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn events(e: &Engine, req: &Req) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let now = now_nano();
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let time = |k: &str| {
        query_get(&q, k)
            .filter(|v| !v.is_empty())
            .map(|v| timestamp::parse(v, now).map_err(bad))
            .transpose()
    };
    let (since, until) = (time("since")?, time("until")?);
    if let (Some(s), Some(u)) = (since, until) {
        if u < s {
            return Err(bad("`since` time must be before `until`".into()));
        }
    }
    let filters = parse_filters(query_get(&q, "filters"))?;
    if let Some(k) = filters.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(bad(format!("invalid filter '{k}'")));
    }
    let images = e.images.clone();
    let mut cursor = images.events.cursor(since);
    let (tx, rx) = async_channel::bounded::<Bytes>(64);
    smol::spawn(async move {
        loop {
            let wait = until.map(|u| Duration::from_nanos((u - now_nano()).max(0) as u64));
            let next = async { Some(images.events.next(&mut cursor).await) };
            let batch = match wait {
                None => next.await,
                Some(w) => {
                    futures_lite::future::or(next, async {
                        async_io::Timer::after(w).await;
                        None
                    })
                    .await
                }
            };
            let Some(batch) = batch else { return };
            for ev in batch {
                if until.is_some_and(|u| ev.time_nano > u) {
                    return;
                }
                if matches(&filters, &ev) && tx.send(line(&ev)).await.is_err() {
                    return; // the client left
                }
            }
        }
    })
    .detach();
    Ok(streaming(StatusCode::OK, "application/json", rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Action;

    #[test]
    fn filters_and_shape() {
        let ev = Event {
            action: Action::Pull,
            actor: "127.0.0.1:5000/test:1".into(),
            attributes: BTreeMap::from([
                ("name".into(), "127.0.0.1:5000/test".into()),
                ("org.example.test".into(), "1".into()),
            ]),
            time_nano: 1_727_386_302_123_456_789,
            reference: None,
        };
        let f = |s: &str| parse_filters(Some(s)).unwrap();
        assert!(matches(&f(""), &ev));
        assert!(matches(&f(r#"{"type":{"image":true}}"#), &ev));
        assert!(!matches(&f(r#"{"type":{"container":true}}"#), &ev));
        assert!(matches(&f(r#"{"event":["pull","push"]}"#), &ev));
        assert!(!matches(&f(r#"{"event":["delete"]}"#), &ev));
        assert!(
            matches(&f(r#"{"image":["127.0.0.1:5000/test"]}"#), &ev),
            "the tag stripped"
        );
        assert!(matches(&f(r#"{"label":["org.example.test=1"]}"#), &ev));
        assert!(!matches(&f(r#"{"label":["org.example.test=2"]}"#), &ev));
        assert!(!matches(&f(r#"{"container":["x"]}"#), &ev));
        let v: serde_json::Value = serde_json::from_slice(&line(&ev)).unwrap();
        assert_eq!(v["status"], "pull");
        assert_eq!(v["Actor"]["Attributes"]["name"], "127.0.0.1:5000/test");
        assert_eq!(v["time"], 1_727_386_302);
        assert_eq!(v["timeNano"], 1_727_386_302_123_456_789i64);
        assert_eq!(v["scope"], "local");
    }
}
