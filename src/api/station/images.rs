//! The image endpoints (spec §1.3): the list by category, inspect (local and remote), a repository's tags,
//! delete, and downloads to start, watch, pause, resume and cancel.

use super::dto::{
    CatalogItem, Done, DownloadItem, HubHit, Item, Listing, LocalImage, OfficialItem, RemoteImage, Settings, Started,
    Storage, Tags,
};
use super::{blocking, ok, require_admin, Answer, Caller, Station, StationError};
use crate::http::{query_get, query_pairs, read_body, Req, MAX_SMALL_BODY};
use crate::jobs::{DownloadSettings, DownloadStatus};
use crate::reference::Reference;
use crate::store::DownloadState;
use hyper::StatusCode;
use serde_json::Value;
use std::collections::BTreeMap;

/// Downloads `downloadstatus` lists, newest.
const STATUS_LIMIT: u32 = 200;

/// Whether a route's `{type}` is `lxc` (else `docker`; anything else is refused).
fn is_lxc(image_type: &str) -> Result<bool, StationError> {
    match image_type {
        "docker" => Ok(false),
        "lxc" => Ok(true),
        other => Err(StationError::bad_request(format!(
            "image type {other:?}: expected docker or lxc"
        ))),
    }
}

/// Routes that only Docker images have.
fn docker_only(image_type: &str) -> Result<(), StationError> {
    if is_lxc(image_type)? {
        return Err(StationError::bad_request("this route is for Docker images only"));
    }
    Ok(())
}

fn reference(name: &str, tag: &str) -> Result<Reference, StationError> {
    if name.is_empty() || tag.is_empty() {
        return Err(StationError::bad_request("an image name and a tag are needed"));
    }
    Reference::parse(&format!("{name}:{tag}")).map_err(|e| StationError::bad_request(e.to_string()))
}

/// A local tag: (tag, size, its image's row).
type LocalTag<'r> = (String, u64, &'r crate::store::db::ImageRow);

/// Local images grouped by repository: familiar name → its tags, sorted.
fn local_repos(rows: &[crate::store::db::ImageRow]) -> BTreeMap<String, Vec<LocalTag<'_>>> {
    let mut repos: BTreeMap<String, Vec<LocalTag<'_>>> = BTreeMap::new();
    for row in rows {
        for t in &row.tags {
            if let Ok(r) = Reference::parse(t) {
                if let Some(tag) = r.tag() {
                    repos
                        .entry(r.familiar_name())
                        .or_default()
                        .push((tag.to_string(), row.size, row));
                }
            }
        }
    }
    for tags in repos.values_mut() {
        tags.sort_by(|a, b| a.0.cmp(&b.0));
    }
    repos
}

/// Repositories (familiar names) a running download is fetching.
fn downloading(list: &[DownloadStatus]) -> std::collections::HashSet<String> {
    list.iter()
        .filter(|d| !d.row.state.is_terminal() && d.row.kind == crate::store::db::DownloadKind::Image)
        .filter_map(|d| Reference::parse(&d.row.reference).ok())
        .map(|r| r.familiar_name())
        .collect()
}

/// The categories of `GET /image`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Local,
    Lxc,
    Dockerhub,
    Qnap,
    Official,
}

/// `GET /image?category=&type=&filter_text=`, parsed.
struct ListQuery {
    category: Category,
    /// `docker`, `lxc` or empty (both), as asked: the answer repeats it.
    image_type: String,
    /// As asked; matched case-insensitively.
    filter: String,
}

impl ListQuery {
    fn parse(req: &Req) -> Result<ListQuery, StationError> {
        let q = query_pairs(req.uri().query());
        let image_type = query_get(&q, "type").unwrap_or("").to_string();
        if !matches!(image_type.as_str(), "" | "docker" | "lxc") {
            return Err(StationError::bad_request(format!(
                "type {image_type:?}: expected docker, lxc or nothing"
            )));
        }
        let category = match query_get(&q, "category").unwrap_or("local") {
            "local" => Category::Local,
            "lxc" => Category::Lxc,
            "dockerhub" => Category::Dockerhub,
            "qnap" => Category::Qnap,
            "official" => Category::Official,
            other => {
                return Err(StationError::bad_request(format!(
                    "category {other:?}: expected local, qnap, official, dockerhub or lxc"
                )))
            }
        };
        Ok(ListQuery {
            category,
            image_type,
            filter: query_get(&q, "filter_text").unwrap_or("").to_string(),
        })
    }

