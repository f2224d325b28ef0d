//! `GET /event?index=&offset=` (spec §1.4): the image event log in Container Station's
//! `Category:User:Timestamp:JSON` lines, read from the image service's event bus.
//!
//! Events are numbered from the daemon's start. `index` is the first number wanted (default: the oldest kept),
//! `offset` the number to stop before (default: all there are). The answer's `index` is the first number it
//! holds and its `offset` the number to ask from next time, so a poller passes `index=<offset>` back.

use super::{ok, Answer, Station, StationError};
use crate::events::{Action, Event};
use crate::http::{query_get, query_pairs, Req};
use crate::reference::Reference;
use serde_json::{json, Value};

/// Who the log names: the bus does not record the user of an operation.
const USER: &str = "system";

/// Name and tag of an event's image, from a familiar reference.
fn name_tag(r: &str) -> (String, String) {
    match Reference::parse(r) {
        Ok(p) => (p.familiar_name(), p.tag().unwrap_or_default().to_string()),
        Err(_) => (r.to_string(), String::new()),
    }
}

/// The event's JSON in the station's words.
fn body(e: &Event) -> Value {
    let attr = |k: &str| e.attributes.get(k).cloned().unwrap_or_default();
    let name = attr("name");
    let image = |action: &str, state: &str, r: &str| {
        let (n, t) = name_tag(r);
        json!({"action": action, "state": state, "name": n, "tag": t, "repository": "dockerhub", "type": "docker"})
    };
    // DIST/RELEASE/ARCH and VARIANT, as the lxc routes name a template; its source where it came from one
    let template = |action: &str, state: &str| {
        let (n, t) = e.actor.rsplit_once('/').unwrap_or((&e.actor, ""));
        let from = e.attributes.get("source").map_or("local", String::as_str);
        json!({"action": action, "state": state, "name": n, "tag": t, "repository": from, "type": "lxc"})
    };
    match e.action {
        Action::Pull => image("download", "success", &e.actor),
        Action::PullFailed => {
            let mut v = image("download", "error", &e.actor);
            v["message"] = json!(attr("error"));
            v
        }
        Action::Untag => {
            let (n, t) = name_tag(e.reference.as_deref().unwrap_or(&name));
            json!({"action": "delete", "state": "success", "name": n, "tag": t, "repository": "local", "type": "docker"})
        }
        Action::Delete => {
            json!({"action": "delete", "state": "success", "id": e.actor, "repository": "local", "type": "docker"})
        }
        Action::Tag | Action::Load | Action::Import => {
            let (n, t) = name_tag(&name);
            json!({"action": "update", "category": "local", "state": e.action.as_str(), "name": n, "tag": t,
                   "id": e.actor, "type": "docker"})
        }
        Action::Push => image("push", "success", &e.actor),
        Action::Save => json!({"action": "export", "state": "success", "id": e.actor, "name": name, "type": "docker"}),
        Action::Prune => json!({"action": "prune", "state": "success",
                                "reclaimed": attr("reclaimed"), "type": "docker"}),
        Action::TemplatePull => template("download", "success"),
        Action::TemplatePullFailed => {
            let mut v = template("download", "error");
            v["message"] = json!(attr("error"));
            v
        }
        Action::TemplateDelete => template("delete", "success"),
        Action::TemplateUnpack => {
            let mut v = template("unpack", "success");
            v["path"] = json!(attr("dest"));
            v
        }
        Action::TemplateConvert => {
            let mut v = template("convert", "success");
            v["from"] = json!(attr("from"));
            v
        }
    }
}

fn message(e: &Event) -> String {
    format!("image:{USER}:{}:{}", e.time_nano / 1_000_000_000, body(e))
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
    ok(&json!({
        "index": first,
        "messages": picked.iter().map(|(_, e)| message(e)).collect::<Vec<_>>(),
        "offset": after,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
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
