//! What the station API answers, as types: every handler renders one of these (`serde_json::Value` only inside
//! a document that is the registry's or the template's own: a manifest, a config, a template's metadata).
//!
//! Fields are declared in alphabetical order, the order the API has always sent its keys in; `type` is `kind`.

use serde::Serialize;
use serde_json::Value;

/// `{}`: a change was made and there is nothing to tell.
#[derive(Serialize)]
pub struct Done {}

/// `{"id": N}`: a download was started (or joined).
#[derive(Serialize)]
pub struct Started {
    pub id: i64,
}

/// The answer of `GET /image`: one category's results.
#[derive(Serialize)]
pub struct Listing<T: Serialize> {
    pub category: String,
    pub filter_text: String,
    pub results: Vec<T>,
    /// Where a catalog came from (`fetched`, `cached`, `shipped`); catalogs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    pub total_count: usize,
    #[serde(rename = "type")]
    pub kind: String,
}

impl<T: Serialize> Listing<T> {
    pub fn of(category: &str, filter_text: &str, kind: &str, results: Vec<T>) -> Listing<T> {
        Listing {
            category: category.into(),
            filter_text: filter_text.into(),
            total_count: results.len(),
            results,
            source: None,
            kind: kind.into(),
        }
    }
}

/// One result of a listing: whichever the category holds.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Item {
    Image(LocalImage),
    Template(LocalTemplate),
    Hub(HubHit),
    Official(OfficialItem),
    Catalog(CatalogItem),
    Offer(Offer),
}