    fn category_name(&self) -> &'static str {
        match self.category {
            Category::Local => "local",
            Category::Lxc => "lxc",
            Category::Dockerhub => "dockerhub",
            Category::Qnap => "qnap",
            Category::Official => "official",
        }
    }

    fn listing(&self, results: Vec<Item>) -> Listing<Item> {
        Listing::of(self.category_name(), &self.filter, &self.image_type, results)
    }
}

pub async fn list(st: &Station, req: &Req) -> Answer {
    let q = ListQuery::parse(req)?;
    match q.category {
        Category::Local => ok(&q.listing(local(st, &q).await?)),
        Category::Lxc => super::lxc::available(st, req, q.filter.to_lowercase()).await,
        Category::Dockerhub => ok(&q.listing(hub(st, &q).await?)),
        Category::Qnap | Category::Official => catalog(st, &q).await,
    }
}

/// `category=local`: local repositories, then kept templates, matching the filter.
async fn local(st: &Station, q: &ListQuery) -> Result<Vec<Item>, StationError> {
    let needle = q.filter.to_lowercase();
    let templates = match q.image_type.as_str() {
        "docker" => Vec::new(),
        _ => super::lxc::local(st, needle.clone()).await?,
    };
    if q.image_type == "lxc" {
        return Ok(templates);
    }
    let images = st.images.clone();
    let downloads = st.downloads.clone();
    let mut docker = blocking(move || -> Result<Vec<Item>, StationError> {
        let rows = images.list()?;
        let busy = downloading(&downloads.status(STATUS_LIMIT)?);
        let pins = super::pins::Pinned::of(images.pins.list(None)?);
        let signers = images.signer_keys()?;
        Ok(local_repos(&rows)
            .into_iter()
            .filter(|(name, _)| name.to_lowercase().contains(&needle))
            .map(|(name, tags)| Item::Image(local_image(name, &tags, &busy, &pins, &signers)))
            .collect())
    })
    .await?;
    docker.extend(templates);
    Ok(docker)
}

/// A local repository with its tags (name order).
fn local_image(
    name: String,
    tags: &[LocalTag<'_>],
    busy: &std::collections::HashSet<String>,
    pins: &super::pins::Pinned,
    signers: &std::collections::HashMap<String, Vec<String>>,
) -> LocalImage {
    // a tag is held by the pins on it and on its image's digests in this repository
    let held = |(tag, _, row): &LocalTag<'_>| {
        let mine = |r: &&String| {
            let f = Reference::familiar_of(r);
            f == format!("{name}:{tag}") || f.split('@').next() == Some(name.as_str())
        };
        pins.owners(row.tags.iter().chain(&row.digests).filter(mine))
    };
    LocalImage {
        architecture: tags
            .iter()
            .map(|t| match &t.2.variant {
                Some(v) => format!("{}/{v}", t.2.architecture),
                None => t.2.architecture.clone(),
            })
            .collect(),
        created: tags.iter().map(|t| t.2.created).collect(),
        description: "",
        downloading: busy.contains(&name),
        icon: "",
        installed: true,
        is_latest: tags.iter().filter(|t| t.0 == "latest").map(|t| t.0.clone()).collect(),
        pinned_by: tags.iter().map(held).collect(),
        signed_by: tags
            .iter()
            .map(|t| signers.get(t.2.id.as_str()).cloned().unwrap_or_default())
            .collect(),
        name,
        repository: "local",
        size: tags.iter().map(|t| t.1).collect(),
        tags: tags.iter().map(|t| t.0.clone()).collect(),
        kind: "docker",
    }
}

