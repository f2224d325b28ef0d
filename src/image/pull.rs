//! Pull: resolve a reference to one image manifest, fetch its config and layers, commit the image and its refs.
//!
//! A pull is a persistent job (`downloads` row): `queued → fetching → verifying → committed | failed`. What the
//! tag resolved to is recorded before any layer is fetched, so a pull resumed after a crash fetches exactly the
//! same image, from the bytes already on disk.

use super::error::{pull_error, ImageError};
use super::job::{LayerStatus, PullEvent, PullJob, PullOutcome};
use super::ImageService;
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::manifest::{parse_config, parse_manifest, ImageConfig, ImageManifest, Manifest};
use crate::registry::{Credentials, Repo};
use crate::store::db::{LayerRecord, NewImage, RefKind};
use crate::store::DownloadState;
use crate::sync::Locked;
use crate::transfer::{LayerJob, LayerUpdate, TransferError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Image configs are small JSON documents; anything larger is hostile.
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullSpec {
    /// Has a tag or a digest.
    pub reference: Reference,
    /// `None`: the daemon's default platform.
    pub platform: Option<Platform>,
    pub creds: Option<Credentials>,
}

impl PullSpec {
    /// Jobs with the same key are one download: a second client follows the first.
    pub fn key(&self) -> String {
        format!(
            "{}|{}",
            self.reference,
            self.platform.as_ref().map(|p| p.to_string()).unwrap_or_default()
        )
    }
}

pub(crate) fn serialize_creds(c: &Option<Credentials>) -> Option<String> {
    c.as_ref().map(|c| {
        serde_json::json!({"username": c.username, "password": c.password, "identitytoken": c.identity_token})
            .to_string()
    })
}

pub(crate) fn deserialize_creds(s: &str) -> Option<Credentials> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Some(Credentials {
        username: get("username").unwrap_or_default(),
        password: get("password").unwrap_or_default(),
        identity_token: get("identitytoken"),
    })
}

/// Run a pull job to its end on the current (blocking) thread and record the outcome.
/// The outcome reaches the job's followers only once the database records it.
pub(crate) fn run(svc: &ImageService, job: &PullJob, spec: &PullSpec) {
    let r = pull(svc, job, spec);
    // A user's stop is the outcome, whatever error the stop made the transfer end with.
    let r = match (r, job.stopped()) {
        (Err(_), Some(super::job::Stop::Pause)) => {
            // the download stays unfinished in the database, held: resumed when the user says so
            log::info!("download {} of {} paused", job.download, spec.reference);
            job.finish(Err(std::sync::Arc::new(ImageError::Paused {
                reference: spec.reference.to_string(),
            })));
            return;
        }
        (Err(_), Some(super::job::Stop::Cancel)) => Err(ImageError::Cancelled {
            reference: spec.reference.to_string(),
        }),
        (r, _) => r,
    };
    if let (Ok(_), Some(engine)) = (&r, svc.handoff_to.get()) {
        // A hand-off that fails does not fail the pull: the image is in depot either way.
        match svc.handoff(&[spec.reference.to_string()], engine) {
            Ok(lines) => job.emit(PullEvent::HandedOff(lines)),
            Err(e) => {
                log::warn!("{e}");
                job.emit(PullEvent::HandoffFailed(e.to_string()));
            }
        }
    }
    let r = r.map_err(|e| {
        let msg = e.to_string();
        log::warn!("pull of {} failed: {msg}", spec.reference);
        svc.events.emit(
            crate::events::Action::PullFailed,
            spec.reference.familiar(),
            std::collections::BTreeMap::from([
                ("name".to_string(), spec.reference.familiar_name()),
                ("error".to_string(), msg.clone()),
            ]),
        );
        match svc
            .db
            .downloads()
            .set_download_state(job.download, DownloadState::Failed, Some(&msg))
        {
            Ok(()) => e,
            Err(db) => {
                log::error!("recording the failure of download {}: {db}", job.download);
                ImageError::Unrecorded { error: msg, db }
            }
        }
    });
    job.finish(r.map_err(std::sync::Arc::new));
}

