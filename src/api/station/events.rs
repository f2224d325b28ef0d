//! `GET /event?index=&offset=` (spec §1.4): the image event log in Container Station's
//! `Category:User:Timestamp:JSON` lines, read from the image service's event bus.
//!
//! Events are numbered from the daemon's start. `index` is the first number wanted (default: the oldest kept),
//! `offset` the number to stop before (default: all there are). The answer's `index` is the first number it
//! holds and its `offset` the number to ask from next time, so a poller passes `index=<offset>` back.

use super::dto;
use super::{ok, Answer, Station, StationError};
use crate::events::{Action, Event};
use crate::http::{query_get, query_pairs, Req};
use crate::reference::Reference;

/// Who the log names: the bus does not record the user of an operation.
const USER: &str = "system";

/// Name and tag of an event's image, from a familiar reference.
fn name_tag(r: &str) -> (String, String) {
    match Reference::parse(r) {
        Ok(p) => (p.familiar_name(), p.tag().unwrap_or_default().to_string()),
        Err(_) => (r.to_string(), String::new()),
    }
}

fn attr(e: &Event, k: &str) -> String {
    e.attributes.get(k).cloned().unwrap_or_default()
}

/// An image's event named by a reference.
fn by_ref(action: &'static str, state: &'static str, repository: &str, r: &str) -> dto::Event {
    let (n, t) = name_tag(r);
    dto::Event {
        action,
        state,
        name: Some(n),
        tag: Some(t),
        repository: Some(repository.to_string()),
        kind: "docker",
        ..Default::default()
    }
}

/// An image's event named by its id.
fn by_id(e: &Event, action: &'static str, state: &'static str) -> dto::Event {
    dto::Event {
        action,
        state,
        id: Some(e.actor.clone()),
        kind: "docker",
        ..Default::default()
    }
}

/// A template's event: DIST/RELEASE/ARCH and VARIANT, as the lxc routes name a template, and its source where
/// it came from one.
fn template(e: &Event, action: &'static str, state: &'static str) -> dto::Event {
    let (n, t) = e.actor.rsplit_once('/').unwrap_or((&e.actor, ""));
    dto::Event {
        action,
        state,
        name: Some(n.to_string()),
        tag: Some(t.to_string()),
        repository: Some(e.attributes.get("source").map_or("local", String::as_str).to_string()),
        kind: "lxc",
        ..Default::default()
    }
}

/// The event in the station's words.
fn body(e: &Event) -> dto::Event {
    let name = attr(e, "name");
    match e.action {
        Action::Pull => by_ref("download", "success", "dockerhub", &e.actor),
        Action::PullFailed => dto::Event {
            message: Some(attr(e, "error")),
            ..by_ref("download", "error", "dockerhub", &e.actor)
        },
        Action::Untag => by_ref("delete", "success", "local", e.reference.as_deref().unwrap_or(&name)),
        Action::Delete => dto::Event {
            repository: Some("local".into()),
            ..by_id(e, "delete", "success")
        },
        Action::Tag | Action::Load | Action::Import => {
            let (n, t) = name_tag(&name);
            dto::Event {
                category: Some("local"),
                name: Some(n),
                tag: Some(t),
                ..by_id(e, "update", e.action.as_str())
            }
        }
        Action::Push => by_ref("push", "success", "dockerhub", &e.actor),
        Action::Save => dto::Event {
            name: Some(name),
            ..by_id(e, "export", "success")
        },
        Action::Prune => dto::Event {
            action: "prune",
            state: "success",
            reclaimed: Some(attr(e, "reclaimed")),
            kind: "docker",
            ..Default::default()
        },
        Action::Unpin => dto::Event {
            owner: Some(attr(e, "owners")),
            ..by_ref("unpin", "success", "local", e.reference.as_deref().unwrap_or(&e.actor))
        },
        Action::TemplatePull => template(e, "download", "success"),
        Action::TemplatePullFailed => dto::Event {
            message: Some(attr(e, "error")),
            ..template(e, "download", "error")
        },
        Action::TemplateDelete => template(e, "delete", "success"),
        Action::TemplateUnpack => dto::Event {
            path: Some(attr(e, "dest")),
            ..template(e, "unpack", "success")
        },
        Action::TemplateConvert => dto::Event {
            from: Some(attr(e, "from")),
            ..template(e, "convert", "success")
        },
    }
}