/// `category=dockerhub`: a search of Docker Hub (or its mirror) for the filter.
async fn hub(st: &Station, q: &ListQuery) -> Result<Vec<Item>, StationError> {
    if q.image_type == "lxc" {
        return Ok(Vec::new());
    }
    let term = q.filter.trim().to_string();
    if term.is_empty() {
        return Err(StationError::bad_request(
            "filter_text is the search term of category dockerhub",
        ));
    }
    let images = st.images.clone();
    let downloads = st.downloads.clone();
    blocking(move || -> Result<Vec<Item>, StationError> {
        let hits = images.registries.search(&term, 25, None)?;
        let rows = images.list()?;
        let local = local_repos(&rows);
        let busy = downloading(&downloads.status(STATUS_LIMIT)?);
        Ok(hits
            .into_iter()
            .map(|h| {
                Item::Hub(HubHit {
                    description: h.description,
                    downloading: busy.contains(&h.name),
                    installed: local.contains_key(&h.name),
                    is_official: h.official,
                    is_trusted: false,
                    location: match h.official {
                        true => format!("https://hub.docker.com/_/{}", h.name),
                        false => format!("https://hub.docker.com/r/{}", h.name),
                    },
                    name: h.name,
                    repository: "dockerhub",
                    star_count: h.stars,
                    kind: "docker",
                })
            })
            .collect())
    })
    .await
}

/// `category=qnap|official`: the vendor's catalog for this NAS's architecture, and where it came from.
async fn catalog(st: &Station, q: &ListQuery) -> Answer {
    let images = st.images.clone();
    let downloads = st.downloads.clone();
    let fetcher = images.clone();
    let fetch: std::sync::Arc<crate::catalog::Fetch> = std::sync::Arc::new(move |url: &str, path: &std::path::Path| {
        fetcher.registries.download(url, path).map_err(|e| e.to_string())
    });
    let (entries, source) = st.catalog.entries(fetch);
    let official = q.category == Category::Official;
    let needle = q.filter.to_lowercase();
    let wanted = q.image_type.clone();
    let items = blocking(move || -> Result<Vec<Item>, StationError> {
        let arch = crate::catalog::arch_of(&images.default_platform());
        let rows = images.list()?;
        let local = local_repos(&rows);
        let busy = downloading(&downloads.status(STATUS_LIMIT)?);
        Ok(entries
            .iter()
            .filter(|e| e.arch == arch)
            .filter(|e| wanted.is_empty() || e.kind.as_str() == wanted)
            .filter(|e| !official || (e.kind == crate::catalog::Kind::Docker && !e.name.contains('/')))
            .filter(|e| {
                needle.is_empty()
                    || [&e.name, &e.title, &e.description]
                        .iter()
                        .any(|t| t.to_lowercase().contains(&needle))
            })
            .map(|e| catalog_item(e, official, &local, &busy))
            .collect())
    })
    .await?;
    let mut listing = q.listing(items);
    listing.source = Some(match source {
        crate::catalog::Source::Fetched => "fetched",
        crate::catalog::Source::Cached => "cached",
        crate::catalog::Source::Shipped => "shipped",
    });
    ok(&listing)
}

/// A catalog entry as the `qnap` or `official` category shows it (spec §1.3).
fn catalog_item(
    e: &crate::catalog::Entry,
    official: bool,
    local: &BTreeMap<String, Vec<LocalTag<'_>>>,
    busy: &std::collections::HashSet<String>,
) -> Item {
    let docker = e.kind == crate::catalog::Kind::Docker;
    // a Docker entry is installed when its repository has the catalog's version (any tag, when it names none)
    let installed = docker
        && local
            .get(&e.name)
            .is_some_and(|tags| e.version.is_empty() || tags.iter().any(|t| t.0 == e.version));
    let downloading = docker && busy.contains(&e.name);
    if official {
        return Item::Official(OfficialItem {
            arch: e.arch.clone(),
            description: e.description.clone(),
            downloading,
            icon: e.icon.clone(),
            installed,
            is_official: true,
            location: e.location.clone(),
            name: match e.version.is_empty() {
                true => e.name.clone(),
                false => format!("{}:{}", e.name, e.version),
            },
            repository: "dockerhub",
            title: e.title.clone(),
            kind: "docker",
            version: e.version.clone(),
        });
    }
    Item::Catalog(CatalogItem {
        arch: e.arch.clone(),
        description: e.description.clone(),
        downloading,
        icon: e.icon.clone(),
        inspect: if docker { String::new() } else { e.inspect.clone() },
        installed,
        location: e.location.clone(),
        name: e.name.clone(),
        repository: if docker {
            "dockerhub".into()
        } else {
            e.repository.clone()
        },
        size: None,
        title: e.title.clone(),
        kind: e.kind.as_str().to_string(),
        version: e.version.clone(),
    })
}