/// Pull through the registry's mirrors in order (anonymously), then from the registry itself: the first that
/// completes wins. Bytes a failed mirror left in `ingest/` are resumed from by the next endpoint (same digests).
/// A mirror's image the policy refused is tried at the next endpoint (the registry may hold the signature the
/// mirror lacks); when the registry itself cannot be reached, the refusal is the answer, not the network's.
fn pull(svc: &ImageService, job: &PullJob, spec: &PullSpec) -> Result<PullOutcome, ImageError> {
    let r = &spec.reference;
    let mut refused_at_mirror = None;
    for mirror in svc.registry.mirrors_of(r.domain()) {
        let repo = svc.registry.repo(&mirror, r.path(), None);
        match pull_from(svc, job, spec, &repo) {
            Ok(o) => return Ok(o),
            Err(e) if volume_full(&e) || matches!(e, ImageError::NoSpace { .. }) || job.stopped().is_some() => {
                return Err(e)
            }
            Err(e) => {
                log::warn!("mirror {mirror} of {}: {e}; trying the next endpoint", r.domain());
                // a failed layer cancels its siblings; the next endpoint starts afresh
                job.cancel.store(false, Ordering::Relaxed);
                if let ImageError::Refused { names, why } = e {
                    refused_at_mirror.get_or_insert((mirror, names, why));
                }
            }
        }
    }
    let repo = svc.registry.repo(r.domain(), r.path(), spec.creds.clone());
    match (pull_from(svc, job, spec, &repo), refused_at_mirror) {
        (Err(e), Some((mirror, names, why))) if e.class() == crate::error::ErrorClass::Unavailable => {
            Err(ImageError::Refused {
                names,
                why: format!("{why} (as mirror {mirror} serves it; {} itself: {e})", r.domain()),
            })
        }
        (result, _) => result,
    }
}

/// A full volume is full whichever endpoint the bytes come from.
fn volume_full(e: &ImageError) -> bool {
    use crate::store::BlobError;
    let full =
        |b: &BlobError| matches!(b, BlobError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull);
    match e {
        ImageError::Blob(b) | ImageError::Transfer(TransferError::Blob(b)) => full(b),
        _ => false,
    }
}

/// What a reference resolved to: the manifest named (an index or the image manifest), every manifest on the
/// way with its media type, and the image manifest for the platform.
struct Resolved {
    digest: Digest,
    manifests: Vec<(Digest, String)>,
    manifest_digest: Digest,
    manifest: ImageManifest,
}

// Every blob a pull needs is recorded as the download's before it is stored or relied on (`own`), so that a GC
// (an `rm` of another image) never takes it while the image does not exist yet.
fn pull_from(svc: &ImageService, job: &PullJob, spec: &PullSpec, repo: &Repo) -> Result<PullOutcome, ImageError> {
    let r = &spec.reference;
    let row = svc
        .db
        .downloads()
        .download(job.download)?
        .ok_or_else(|| ImageError::InvalidParameter("download vanished".into()))?;
    let tag_or_digest = match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let want = spec.platform.clone().unwrap_or_else(|| svc.platform.clone());
    // 1. Resolve: reuse what a previous run of this download recorded, else ask the registry.
    let res = resolve(svc, job, repo, r, &tag_or_digest, row.resolved_digest.as_ref(), &want)?;
    let signatures = super::signatures::fetch_and_judge(svc, job, repo, r, &res.digest)?;
    plan(svc, job, r, &res, tag_or_digest)?;
    // 2. The config: small, fetched whole and verified.
    let cfg_digest = res.manifest.config.digest.clone();
    let cfg = config(svc, job, repo, &res.manifest)?;
    if spec.platform.is_some() && !want.matches(&cfg.platform) {
        job.emit(PullEvent::PlatformMismatch {
            reference: r.familiar(),
            found: cfg.platform.to_string(),
            wanted: want.to_string(),
        });
    }
    // 3. Refs this pull sets; the layers, unless the image is here whole.
    let refs = pull_refs(r, &res.digest);
    let (kept, up_to_date) = kept_image(svc, &cfg_digest, &refs)?;
    let layers = match kept {
        Some(layers) => layers,
        None => fetch_layers(svc, job, repo, &res.manifest, &cfg.diff_ids)?,
    };
    // 4. Commit: image rows and refs in one transaction, only now that every blob is committed.
    svc.db
        .downloads()
        .set_download_state(job.download, DownloadState::Verifying, None)?;
    svc.admit(super::admit::Candidate {
        image: new_image(&cfg_digest, &res.manifest_digest, res.manifests, &cfg, layers),
        refs,
        entry: super::admit::Entry::Pull { download: job.download },
        signatures,
    })?;
    svc.events.emit(
        crate::events::Action::Pull,
        r.familiar(),
        svc.event_attrs(&cfg_digest, &r.familiar_name()),
    );
    job.emit(PullEvent::Digest(res.digest));
    job.emit(PullEvent::Finished {
        reference: r.familiar(),
        up_to_date,
    });
    Ok(PullOutcome {
        image_id: cfg_digest,
        up_to_date,
    })
}