fn message(e: &Event) -> String {
    let body = serde_json::to_string(&body(e)).unwrap_or_default();
    format!("image:{USER}:{}:{body}", e.time_nano / 1_000_000_000)
}

pub async fn events(st: &Station, req: &Req) -> Answer {
    let q = query_pairs(req.uri().query());
    let number = |k: &str| -> Result<Option<u64>, StationError> {
        match query_get(&q, k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| StationError::bad_request(format!("{k} {v:?}: expected a whole number"))),
        }
    };
    let from = number("index")?.unwrap_or(0);
    let until = number("offset")?;
    let (all, next) = st.images.events.since(from);
    let picked: Vec<&(u64, Event)> = all.iter().filter(|(n, _)| until.is_none_or(|u| *n < u)).collect();
    let first = picked.first().map_or(from.min(next), |(n, _)| *n);
    let after = picked.last().map_or(first, |(n, _)| n + 1);
    ok(&dto::EventPage {
        index: first,
        messages: picked.iter().map(|(_, e)| message(e)).collect(),
        offset: after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    #[test]
    fn lines_in_the_station_format() {
        let e = Event {
            action: Action::Pull,
            actor: "lgsd/diamond:latest".into(),
            attributes: BTreeMap::new(),
            time_nano: 1_432_022_737_000_000_000,
            reference: None,
        };
        let m = message(&e);
        let (head, json_part) = m.split_at("image:system:1432022737:".len());
        assert_eq!(head, "image:system:1432022737:");
        let v: Value = serde_json::from_str(json_part).unwrap();
        assert_eq!(
            v,
            json!({"action": "download", "state": "success", "name": "lgsd/diamond", "tag": "latest",
                   "repository": "dockerhub", "type": "docker"})
        );
        let failed = Event {
            action: Action::PullFailed,
            attributes: BTreeMap::from([("error".to_string(), "boom".to_string())]),
            ..e
        };
        let v: Value = serde_json::from_str(message(&failed).splitn(4, ':').nth(3).unwrap()).unwrap();
        assert_eq!(
            (v["state"].as_str(), v["message"].as_str()),
            (Some("error"), Some("boom"))
        );
    }

    #[test]
    fn each_action_names_what_it_has() {
        let ev = |action, actor: &str, attrs: &[(&str, &str)], reference: Option<&str>| Event {
            action,
            actor: actor.into(),
            attributes: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            time_nano: 0,
            reference: reference.map(str::to_string),
        };
        let v = |e: &Event| serde_json::to_value(body(e)).unwrap();
        let id = "sha256:ab";
        assert_eq!(
            v(&ev(Action::Untag, id, &[("name", "x:1")], Some("busybox:2"))),
            json!({"action": "delete", "state": "success", "name": "busybox", "tag": "2", "repository": "local",
                   "type": "docker"})
        );
        assert_eq!(
            v(&ev(Action::Delete, id, &[], None)),
            json!({"action": "delete", "state": "success", "id": id, "repository": "local", "type": "docker"})
        );
        assert_eq!(
            v(&ev(Action::Load, id, &[("name", "busybox:1")], None)),
            json!({"action": "update", "category": "local", "state": "load", "name": "busybox", "tag": "1",
                   "id": id, "type": "docker"})
        );
        assert_eq!(
            v(&ev(Action::Save, id, &[("name", "busybox:1")], None)),
            json!({"action": "export", "state": "success", "id": id, "name": "busybox:1", "type": "docker"})
        );
        assert_eq!(
            v(&ev(Action::Prune, "", &[("reclaimed", "5")], None)),
            json!({"action": "prune", "state": "success", "reclaimed": "5", "type": "docker"})
        );
        assert_eq!(
            v(&ev(
                Action::TemplateUnpack,
                "debian/12/amd64/default",
                &[("dest", "/c/x")],
                None
            )),
            json!({"action": "unpack", "state": "success", "name": "debian/12/amd64", "tag": "default",
                   "repository": "local", "path": "/c/x", "type": "lxc"})
        );
    }
}