pub async fn inspect(st: &Station, image_type: &str, name: &str, tag: &str) -> Answer {
    if is_lxc(image_type)? {
        return super::lxc::inspect(st, name, tag).await;
    }
    let r = reference(name, tag)?;
    let images = st.images.clone();
    let i = blocking(move || images.inspect(&r.to_string())).await?;
    ok(&crate::api::engine::inspect::document(
        &i,
        crate::api::engine::ApiVersion::newest(),
    ))
}

/// The manifest and config a pull would fetch for this NAS's platform, and their compressed size, read from the
/// registry without pulling.
pub async fn remote_inspect(st: &Station, image_type: &str, name: &str, tag: &str) -> Answer {
    docker_only(image_type)?;
    let r = reference(name, tag)?;
    let images = st.images.clone();
    let (remote, platform) = blocking(move || {
        let platform = images.default_platform();
        images.registries.remote_image(&r, None, None).map(|x| (x, platform))
    })
    .await?;
    let doc = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap_or(Value::Null);
    ok(&RemoteImage {
        config: doc(&remote.config),
        digest: remote.digest.to_string(),
        manifest: doc(&remote.manifest),
        manifest_digest: remote.manifest_digest.to_string(),
        platform: platform.to_string(),
        size: remote.size,
    })
}

/// `…/dockerhub/docker/{is_official}/{name}/tags`: the registry's tags (every page) and which are local.
pub async fn tags(st: &Station, official: &str, name: &str) -> Answer {
    let name = match official {
        "1" if !name.contains('/') => format!("library/{name}"),
        "0" | "1" => name.to_string(),
        other => {
            return Err(StationError::bad_request(format!(
                "is_official {other:?}: expected 1 or 0"
            )))
        }
    };
    let r = Reference::parse(&name).map_err(|e| StationError::bad_request(e.to_string()))?;
    let images = st.images.clone();
    let (tags, local) = blocking(move || -> Result<_, StationError> {
        let tags = images.registries.remote_tags(&r, None)?;
        let rows = images.list()?;
        let local: Vec<String> = local_repos(&rows)
            .remove(&r.familiar_name())
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.0)
            .collect();
        Ok((tags, local))
    })
    .await?;
    let installed = local.into_iter().filter(|t| tags.contains(t)).collect();
    ok(&Tags { installed, tags })
}