/// The manifest `tag_or_digest` names (the one a previous run recorded, when it is still in the store), and
/// through an index the image manifest for `want`; each stored as it is fetched.
fn resolve(
    svc: &ImageService,
    job: &PullJob,
    repo: &Repo,
    r: &Reference,
    tag_or_digest: &str,
    recorded: Option<&Digest>,
    want: &Platform,
) -> Result<Resolved, ImageError> {
    let resolve_error = |e| pull_error(e, &r.familiar(), &r.familiar_name());
    let max = svc.registry.options().max_manifest_bytes;
    let (resolved, top) = match recorded.filter(|d| svc.store.contains(d)) {
        Some(d) => (d.clone(), parse_manifest(&svc.store.read(d, max)?, None)?),
        None => {
            let fm = repo.manifest(tag_or_digest).map_err(resolve_error)?;
            own(svc, job.download, &fm.digest, fm.bytes.len() as u64)?;
            svc.store.put(&fm.digest, &fm.bytes)?;
            (fm.digest, fm.manifest)
        }
    };
    let idx = match top {
        Manifest::Image(m) => {
            return Ok(Resolved {
                manifests: vec![(resolved.clone(), m.media_type.clone())],
                manifest_digest: resolved.clone(),
                digest: resolved,
                manifest: m,
            })
        }
        Manifest::Index(idx) => idx,
    };
    let entry = idx.select(want)?;
    let d = entry.digest.clone();
    let bytes = match own(svc, job.download, &d, entry.size)? {
        true => svc.store.read(&d, max)?,
        false => {
            let fm = repo.manifest(d.as_str()).map_err(resolve_error)?;
            svc.store.put(&fm.digest, &fm.bytes)?;
            fm.bytes
        }
    };
    match parse_manifest(&bytes, Some(&entry.media_type))? {
        Manifest::Image(m) => Ok(Resolved {
            manifests: vec![
                (resolved.clone(), idx.media_type.clone()),
                (d.clone(), m.media_type.clone()),
            ],
            manifest_digest: d,
            digest: resolved,
            manifest: m,
        }),
        Manifest::Index(_) => Err(ImageError::InvalidParameter(format!(
            "index {resolved} points at another index"
        ))),
    }
}

/// Record what the download resolved to and every blob it fetches: its total counts from the first byte, and
/// one that cannot fit is refused before it takes any room. Then it is fetching.
fn plan(svc: &ImageService, job: &PullJob, r: &Reference, res: &Resolved, id: String) -> Result<(), ImageError> {
    let downloads = svc.db.downloads();
    downloads.set_download_resolved(job.download, &res.digest, &res.manifest_digest)?;
    let blobs: Vec<(Digest, u64)> = std::iter::once(&res.manifest.config)
        .chain(&res.manifest.layers)
        .map(|d| (d.digest.clone(), d.size))
        .collect();
    downloads.plan_download_blobs(job.download, &blobs)?;
    check_space(svc, &r.familiar(), &blobs)?;
    svc.db
        .downloads()
        .set_download_state(job.download, DownloadState::Fetching, None)?;
    job.emit(PullEvent::PullingFrom {
        path: r.path().to_string(),
        id,
    });
    Ok(())
}

