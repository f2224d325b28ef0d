//! `/pins` (depot's own): what installed apps keep. `GET /pins[?owner=]` lists them, `POST /pins`
//! `{"owner": "app", "targets": ["busybox:1.36", "repo@sha256:…", "lxc:debian/12/amd64/default"]}` pins
//! (admin; 201 with the owner's pins), `DELETE /pins/{owner}[?target=…]` releases the named targets, or all of
//! the owner's (admin).

use super::dto::{Pin, Removed};
use super::{blocking, ok, require_admin, Answer, Caller, Station, StationError};
use crate::http::{json, query_get, query_pairs, read_body, Req, MAX_SMALL_BODY};
use hyper::StatusCode;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    owner: String,
    targets: Vec<String>,
}

pub async fn list(st: &Station, req: &Req) -> Answer {
    let q = query_pairs(req.uri().query());
    let owner = query_get(&q, "owner").filter(|o| !o.is_empty()).map(str::to_string);
    let images = st.images.clone();
    let rows = blocking(move || images.pins.list(owner.as_deref())).await?;
    ok(&rows.into_iter().map(Pin::from).collect::<Vec<_>>())
}

pub async fn add(st: &Station, req: Req, caller: &Caller) -> Answer {
    require_admin(caller)?;
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let b: PinBody =
        serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed pins: {e}")))?;
    let images = st.images.clone();
    let rows = blocking(move || images.pins.add(&b.owner, &b.targets)).await?;
    Ok(json(
        StatusCode::CREATED,
        &rows.into_iter().map(Pin::from).collect::<Vec<_>>(),
    ))
}

pub async fn remove(st: &Station, req: &Req, caller: &Caller, owner: &str) -> Answer {
    require_admin(caller)?;
    let q = query_pairs(req.uri().query());
    let targets: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "target")
        .map(|(_, v)| v.clone())
        .collect();
    let (images, owner) = (st.images.clone(), owner.to_string());
    let removed = blocking(move || images.pins.remove(&owner, &targets)).await?;
    ok(&Removed { removed })
}

/// Who pins what: owners by target.
pub struct Pinned(std::collections::HashMap<String, Vec<String>>);

impl Pinned {
    pub fn of(rows: Vec<crate::store::db::PinRow>) -> Pinned {
        let mut m: std::collections::HashMap<String, Vec<String>> = Default::default();
        for p in rows {
            m.entry(p.target).or_default().push(p.owner);
        }
        Pinned(m)
    }

    /// The owners that pin any of `targets`, once each, in order.
    pub fn owners<'a>(&self, targets: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut out: Vec<String> = targets
            .into_iter()
            .flat_map(|t| self.0.get(t).into_iter().flatten())
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