/// `DELETE …/image/local/{type}/{name}[/{tag}]`: one tag, or every tag of the repository. A name may contain
/// `/`, so the last segment is a tag only if the repository before it has that tag.
pub async fn delete(st: &Station, image_type: &str, path: &str) -> Answer {
    if is_lxc(image_type)? {
        return super::lxc::delete(st, path).await;
    }
    if path.is_empty() {
        return Err(StationError::bad_request("an image name is needed"));
    }
    let images = st.images.clone();
    let path = path.to_string();
    blocking(move || -> Result<(), StationError> {
        let rows = images.list()?;
        let repos = local_repos(&rows);
        let targets: Vec<String> = match path.rsplit_once('/') {
            Some((name, tag)) if repos.get(name).is_some_and(|t| t.iter().any(|x| x.0 == tag)) => {
                vec![format!("{name}:{tag}")]
            }
            _ => match repos.get(&path) {
                Some(tags) => tags.iter().map(|t| format!("{path}:{}", t.0)).collect(),
                None => match path.split_once(':').filter(|_| !path.contains('/')) {
                    Some(_) if images.inspect(&path).is_ok() => vec![path.clone()],
                    _ => {
                        return Err(StationError::new(
                            StatusCode::NOT_FOUND,
                            format!("Image not found: {path}"),
                        ))
                    }
                },
            },
        };
        for t in targets {
            images.delete(&t, false)?;
        }
        Ok(())
    })
    .await?;
    ok(&Done {})
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DownloadBody {
    #[allow(dead_code)]
    description: Option<String>,
    #[allow(dead_code)]
    location: Option<String>,
    #[allow(dead_code)]
    icon: Option<String>,
    /// For `repository` `private`: the registry record (by name) the image is in.
    registry_name: Option<String>,
}

/// Start a persistent download and answer at once (`{"id": …}`): its progress is in `downloadstatus`. A
/// download that cannot fit is refused here, before it starts.
pub async fn download(st: &Station, req: Req, repository: &str, image_type: &str, name: &str, tag: &str) -> Answer {
    if is_lxc(image_type)? {
        return super::lxc::download(st, repository, name, tag).await;
    }
    let q = query_pairs(req.uri().query());
    let query_registry = query_get(&q, "registry_name").map(str::to_string);
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let b: DownloadBody = if body.iter().all(u8::is_ascii_whitespace) {
        DownloadBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed download body: {e}")))?
    };
    let r = match repository {
        "dockerhub" => reference(name, tag)?,
        "private" => {
            let reg = b
                .registry_name
                .or(query_registry)
                .ok_or_else(|| StationError::bad_request("repository private needs a registry_name"))?;
            reference(&format!("{}/{name}", st.registry_host(reg).await?), tag)?
        }
        "qnap" => {
            return Err(StationError::bad_request(
                "repository qnap holds LXC templates: use type lxc",
            ))
        }
        other => {
            return Err(StationError::bad_request(format!(
                "repository {other:?}: expected dockerhub, qnap or private"
            )))
        }
    };
    let job = st.start_download(r).await?;
    // Wait until the download is planned (its manifest resolved, its size checked against the free space) or
    // has failed, so that a refusal is this request's answer; a slow registry gets a short wait at most.
    let mut cursor = 0;
    let planned = async {
        loop {
            let batch = job.next(&mut cursor).await;
            if let Some(Err(e)) = batch.outcome {
                return Err(StationError::from(e.as_ref()));
            }
            if batch.outcome.is_some() || !batch.events.is_empty() {
                return Ok(());
            }
        }
    };
    let timeout = async {
        async_io::Timer::after(std::time::Duration::from_secs(10)).await;
        Ok(())
    };
    futures_lite::future::or(planned, timeout).await?;
    Ok(crate::http::json(StatusCode::OK, &Started { id: job.download }))
}

fn status_name(d: &DownloadStatus, window_closed: bool) -> &'static str {
    match (d.row.state, d.row.paused) {
        (DownloadState::Committed, _) => "complete",
        (DownloadState::Failed, _) => "failed",
        (_, true) => "paused",
        (DownloadState::Queued, _) => "waiting",
        (DownloadState::Fetching, _) if d.running && window_closed => "waiting",
        (DownloadState::Fetching | DownloadState::Verifying, _) if d.running => "downloading",
        // unfinished, not paused, no job: about to be resumed
        (DownloadState::Fetching | DownloadState::Verifying, _) => "waiting",
    }
}