/// The image config `m` names, from the store or fetched whole (it is small) and verified; its diff_ids must
/// match the layers.
fn config(svc: &ImageService, job: &PullJob, repo: &Repo, m: &ImageManifest) -> Result<ImageConfig, ImageError> {
    let d = &m.config.digest;
    let bytes = if own(svc, job.download, d, m.config.size)? {
        svc.store.read(d, MAX_CONFIG_BYTES)?
    } else {
        if m.config.size > MAX_CONFIG_BYTES {
            return Err(ImageError::InvalidParameter(format!(
                "image config {d} declares {} bytes, over the limit of {MAX_CONFIG_BYTES}",
                m.config.size
            )));
        }
        let b = repo.blob_bytes(d, MAX_CONFIG_BYTES)?;
        svc.store.put(d, &b)?;
        b
    };
    let cfg = parse_config(&bytes)?;
    if cfg.diff_ids.len() != m.layers.len() {
        return Err(crate::registry::manifest::ManifestError::LayerCount {
            diff_ids: cfg.diff_ids.len(),
            layers: m.layers.len(),
        }
        .into());
    }
    Ok(cfg)
}

/// The refs a pull of `r` sets: the digest it resolved to, and its tag when it was asked by tag.
pub(crate) fn pull_refs(r: &Reference, resolved: &Digest) -> Vec<(String, String, RefKind)> {
    let mut refs = vec![(format!("{}@{resolved}", r.name()), r.name(), RefKind::Digest)];
    if let (Some(t), None) = (r.tag(), r.digest()) {
        refs.push((format!("{}:{t}", r.name()), r.name(), RefKind::Tag));
    }
    refs
}

/// The layers of image `id` when it is here whole, and whether the pull's refs name it already ("up to date").
/// An image is whole only while every layer is in the store: one found corrupt was put aside, and this pull
/// fetches it again.
fn kept_image(
    svc: &ImageService,
    id: &Digest,
    refs: &[(String, String, RefKind)],
) -> Result<(Option<Vec<LayerRecord>>, bool), ImageError> {
    let images = svc.db.images();
    let kept = match images.has_image(id)? {
        true => Some(images.image_layers(id)?).filter(|ls| ls.iter().all(|l| svc.store.contains(&l.digest))),
        false => None,
    };
    // the tag when there is one, else the digest ref
    let named = refs.iter().find(|x| x.2 == RefKind::Tag).unwrap_or(&refs[0]);
    let up_to_date = kept.is_some() && images.resolve_ref(&named.0)?.as_ref() == Some(id);
    Ok((kept, up_to_date))
}

/// The rows of an image, from its config (`id` is the config's digest) and its layers.
pub(crate) fn new_image(
    id: &Digest,
    manifest_digest: &Digest,
    manifests: Vec<(Digest, String)>,
    cfg: &ImageConfig,
    layers: Vec<LayerRecord>,
) -> NewImage {
    NewImage {
        id: id.clone(),
        manifest_digest: manifest_digest.clone(),
        manifests,
        os: cfg.platform.os.clone(),
        architecture: cfg.platform.architecture.clone(),
        variant: cfg.platform.variant.clone(),
        created: cfg.created,
        labels: cfg
            .labels
            .as_ref()
            .map(|l| serde_json::to_string(l).unwrap_or_default()),
        layers,
    }
}

