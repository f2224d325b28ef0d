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

/// The event in the station's words.
fn body(e: &Event) -> dto::Event {
    let attr = |k: &str| e.attributes.get(k).cloned().unwrap_or_default();
    let name = attr("name");
    let docker = |action, state, repository: &str, (n, t): (String, String)| dto::Event {
        action,
        state,
        name: Some(n),
        tag: Some(t),
        repository: Some(repository.to_string()),
        kind: "docker",
        ..Default::default()
    };
    let image = |action, state, r: &str| docker(action, state, "dockerhub", name_tag(r));
    // DIST/RELEASE/ARCH and VARIANT, as the lxc routes name a template; its source where it came from one
    let template = |action, state| {
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
    };
    let local = |action, state| dto::Event {
        action,
        state,
        id: Some(e.actor.clone()),
        kind: "docker",
        ..Default::default()
    };
    match e.action {
        Action::Pull => image("download", "success", &e.actor),
        Action::PullFailed => dto::Event {
            message: Some(attr("error")),
            ..image("download", "error", &e.actor)
        },
        Action::Untag => docker(
            "delete",
            "success",
            "local",
            name_tag(e.reference.as_deref().unwrap_or(&name)),
        ),
        Action::Delete => dto::Event {
            repository: Some("local".into()),
            ..local("delete", "success")
        },
        Action::Tag | Action::Load | Action::Import => {
            let (n, t) = name_tag(&name);
            dto::Event {
                category: Some("local"),
                name: Some(n),
                tag: Some(t),
                ..local("update", e.action.as_str())
            }
        }
        Action::Push => image("push", "success", &e.actor),
        Action::Save => dto::Event {
            name: Some(name.clone()),
            ..local("export", "success")
        },
        Action::Prune => dto::Event {
            action: "prune",
            state: "success",
            reclaimed: Some(attr("reclaimed")),
            kind: "docker",
            ..Default::default()
        },
        Action::TemplatePull => template("download", "success"),
        Action::TemplatePullFailed => dto::Event {
            message: Some(attr("error")),
            ..template("download", "error")
        },
        Action::TemplateDelete => template("delete", "success"),
        Action::TemplateUnpack => dto::Event {
            path: Some(attr("dest")),
            ..template("unpack", "success")
        },
        Action::TemplateConvert => dto::Event {
            from: Some(attr("from")),
            ..template("convert", "success")
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
}