/// The downloads as `downloadstatus` shows them, newest first.
fn status_items(list: &[DownloadStatus], settings: &DownloadSettings) -> Vec<DownloadItem> {
    let waiting_why = settings
        .window
        .filter(|_| settings.closed)
        .map(|w| format!("outside the download window {w}"));
    list.iter()
        .rev()
        .map(|d| {
            let status = status_name(d, settings.closed);
            let lxc = d.row.kind == crate::store::db::DownloadKind::Lxc;
            let (name, tag) = match Reference::parse(&d.row.reference) {
                // DIST/RELEASE/ARCH and VARIANT, as the lxc routes name them
                _ if lxc => match d.row.reference.rsplit_once('/') {
                    Some((n, v)) => (n.to_string(), v.to_string()),
                    None => (d.row.reference.clone(), String::new()),
                },
                Ok(r) => (
                    r.familiar_name(),
                    r.tag()
                        .map(str::to_string)
                        .or(r.digest().map(|x| x.to_string()))
                        .unwrap_or_default(),
                ),
                Err(_) => (d.row.reference.clone(), String::new()),
            };
            let percent = match (d.row.state, d.total) {
                (DownloadState::Committed, _) => Some(100.0),
                (_, Some(t)) if t > 0 => Some(((d.done as f64 / t as f64) * 1000.0).floor() / 10.0),
                _ => None,
            };
            DownloadItem {
                bytes_done: d.done,
                bytes_total: d.total,
                created_at: d.row.created_at,
                id: d.row.id,
                message: match status {
                    "failed" => d.row.error.clone(),
                    "waiting" => waiting_why.clone(),
                    _ => None,
                },
                name,
                percent,
                rate: d.rate,
                status,
                tag,
                kind: if lxc { "lxc" } else { "docker" },
                updated_at: d.row.updated_at,
            }
        })
        .collect()
}

/// Every recent download: name, tag, type, percent (null only while the total is unknown), bytes, rate,
/// status and, for a failed one, why.
pub async fn download_status(st: &Station) -> Answer {
    let downloads = st.downloads.clone();
    let (list, settings) = blocking(move || downloads.status(STATUS_LIMIT).map(|l| (l, downloads.settings()))).await?;
    ok(&status_items(&list, &settings))
}

/// How often the event stream reads the downloads while one runs (its bytes and rate live in memory), and how
/// long it may stay silent.
const STREAM_TICK: std::time::Duration = std::time::Duration::from_millis(500);
const STREAM_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);
/// After a wake-up, how long to let the rest of a burst of writes (a pull's end records several) arrive.
const STREAM_SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// `GET /image/downloads/events`: server-sent events, `downloads` (the `downloadstatus` list) whenever it
/// changes and `space` when a download ends; a comment every 15 s keeps proxies from closing it. The browser's
/// EventSource reconnects by itself (after 2 s), also across a daemon restart.
///
/// While a download runs the list is read every [`STREAM_TICK`]; while none runs the stream sleeps until the
/// database records a change (or the keep-alive is due), so an open page costs nothing on an idle NAS.
pub async fn download_events(st: &Station) -> Answer {
    let (tx, rx) = async_channel::bounded::<bytes::Bytes>(4);
    let downloads = st.downloads.clone();
    smol::spawn(async move {
        if tx.send(bytes::Bytes::from_static(b"retry: 2000\n\n")).await.is_err() {
            return;
        }
        let mut last = String::new();
        let mut ended = 0usize;
        let mut quiet = std::time::Instant::now();
        loop {
            let changed = downloads.changed().listen();
            let d = downloads.clone();
            let items = blocking(move || d.status(STATUS_LIMIT).map(|l| (l, d.settings()))).await;
            let Ok((list, settings)) = items else {
                async_io::Timer::after(STREAM_TICK).await;
                continue;
            };
            let running = list.iter().any(|d| d.running);
            let items = status_items(&list, &settings);
            let text = serde_json::to_string(&items).unwrap_or_default();
            let done = items
                .iter()
                .filter(|i| matches!(i.status, "complete" | "failed"))
                .count();
            let mut out = String::new();
            if text != last {
                out.push_str(&format!("event: downloads\ndata: {text}\n\n"));
                last = text;
            }
            if done != ended {
                out.push_str("event: space\ndata: {}\n\n");
                ended = done;
            }
            if out.is_empty() && quiet.elapsed() >= STREAM_KEEPALIVE {
                out.push_str(": keep-alive\n\n");
            }
            if !out.is_empty() {
                quiet = std::time::Instant::now();
                if tx.send(bytes::Bytes::from(out)).await.is_err() {
                    return; // the client went away
                }
            }
            if running {
                async_io::Timer::after(STREAM_TICK).await;
            } else {
                let due = STREAM_KEEPALIVE.saturating_sub(quiet.elapsed());
                let woken = futures_lite::future::or(
                    async {
                        changed.await;
                        true
                    },
                    async {
                        async_io::Timer::after(due).await;
                        false
                    },
                )
                .await;
                if woken {
                    async_io::Timer::after(STREAM_SETTLE).await;
                }
            }
        }
    })
    .detach();
    let mut r = crate::http::streaming(StatusCode::OK, "text/event-stream", rx);
    r.headers_mut()
        .insert("cache-control", "no-cache".parse().expect("static"));
    Ok(r)
}

