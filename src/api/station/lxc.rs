//! The station API's LXC templates (type `lxc` of the image routes, and `unpack`/`convert` in the same style;
//! docs/station-api.md). A template `DIST/RELEASE/ARCH/VARIANT` is `name` `DIST/RELEASE/ARCH` with `tag`
//! `VARIANT`, so it fits the `{name…}/{tag}` routes of images.

use super::dto::{Deleted, Item, Listing, LocalTemplate, Offer, Rootfs, Started, Template};
use super::{blocking, ok, require_admin, Answer, Caller, Station, StationError};
use crate::auth::Principal;
use crate::http::{query_get, query_pairs, read_body, Req, MAX_SMALL_BODY};
use crate::lxc::service::UnpackRequest;
use crate::lxc::sources::Available;
use crate::lxc::LxcError;
use crate::store::db::LxcTemplateRow;
use hyper::StatusCode;
use serde_json::Value;

/// `DIST/RELEASE/ARCH` + `VARIANT` of the routes.
fn template_name(name: &str, tag: &str) -> String {
    if tag.is_empty() {
        name.to_string()
    } else {
        format!("{name}/{tag}")
    }
}

/// A kept template as the `local` list shows it.
pub fn local_item(t: &LxcTemplateRow, downloading: bool, pinned_by: Vec<String>) -> LocalTemplate {
    let meta: crate::lxc::meta::Meta = serde_json::from_str(&t.meta).unwrap_or_default();
    LocalTemplate {
        arch: t.arch.clone(),
        build: t.build.clone(),
        created: t.created_at,
        description: meta.create_message.as_deref().map(str::trim).unwrap_or("").to_string(),
        downloading,
        icon: "",
        installed: true,
        name: format!("{}/{}/{}", t.dist, t.release, t.arch),
        pinned_by: [pinned_by],
        repository: "local",
        size: [t.rootfs_size],
        source: t.source.clone(),
        tags: [t.variant.clone()],
        kind: "lxc",
    }
}

fn offer_item(a: &Available) -> Item {
    let o = &a.offer;
    Item::Offer(Offer {
        arch: o.name.arch.clone(),
        build: o.build.clone(),
        description: o.title.clone(),
        downloading: false,
        installed: a.installed,
        location: o.rootfs.url.clone(),
        name: format!("{}/{}/{}", o.name.dist, o.name.release, o.name.arch),
        repository: a.source.clone(),
        sha256: o.rootfs.sha256.as_ref().map(|d| d.to_string()),
        size: o.rootfs.size,
        tags: [o.name.variant.clone()],
        title: o.title.clone(),
        kind: "lxc",
    })
}

/// `category=local&type=lxc`: the kept templates matching `needle`.
pub async fn local(st: &Station, needle: String) -> Result<Vec<Item>, StationError> {
    let lxc = st.lxc.clone();
    let downloads = st.downloads.clone();
    let images = st.images.clone();
    blocking(move || -> Result<Vec<Item>, StationError> {
        let pins = super::pins::Pinned::of(images.pins.list(None)?);
        let busy: std::collections::HashSet<String> = downloads
            .status(200)?
            .into_iter()
            .filter(|d| d.row.kind == crate::store::db::DownloadKind::Lxc && !d.row.state.is_terminal())
            .map(|d| d.row.reference)
            .collect();
        Ok(lxc
            .templates()?
            .iter()
            .filter(|t| t.name.contains(&needle))
            .map(|t| {
                let held = pins.owners([&format!("lxc:{}", t.name)]);
                Item::Template(local_item(t, busy.contains(&t.name), held))
            })
            .collect())
    })
    .await
}

/// `category=lxc`: what the sources offer, for this NAS's architecture unless `arch=all` (or another).
pub async fn available(st: &Station, req: &Req, needle: String) -> Answer {
    let q = query_pairs(req.uri().query());
    let arch = query_get(&q, "arch").map(str::to_string);
    let source = query_get(&q, "source").map(str::to_string);
    let refresh = query_get(&q, "refresh").is_some_and(|v| v == "1" || v == "true");
    let lxc = st.lxc.clone();
    let list = blocking(move || lxc.sources.available(arch.as_deref(), source.as_deref(), refresh)).await?;
    let items: Vec<Item> = list
        .iter()
        .filter(|a| a.offer.name.to_string().contains(&needle) || a.offer.title.to_lowercase().contains(&needle))
        .map(offer_item)
        .collect();
    ok(&Listing::of("lxc", &needle, "lxc", items))
}

/// `GET /lxc/sources`: every source, its kind, URL, how many templates it offers, and whether its index came
/// from the server now or from the cache.
pub async fn sources(st: &Station, req: &Req) -> Answer {
    let q = query_pairs(req.uri().query());
    let refresh = query_get(&q, "refresh").is_some_and(|v| v == "1" || v == "true");
    let lxc = st.lxc.clone();
    ok(&blocking(move || lxc.sources.list(refresh)).await)
}