/// Fetch one layer, its progress and state told to the job; one that fails cancels the job, so that the
/// others stop (their bytes stay for a retry).
fn fetch_one(
    svc: &ImageService,
    job: &PullJob,
    repo: &Repo,
    desc: &crate::oci::Descriptor,
    diff: &Digest,
    discard: &AtomicBool,
) -> Result<LayerRecord, TransferError> {
    let id = desc.digest.short().to_string();
    let lj = LayerJob {
        repo,
        desc,
        diff_id: diff,
        download: job.download,
        cancel: &job.cancel,
        discard,
    };
    let r = svc.transfers.fetch_layer(&svc.db, &lj, &mut |u| match u {
        LayerUpdate::Waiting => job.layer(&id, LayerStatus::Waiting),
        LayerUpdate::Progress { current, total } => job.progress(&id, current, total),
        LayerUpdate::Retrying { seconds } => job.layer(&id, LayerStatus::Retrying(seconds)),
        LayerUpdate::Verifying => job.layer(&id, LayerStatus::VerifyingChecksum),
    });
    match &r {
        Ok(_) => {
            job.layer(&id, LayerStatus::DownloadComplete);
            job.layer(&id, LayerStatus::PullComplete);
        }
        Err(_) => job.cancel.store(true, Ordering::Relaxed),
    }
    r
}

/// Fetch every missing layer with a pool of workers, the daemon-wide slot limit applying on top.
fn fetch_layers(
    svc: &ImageService,
    job: &PullJob,
    repo: &Repo,
    m: &ImageManifest,
    diff_ids: &[Digest],
) -> Result<Vec<LayerRecord>, ImageError> {
    let mut done: HashMap<Digest, LayerRecord> = HashMap::new();
    let mut todo = Vec::new();
    let mut seen = HashSet::new();
    for (desc, diff) in m.layers.iter().zip(diff_ids) {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        let id = desc.digest.short().to_string();
        own(svc, job.download, &desc.digest, desc.size)?;
        match svc.transfers.present(&svc.db, desc, diff)? {
            Some(rec) => {
                job.layer(&id, LayerStatus::AlreadyExists);
                done.insert(desc.digest.clone(), rec);
            }
            None => {
                job.layer(&id, LayerStatus::PullingFsLayer);
                todo.push((desc, diff));
            }
        }
    }
    let workers = svc.concurrency.min(todo.len()).max(1);
    for (desc, _) in todo.iter().skip(workers) {
        job.layer(desc.digest.short(), LayerStatus::Waiting);
    }
    let discard = AtomicBool::new(false);
    let queue = Mutex::new(todo.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let next = queue.locked().next();
                let Some((desc, diff)) = next else { break };
                if job.cancel.load(Ordering::Relaxed) {
                    break;
                }
                let r = fetch_one(svc, job, repo, desc, diff, &discard);
                results.locked().push((desc.digest.clone(), r));
            });
        }
    });
    let mut first_err = None;
    for (d, r) in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
        match r {
            Ok(rec) => {
                done.insert(d, rec);
            }
            Err(TransferError::Cancelled) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e.into());
    }
    m.layers
        .iter()
        .map(|d| {
            done.get(&d.digest)
                .cloned()
                .ok_or(ImageError::Transfer(TransferError::Cancelled))
        })
        .collect()
}

/// Room the store keeps free beyond a download's needs (the database grows, other downloads run).
const SPACE_MARGIN: u64 = 64 << 20;

/// Refuse a download of `blobs` that the volume cannot hold (see [`crate::store::BlobStore::room_for`]).
fn check_space(svc: &ImageService, reference: &str, blobs: &[(Digest, u64)]) -> Result<(), ImageError> {
    let room = svc
        .store
        .room_for(blobs, SPACE_MARGIN)
        .map_err(|source| ImageError::Io {
            context: format!("free space of {}", svc.store.root().display()),
            source,
        })?;
    room.map_err(|(need, free)| ImageError::NoSpace {
        reference: reference.to_string(),
        need,
        free,
    })
}

/// Record `d` as owned by `download` (so no GC takes it before the image exists) and say whether it is in
/// the store already.
pub(crate) fn own(svc: &ImageService, download: i64, d: &Digest, size: u64) -> Result<bool, ImageError> {
    let _shared = svc.transfers.no_gc();
    svc.db.downloads().set_download_blob(download, d, size, 0)?;
    Ok(svc.store.contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_roundtrip() {
        let c = Some(Credentials {
            username: "u".into(),
            password: "p\"w".into(),
            identity_token: Some("t".into()),
        });
        assert_eq!(deserialize_creds(&serialize_creds(&c).unwrap()), c);
        assert_eq!(serialize_creds(&None), None);
    }
}