/// `GET /storage`: the volume's free and total bytes and what depot's store takes.
pub async fn storage(st: &Station) -> Answer {
    let images = st.images.clone();
    let (free, total, depot) = blocking(move || images.storage()).await?;
    ok(&Storage { depot, free, total })
}

fn download_id(id: &str) -> Result<i64, StationError> {
    id.parse()
        .map_err(|_| StationError::bad_request(format!("download id {id:?} is not a number")))
}

pub async fn pause(st: &Station, id: &str) -> Answer {
    let id = download_id(id)?;
    let downloads = st.downloads.clone();
    blocking(move || downloads.pause(id)).await?;
    ok(&Done {})
}

pub async fn resume(st: &Station, id: &str) -> Answer {
    let id = download_id(id)?;
    let downloads = st.downloads.clone();
    blocking(move || downloads.resume(id)).await?;
    ok(&Done {})
}

pub async fn cancel(st: &Station, id: &str) -> Answer {
    let id = download_id(id)?;
    let downloads = st.downloads.clone();
    blocking(move || downloads.cancel(id)).await?;
    ok(&Done {})
}

fn settings_json(s: &DownloadSettings) -> Settings {
    Settings {
        bandwidth_limit: s.bandwidth_limit,
        local_time: format!("{:02}:{:02}", s.local_minute / 60, s.local_minute % 60),
        window: s.window.map(|w| w.to_string()),
        window_open: !s.closed,
    }
}

pub async fn settings(st: &Station) -> Answer {
    let downloads = st.downloads.clone();
    ok(&settings_json(&blocking(move || downloads.settings()).await))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    /// Bytes per second (a number, or text such as "2M"); 0 is no limit.
    bandwidth_limit: Option<Value>,
    /// "HH:MM-HH:MM" in local time; null or "" is always.
    #[serde(default, deserialize_with = "present")]
    window: Option<Option<String>>,
}

/// Tell a JSON `null` (present: clear it) from an absent key (leave it).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(serde::Deserialize::deserialize(d)?))
}

pub async fn set_settings(st: &Station, req: Req, caller: &Caller) -> Answer {
    require_admin(caller)?;
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let b: SettingsBody =
        serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed settings: {e}")))?;
    let limit = match b.bandwidth_limit {
        None => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| StationError::bad_request("bandwidth_limit: a whole number of bytes per second"))?,
        ),
        Some(Value::String(s)) => Some(
            crate::config::rate(&s)
                .ok_or_else(|| StationError::bad_request(format!("bandwidth_limit {s:?}: e.g. 2M or 500k")))?,
        ),
        Some(other) => return Err(StationError::bad_request(format!("bandwidth_limit {other}: a number"))),
    };
    let window = match b.window {
        None => None,
        Some(None) => Some(None),
        Some(Some(w)) if w.trim().is_empty() => Some(None),
        Some(Some(w)) => Some(Some(w.parse().map_err(
            |e: crate::transfer::throttle::WindowError| StationError::bad_request(e.to_string()),
        )?)),
    };
    let downloads = st.downloads.clone();
    let s = blocking(move || downloads.set_settings(limit, window)).await?;
    ok(&settings_json(&s))
}