/// Start the download of a template from `repository` (a source's name; `qnap` is the vendor catalog).
pub async fn download(st: &Station, repository: &str, name: &str, tag: &str) -> Answer {
    let source = match repository {
        "qnap" | "catalog" => "catalog".to_string(),
        "" | "any" => String::new(),
        s => s.to_string(),
    };
    let name = template_name(name, tag);
    let lxc = st.lxc.clone();
    let job = blocking(move || lxc.pull(&name, Some(source.as_str()).filter(|s| !s.is_empty()))).await?;
    // a refusal (no room, no such file) is this request's answer when it comes at once
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Some(Err(e)) = job.outcome() {
            if !e.contains("paused") {
                return Err(StationError::new(StatusCode::BAD_GATEWAY, e));
            }
        }
        if job.outcome().is_some() || crate::transfer::progress::Running::live(job.as_ref()).done > 0 {
            break;
        }
        async_io::Timer::after(std::time::Duration::from_millis(50)).await;
    }
    Ok(crate::http::json(StatusCode::OK, &Started { id: job.download }))
}

pub async fn inspect(st: &Station, name: &str, tag: &str) -> Answer {
    let name = template_name(name, tag);
    let lxc = st.lxc.clone();
    let t = blocking(move || lxc.template(&name)).await?;
    let meta: Value = serde_json::from_str(&t.meta).unwrap_or(Value::Null);
    ok(&Template {
        arch: t.arch,
        build: t.build,
        created: t.created_at,
        dist: t.dist,
        meta,
        meta_digest: t.meta_digest.map(|d| d.to_string()),
        name: t.name,
        release: t.release,
        rootfs: Rootfs {
            digest: t.rootfs_digest.to_string(),
            size: t.rootfs_size,
        },
        source: t.source,
        kind: "lxc",
        variant: t.variant,
    })
}

pub async fn delete(st: &Station, path: &str) -> Answer {
    let lxc = st.lxc.clone();
    let path = path.to_string();
    let t = blocking(move || lxc.remove(&path)).await?;
    ok(&Deleted {
        deleted: t.name,
        freed: t.rootfs_size,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UnpackBody {
    dest: String,
    shift: Option<String>,
    #[serde(default)]
    unprivileged: bool,
}

/// `POST /image/lxc/{name…}/{tag}/unpack` `{"dest": "/abs/dir", "shift": "UID:GID:RANGE", "unprivileged":
/// bool}`: the container directory `dest` (rootfs, config). Over TCP an administrator only, and only into the
/// configured `lxc_dirs`; the trusted socket may name any absolute path.
pub async fn unpack(st: &Station, req: Req, caller: &Caller, name: &str, tag: &str) -> Answer {
    require_admin(caller)?;
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let b: UnpackBody =
        serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed unpack body: {e}")))?;
    let shift = match b.shift.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse().map_err(StationError::bad_request)?),
        None => None,
    };
    let local = matches!(caller.principal, Some(Principal::Local));
    let name = template_name(name, tag);
    let lxc = st.lxc.clone();
    let report = blocking(move || -> Result<_, LxcError> {
        let dest = std::path::PathBuf::from(&b.dest);
        // over TCP the destination is held from the check on: every step of the unpack goes through it
        let held = if local { None } else { Some(lxc.dest_allowed(&dest)?) };
        lxc.unpack_at(
            &name,
            &dest,
            &held.as_ref().map_or_else(|| dest.clone(), |h| h.path()),
            &UnpackRequest {
                shift,
                unprivileged: b.unprivileged,
            },
        )
    })
    .await?;
    ok(&report)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConvertBody {
    /// The template's name (`DIST/RELEASE[/ARCH[/VARIANT]]`); else `<repository>/<tag>/<arch>/docker`.
    name: Option<String>,
}

/// `POST /image/docker/{name…}/{tag}/convert`: a stored Docker image becomes an LXC template.
pub async fn convert(st: &Station, req: Req, caller: &Caller, name: &str, tag: &str) -> Answer {
    require_admin(caller)?;
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let b: ConvertBody = if body.iter().all(u8::is_ascii_whitespace) {
        ConvertBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed convert body: {e}")))?
    };
    let reference = format!("{name}:{tag}");
    let (images, lxc) = (st.images.clone(), st.lxc.clone());
    let row = blocking(move || -> Result<(LxcTemplateRow, Vec<String>), StationError> {
        let i = images.inspect(&reference)?;
        let src = crate::lxc::service::ConvertSource {
            reference: crate::reference::Reference::parse(&reference)
                .map(|r| r.familiar())
                .unwrap_or(reference.clone()),
            image_id: i.row.id.clone(),
            layers: i.layers.iter().map(|l| l.digest.clone()).collect(),
            config: i.config,
            architecture: i.row.architecture.clone(),
            variant: i.row.variant.clone(),
        };
        let scratch = images.scratch_path("convert");
        let row = lxc.convert(&src, b.name.as_deref(), &scratch)?;
        let held = super::pins::Pinned::of(images.pins.list(None)?).owners([&format!("lxc:{}", row.name)]);
        Ok((row, held))
    })
    .await?;
    ok(&local_item(&row.0, false, row.1))
}