/// A local repository: its tags, and what depot adds beside each (parallel arrays, as `size` is).
#[derive(Serialize)]
pub struct LocalImage {
    pub architecture: Vec<String>,
    pub created: Vec<Option<i64>>,
    pub description: &'static str,
    pub downloading: bool,
    pub icon: &'static str,
    pub installed: bool,
    pub is_latest: Vec<String>,
    pub name: String,
    /// Per tag, the owners that keep it (see `/pins`).
    pub pinned_by: Vec<Vec<String>>,
    /// Per tag, the keys whose signatures the signature policy admitted it on (fingerprints).
    pub signed_by: Vec<Vec<String>>,
    pub repository: &'static str,
    pub size: Vec<u64>,
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A kept LXC template in the `local` category.
#[derive(Serialize)]
pub struct LocalTemplate {
    pub arch: String,
    pub build: String,
    pub created: i64,
    pub description: String,
    pub downloading: bool,
    pub icon: &'static str,
    pub installed: bool,
    pub name: String,
    /// The owners that keep it (see `/pins`).
    pub pinned_by: [Vec<String>; 1],
    pub repository: &'static str,
    pub size: [u64; 1],
    pub source: String,
    pub tags: [String; 1],
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A Docker Hub search hit (`dockerhub`).
#[derive(Serialize)]
pub struct HubHit {
    pub description: String,
    pub downloading: bool,
    pub installed: bool,
    pub is_official: bool,
    pub is_trusted: bool,
    pub location: String,
    pub name: String,
    pub repository: &'static str,
    pub star_count: u64,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A catalog entry in the `official` category.
#[derive(Serialize)]
pub struct OfficialItem {
    pub arch: String,
    pub description: String,
    pub downloading: bool,
    pub icon: String,
    pub installed: bool,
    pub is_official: bool,
    pub location: String,
    pub name: String,
    pub repository: &'static str,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub version: String,
}

/// A catalog entry in the `qnap` category.
#[derive(Serialize)]
pub struct CatalogItem {
    pub arch: String,
    pub description: String,
    pub downloading: bool,
    pub icon: String,
    pub inspect: String,
    pub installed: bool,
    pub location: String,
    pub name: String,
    pub repository: String,
    /// Unknown before a download.
    pub size: Option<u64>,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
}

/// A template an LXC source offers (`lxc`).
#[derive(Serialize)]
pub struct Offer {
    pub arch: String,
    pub build: String,
    pub description: String,
    pub downloading: bool,
    pub installed: bool,
    pub location: String,
    pub name: String,
    pub repository: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub tags: [String; 1],
    pub title: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// What a pull would fetch, read from the registry: the manifest and config are the registry's documents.
#[derive(Serialize)]
pub struct RemoteImage {
    pub config: Value,
    pub digest: String,
    pub manifest: Value,
    pub manifest_digest: String,
    pub platform: String,
    pub size: u64,
}

/// A repository's tags on its registry, and which of them are local.
#[derive(Serialize)]
pub struct Tags {
    pub installed: Vec<String>,
    pub tags: Vec<String>,
}

/// One download in `downloadstatus` and the download stream.
#[derive(Serialize)]
pub struct DownloadItem {
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub created_at: i64,
    pub id: i64,
    pub message: Option<String>,
    pub name: String,
    /// Null only while the total is unknown.
    pub percent: Option<f64>,
    pub rate: u64,
    pub status: &'static str,
    pub tag: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub updated_at: i64,
}

/// `GET /storage`.
#[derive(Serialize)]
pub struct Storage {
    pub depot: u64,
    pub free: u64,
    pub total: u64,
}

/// The downloads' settings.
#[derive(Serialize)]
pub struct Settings {
    pub bandwidth_limit: u64,
    pub local_time: String,
    pub window: Option<String>,
    pub window_open: bool,
}

/// A kept template, inspected; `meta` is the template's own metadata document.
#[derive(Serialize)]
pub struct Template {
    pub arch: String,
    pub build: String,
    pub created: i64,
    pub dist: String,
    pub meta: Value,
    pub meta_digest: Option<String>,
    pub name: String,
    pub release: String,
    pub rootfs: Rootfs,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub variant: String,
}

#[derive(Serialize)]
pub struct Rootfs {
    pub digest: String,
    pub size: u64,
}

/// A template deleted, and the bytes that freed.
#[derive(Serialize)]
pub struct Deleted {
    pub deleted: String,
    pub freed: u64,
}

/// A private registry record.
#[derive(Serialize)]
pub struct Registry {
    pub has_password: bool,
    pub host: String,
    pub id: i64,
    pub insecure: bool,
    pub name: String,
    pub resource_uri: String,
    pub url: String,
    pub username: Option<String>,
}

/// A private image record.
#[derive(Serialize)]
pub struct PrivateImage {
    pub description: String,
    pub id: i64,
    /// depot runs no containers: no image of its own is in use by one.
    pub in_use: bool,
    pub is_private_image: bool,
    pub name: String,
    /// The registry's resource URI; null for Docker Hub.
    pub registry: Option<String>,
    pub resource_uri: String,
    pub state: &'static str,
    /// The inspect URI of each local tag.
    pub tags: Vec<String>,
}

/// A list of records in Container Station's `{"meta": {"total_count": N}, "objects": […]}`.
#[derive(Serialize)]
pub struct Objects<T: Serialize> {
    pub meta: Count,
    pub objects: Vec<T>,
}

#[derive(Serialize)]
pub struct Count {
    pub total_count: usize,
}

impl<T: Serialize> Objects<T> {
    pub fn of(objects: Vec<T>) -> Objects<T> {
        Objects {
            meta: Count {
                total_count: objects.len(),
            },
            objects,
        }
    }
}

/// A pin: `owner` keeps `target` (an image reference, or `lxc:` and a template's name).
#[derive(Serialize)]
pub struct Pin {
    pub created_at: i64,
    pub owner: String,
    pub target: String,
}

impl From<crate::store::db::PinRow> for Pin {
    fn from(p: crate::store::db::PinRow) -> Pin {
        Pin {
            created_at: p.created_at,
            owner: p.owner,
            target: p.target,
        }
    }
}

/// One line of `POST /ensure`'s answer: a target `present`, `pulling` (its download), its `progress`, `pulled`,
/// or `failed` (its class and why); the last line says `ensured` or `failed`.
#[derive(Serialize, Default)]
pub struct EnsureLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<crate::error::ErrorClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// A line of a bundle import's answer (`POST /bundle/import`).
#[derive(Serialize, Default)]
pub struct BundleLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<crate::error::ErrorClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub status: &'static str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub summary: Option<crate::image::bundle::ImportSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// How many were removed.
#[derive(Serialize)]
pub struct Removed {
    pub removed: usize,
}

/// Docker Hub's mirrors, in the order they are tried.
#[derive(Serialize)]
pub struct Mirrors {
    pub mirrors: Vec<String>,
}

/// Who is logged in.
#[derive(Serialize)]
pub struct Session {
    pub anonymous: bool,
    #[serde(rename = "isAdmin")]
    pub is_admin: bool,
    pub logintime: String,
    pub username: String,
}

/// Who logged out.
#[derive(Serialize)]
pub struct LoggedOut {
    pub username: String,
}

/// A token, shown this once.
#[derive(Serialize)]
pub struct NewToken {
    pub created_at: i64,
    pub id: i64,
    pub name: String,
    pub token: String,
}

/// A background task.
#[derive(Serialize)]
pub struct Task {
    pub category: &'static str,
    pub deletable: bool,
    pub detail_state: String,
    pub end: Option<i64>,
    pub id: u64,
    pub init: i64,
    pub message: Option<String>,
    pub name: String,
    /// The task's parameters as its creator sent them.
    pub params: Value,
    /// -1 while unknown, else 0–100.
    pub progress: i64,
    /// 0 completed, 1 failed, -1 not ended.
    pub result: i64,
    pub start: Option<i64>,
    pub state: &'static str,
    pub user: String,
}

/// A page of the event log: `index` the first number it holds, `offset` the number to ask from next.
#[derive(Serialize)]
pub struct EventPage {
    pub index: u64,
    pub messages: Vec<String>,
    pub offset: u64,
}

/// An event in the station's words: each action fills the fields it has.
#[derive(Serialize, Default)]
pub struct Event {
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who held the pins a forced delete released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reclaimed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// The station's error shape: `{"error": {"code": N, "message": "…"}}`.
#[derive(Serialize)]
pub struct Error<'a> {
    pub error: ErrorBody<'a>,
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub code: u16,
    pub message: &'a str,
}
