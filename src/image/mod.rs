//! Image operations over the store: pull, list, delete, garbage collection. No HTTP types here: the API layers
//! parse requests into these calls and map [`ImageError`] classes to statuses.

pub mod admit;
pub mod archive;
pub mod bundle;
pub mod error;

pub mod import;
pub mod job;
pub mod layout;
pub mod load;
pub mod pins;
pub mod pull;
pub mod push;
pub mod rebuild;
pub mod registries;
mod remote;
pub mod save;
pub mod served;
pub(crate) mod signatures;

pub use error::{ErrorClass, ImageError};
pub use job::Stop;
pub use job::{LayerStatus, PullEvent, PullJob, PullOutcome};
pub use pull::PullSpec;

impl crate::jobs::Kind for ImageService {
    fn kind(&self) -> crate::store::db::DownloadKind {
        crate::store::db::DownloadKind::Image
    }

    fn restart(self: Arc<Self>, row: crate::store::db::DownloadRow) -> Result<bool, crate::jobs::JobError> {
        ImageService::restart(&self, row)
            .map(|j| j.is_some())
            .map_err(|e| crate::jobs::JobError::Restart(e.to_string()))
    }
}

use crate::digest::Digest;
use crate::events;
use crate::platform::Platform;
use crate::reference::{AnyReference, Reference};
use crate::registry::Registry;
use crate::store::blobs::GcReport;
use crate::store::db::{ImageRow, RefKind};
use crate::store::{BlobStore, Db};
use crate::transfer::Transfers;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The image service both APIs call. Its state is private: callers use its typed methods, and none of them
/// reaches the registry client or the database directly.
pub struct ImageService {
    db: Arc<Db>,
    store: BlobStore,
    registry: Arc<Registry>,
    transfers: Arc<Transfers>,
    /// The platform pulled when the caller names none.
    platform: Platform,
    /// Layers fetched at once by one pull (the daemon-wide limit is `transfers.slots`).
    concurrency: usize,
    /// Seals the credentials a download keeps while it runs (never in plain text in the database).
    sealer: Arc<crate::store::Sealer>,
    /// Registry records, Docker Hub's mirrors, private image records, and reading registries without pulling.
    pub registries: Arc<registries::Registries>,
    /// What installed apps keep.
    pub pins: pins::Pins,
    jobs: Arc<crate::jobs::JobMap<PullJob>>,
    /// The admission step every way in goes through, with its policies.
    pub gate: Arc<admit::Gate>,
    /// The OCI layout's `index.json`, kept in step with the database.
    pub layout: layout::Layout,
    /// What happened to images, for `/events` and the station's event log.
    /// Shared with the LXC service, whose templates are told here too.
    pub events: Arc<events::EventBus>,
    /// Set while a prune runs.
    pruning: std::sync::atomic::AtomicBool,
    /// The container engine every completed pull is handed to, when configured.
    handoff_to: std::sync::OnceLock<std::path::PathBuf>,
}

/// `meta` key: set when the database did not see the store being filled (created over existing blobs, or
/// rebuilt from `index.json`), so a blob it does not know may still be somebody's: never collect those.
pub const META_BLOB_GC: &str = "blob_gc";

/// Facts about this image service.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Stable for the life of the data root.
    pub id: String,
    pub images: usize,
    pub data_root: std::path::PathBuf,
    pub insecure_registries: Vec<String>,
    /// (registry, mirror host) in the order tried.
    pub mirrors: Vec<(String, String)>,
    pub platform: Platform,
}

/// An image as stored, for inspect and history: its row, its config document (exact bytes) and its layers.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub row: ImageRow,
    pub config: Vec<u8>,
    pub layers: Vec<crate::store::db::LayerRecord>,
    /// Who vouched for it when the signature policy admitted it.
    pub signers: Vec<crate::store::db::SignerRow>,
}

/// An image in its registry, read without pulling it.
#[derive(Debug, Clone)]
pub struct RemoteImage {
    /// What the reference resolved to (an index, or the image manifest itself).
    pub digest: Digest,
    /// The image manifest for the platform.
    pub manifest_digest: Digest,
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    /// Config and layers, compressed: what a pull fetches.
    pub size: u64,
}

/// What a registry holds under a reference, without pulling it (`/distribution/{name}/json`).
#[derive(Debug, Clone)]
pub struct RemoteDescriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// The platforms of an index's entries (attestations left out), or the one of an image manifest's config.
    pub platforms: Vec<Platform>,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub name: String,
    pub description: String,
    pub stars: u64,
    pub official: bool,
}

/// Whether `labels` has `want`: a `key`, or `key=value` exactly (Docker's label filter).
pub fn label_matches(labels: Option<&std::collections::BTreeMap<String, String>>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.and_then(|l| l.get(k)).is_some_and(|x| x == v),
        None => labels.is_some_and(|l| l.contains_key(want)),
    }
}

/// Which images a prune removes.
#[derive(Debug, Clone, Default)]
pub struct PruneFilter {
    /// Every image, not only the untagged ones.
    pub all: bool,
    /// Only images created before this (unix seconds).
    pub until: Option<i64>,
    /// Every one of these must match (`key` or `key=value`).
    pub labels: Vec<String>,
    /// None of these may match.
    pub not_labels: Vec<String>,
}

#[derive(Debug, Default)]
pub struct PruneReport {
    pub deleted: Vec<DeleteItem>,
    /// Uncompressed bytes of the layers whose blobs went.
    pub reclaimed: u64,
}

/// One line of a delete's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteItem {
    Untagged(String),
    Deleted(String),
}

/// The refs a delete of `id` removes: the one named (and, when it was a repository's last tag, the
/// repository's digest refs), or every ref when named by id: refused while it has several, unless `force`.
fn refs_to_remove(
    by_ref: Option<&Reference>,
    refs: &[(String, String, RefKind)],
    force: bool,
    id: &Digest,
) -> Result<Vec<String>, ImageError> {
    let Some(r) = by_ref else {
        let repos: std::collections::HashSet<&String> = refs.iter().map(|x| &x.1).collect();
        let tags = refs.iter().filter(|x| x.2 == RefKind::Tag).count();
        if !force && (repos.len() > 1 || tags > 1) {
            return Err(ImageError::InUse { id: id.clone() });
        }
        return Ok(refs.iter().map(|x| x.0.clone()).collect());
    };
    let this = r.to_string();
    let repo = r.name();
    let mut remove = vec![this.clone()];
    let other_tags_in_repo = refs
        .iter()
        .any(|(n, rp, k)| *k == RefKind::Tag && rp == &repo && n != &this);
    if r.digest().is_none() && !other_tags_in_repo {
        remove.extend(
            refs.iter()
                .filter(|(_, rp, k)| *k == RefKind::Digest && rp == &repo)
                .map(|x| x.0.clone()),
        );
    }
    Ok(remove)
}

/// Like the classic store, the layer chain ids whose content went away with `removed`.
fn chain_ids_gone(
    layers: &[crate::store::db::LayerRecord],
    removed: &std::collections::HashSet<Digest>,
) -> Vec<DeleteItem> {
    let mut out = Vec::new();
    let mut chain: Option<Digest> = None;
    for l in layers {
        let c = match &chain {
            None => l.diff_id.clone(),
            Some(prev) => Digest::of(format!("{prev} {}", l.diff_id).as_bytes()),
        };
        if removed.contains(&l.digest) {
            out.push(DeleteItem::Deleted(c.to_string()));
        }
        chain = Some(c);
    }
    out
}

impl ImageService {
    pub fn new(
        db: Arc<Db>,
        store: BlobStore,
        registry: Arc<Registry>,
        transfers: Arc<Transfers>,
        platform: Platform,
        concurrency: usize,
        sealer: crate::store::Sealer,
    ) -> ImageService {
        let jobs = Arc::new(crate::jobs::JobMap::new(transfers.running.clone()));
        let sealer = Arc::new(sealer);
        let layout = layout::Layout::new(db.clone(), store.clone());
        let registries = Arc::new(registries::Registries::new(
            db.clone(),
            registry.clone(),
            sealer.clone(),
            platform.clone(),
        ));
        ImageService {
            gate: Arc::default(),
            pins: pins::Pins::new(db.clone()),
            registries,
            sealer,
            db,
            store,
            registry,
            transfers,
            platform,
            concurrency,
            jobs,
            layout,
            events: Arc::default(),
            pruning: std::sync::atomic::AtomicBool::new(false),
            handoff_to: std::sync::OnceLock::new(),
        }
    }

    /// Start (or join) a pull. Returns at once; follow the job for progress and outcome.
    pub fn pull(self: &Arc<Self>, mut spec: PullSpec) -> Result<Arc<PullJob>, ImageError> {
        if spec.creds.is_none() {
            spec.creds = self.registries.stored_creds(spec.reference.domain());
        }
        let key = spec.key();
        self.jobs.join_or_start(&key, || {
            let platform = spec.platform.as_ref().map(|p| p.to_string());
            let auth = pull::serialize_creds(&spec.creds).map(|c| self.sealer.seal(c.as_bytes()));
            let id = self.db.downloads().create_download(
                &spec.reference.to_string(),
                platform.as_deref(),
                auth.as_deref(),
            )?;
            Ok(self.start(id, spec))
        })
    }

    /// The job of download `id` pulling `spec`, ready for [`crate::jobs::JobMap::join_or_start`].
    fn start(self: &Arc<Self>, id: i64, spec: PullSpec) -> crate::jobs::Start<PullJob> {
        let job = Arc::new(PullJob::new(spec.key(), id));
        let (svc, j) = (self.clone(), job.clone());
        crate::jobs::Start {
            id,
            job,
            thread: format!("pull-{id}"),
            run: Box::new(move || pull::run(&svc, &j, &spec)),
        }
    }

    /// Start the job of an unfinished download again (its credentials unsealed); `None` if it could not be (it is
    /// then marked failed, with why).
    fn restart(self: &Arc<Self>, row: crate::store::db::DownloadRow) -> Result<Option<Arc<PullJob>>, ImageError> {
        let reference = match Reference::parse(&row.reference) {
            Ok(r) => r,
            Err(e) => {
                self.db.downloads().set_download_state(
                    row.id,
                    crate::store::DownloadState::Failed,
                    Some(&e.to_string()),
                )?;
                return Ok(None);
            }
        };
        let platform = row.platform.as_deref().and_then(|p| p.parse().ok());
        let creds = match self.db.downloads().download_auth(row.id)? {
            None => None,
            Some(s) if crate::store::Sealer::is_sealed(&s) => match self.sealer.open(&s) {
                Ok(plain) => pull::deserialize_creds(&String::from_utf8_lossy(&plain)),
                Err(e) => {
                    let msg = format!("{e}; pull {} again", row.reference);
                    self.db
                        .downloads()
                        .set_download_state(row.id, crate::store::DownloadState::Failed, Some(&msg))?;
                    return Ok(None);
                }
            },
            // Written by an older depot in plain text: seal it now.
            Some(plain) => {
                self.db
                    .downloads()
                    .set_download_auth(row.id, &self.sealer.seal(plain.as_bytes()))?;
                pull::deserialize_creds(&plain)
            }
        };
        let spec = PullSpec {
            reference,
            platform,
            creds,
        };
        let key = spec.key();
        let job = self.jobs.join_or_start(&key, || {
            log::info!("resuming download {} of {}", row.id, row.reference);
            Ok::<_, ImageError>(self.start(row.id, spec))
        })?;
        Ok(Some(job))
    }

    /// Share `gate` (its policies) with the ways in that run before the service exists: a rebuild at start.
    pub fn with_gate(mut self, gate: Arc<admit::Gate>) -> ImageService {
        self.gate = gate;
        self
    }

    /// Make an image visible, the one way: see [`admit`]. `index.json` follows.
    pub(crate) fn admit(&self, c: admit::Candidate) -> Result<(), ImageError> {
        self.gate.admit(&self.db, &self.store, &c)?;
        self.layout.sync();
        Ok(())
    }

    /// An event's attributes for image `id`: its labels, and `name`.
    pub(crate) fn event_attrs(&self, id: &Digest, name: &str) -> std::collections::BTreeMap<String, String> {
        let mut a: std::collections::BTreeMap<String, String> = self
            .db
            .images()
            .image_labels(id)
            .ok()
            .flatten()
            .and_then(|l| serde_json::from_str(&l).ok())
            .unwrap_or_default();
        a.insert("name".into(), name.into());
        a
    }

    /// Hand every image a pull completes to the container engine at `engine` (set once, at start).
    pub fn hand_off_pulls_to(&self, engine: std::path::PathBuf) {
        let _ = self.handoff_to.set(engine);
    }

    /// A fresh path in the data root's `tmp/` (emptied at every start) for a large upload on its way in.
    pub fn scratch_path(&self, what: &str) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::store::DataRoot::new(self.store.root())
            .tmp()
            .join(format!("{what}-{n}"))
    }

    /// The volume of the data root: (free, total) bytes, and what depot's store takes (blobs, downloads in
    /// flight, the database).
    pub fn storage(&self) -> Result<(u64, u64, u64), ImageError> {
        let root = self.store.root();
        let io = |source| ImageError::Io {
            context: format!("the volume of {}", root.display()),
            source,
        };
        let (free, total) = crate::fsutil::space(root).map_err(io)?;
        let mut used = 0u64;
        let dr = crate::store::DataRoot::new(root);
        for dir in [dr.blobs(), dr.ingest()] {
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&d) else { continue };
                for e in rd.flatten() {
                    match e.metadata() {
                        Ok(m) if m.is_dir() => stack.push(e.path()),
                        Ok(m) => used += m.len(),
                        Err(_) => {}
                    }
                }
            }
        }
        for f in ["depot.db", "depot.db-wal"] {
            used += std::fs::metadata(root.join(f)).map(|m| m.len()).unwrap_or(0);
        }
        Ok((free, total, used))
    }

    /// The platform pulled (and imported) when the caller names none.
    pub fn default_platform(&self) -> Platform {
        self.platform.clone()
    }

    /// What `/info` and the station report about the store.
    pub fn facts(&self) -> Result<Facts, ImageError> {
        let id = match self.db.settings().meta("daemon_id")? {
            Some(id) => id,
            None => {
                let mut b = [0u8; 16];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
                    .map_err(|_| ImageError::InvalidParameter("no system randomness".into()))?;
                let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                let id = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
                self.db.settings().set_meta("daemon_id", &id)?;
                id
            }
        };
        Ok(Facts {
            id,
            images: self.db.images().list_images()?.len(),
            data_root: self.store.root().to_path_buf(),
            insecure_registries: self.registry.options().insecure.clone(),
            mirrors: self.registry.options().mirrors.clone(),
            platform: self.platform.clone(),
        })
    }

    /// At a tidy stop: make the database one self-contained file (see [`Db::checkpoint`]).
    pub fn checkpoint(&self) -> Result<(), ImageError> {
        Ok(self.db.checkpoint()?)
    }

    /// The signer keys of every image the signature policy admitted, by image id.
    pub fn signer_keys(&self) -> Result<std::collections::HashMap<String, Vec<String>>, ImageError> {
        Ok(self.db.images().signer_keys()?)
    }

    pub fn list(&self) -> Result<Vec<ImageRow>, ImageError> {
        Ok(self.db.images().list_images()?)
    }

    /// Layer sizes across images: per image, the bytes of its layers that other images share too; and the
    /// bytes of all distinct layers (uncompressed, as Docker counts them).
    pub fn layer_sharing(&self) -> Result<(HashMap<Digest, u64>, u64), ImageError> {
        let usage = self.db.images().layer_usage()?;
        let mut users: HashMap<&Digest, std::collections::HashSet<&Digest>> = HashMap::new();
        let mut sizes: HashMap<&Digest, u64> = HashMap::new();
        for (img, layer, n) in &usage {
            users.entry(layer).or_default().insert(img);
            sizes.insert(layer, *n);
        }
        let mut shared: HashMap<Digest, u64> = HashMap::new();
        for (img, layer, n) in &usage {
            let e = shared.entry(img.clone()).or_default();
            if users[layer].len() > 1 {
                *e += n;
            }
        }
        Ok((shared, sizes.values().sum()))
    }

    /// Resolve an image endpoint's `{name}` (spec §3.2): full id, name, then id prefix.
    pub fn resolve(&self, name: &str) -> Result<(Digest, Option<Reference>), ImageError> {
        let not_found = || {
            let shown = match Reference::parse(name) {
                Ok(r) if r.tag().is_none() && r.digest().is_none() => format!("{name}:latest"),
                _ => name.to_string(),
            };
            ImageError::NotFound { reference: shown }
        };
        match AnyReference::parse(name)? {
            AnyReference::Id(d) => {
                if self.db.images().has_image(&d)? {
                    return Ok((d, None));
                }
                Err(not_found())
            }
            AnyReference::Named(r) => {
                let r = r.with_default_tag();
                if let Some(id) = self.db.images().resolve_ref(&r.to_string())? {
                    return Ok((id, Some(r)));
                }
                let hex = name.strip_prefix("sha256:").unwrap_or(name);
                if !hex.is_empty()
                    && hex.len() <= 64
                    && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    if let [only] = self.db.images().images_by_prefix(hex)?.as_slice() {
                        return Ok((only.clone(), None));
                    }
                }
                Err(not_found())
            }
        }
    }

    /// The stored facts of the image `name` resolves to.
    pub fn inspect(&self, name: &str) -> Result<Inspected, ImageError> {
        let (id, _) = self.resolve(name)?;
        let row = self.db.images().image_row(&id)?.ok_or_else(|| ImageError::NotFound {
            reference: name.to_string(),
        })?;
        let config = self.store.read(&id, pull::MAX_CONFIG_BYTES)?;
        let layers = self.db.images().image_layers(&id)?;
        let signers = self.db.images().signers(&id)?;
        Ok(Inspected {
            row,
            config,
            layers,
            signers,
        })
    }

    /// Point `target` (a tag; the default tag when it has none) at the image `source` resolves to. A tag that
    /// names another image moves.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<Digest, ImageError> {
        if source.is_empty() {
            return Err(ImageError::BlankName);
        }
        if target.digest().is_some() {
            return Err(ImageError::InvalidParameter(format!(
                "{target}: a tag cannot be a digest reference"
            )));
        }
        let target = target.clone().with_default_tag();
        let (id, _) = self.resolve(source)?;
        self.db.images().tag(&target.to_string(), &target.name(), &id)?;
        self.layout.sync();
        self.events.emit(
            events::Action::Tag,
            id.as_str(),
            self.event_attrs(&id, &target.familiar()),
        );
        Ok(id)
    }

    /// `DELETE /images/{name}` semantics (spec §5.6). Blobs no other image needs are removed with the image.
    pub fn delete(&self, name: &str, force: bool) -> Result<Vec<DeleteItem>, ImageError> {
        Ok(self.delete_counted(name, force, force)?.0)
    }

    /// Remove the images `f` selects, as deletes by id with force; one at a time may run.
    pub fn prune(&self, f: &PruneFilter) -> Result<PruneReport, ImageError> {
        if self.pruning.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(ImageError::Busy("a prune operation is already running".into()));
        }
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let _done = Done(&self.pruning);
        let mut report = PruneReport::default();
        for row in self.db.images().list_images()? {
            let labels: Option<std::collections::BTreeMap<String, String>> =
                row.labels.as_deref().and_then(|l| serde_json::from_str(l).ok());
            let selected = (f.all || row.tags.is_empty())
                && f.until.is_none_or(|u| row.created.unwrap_or(0) < u)
                && f.labels.iter().all(|w| label_matches(labels.as_ref(), w))
                && !f.not_labels.iter().any(|w| label_matches(labels.as_ref(), w));
            if !selected {
                continue;
            }
            // a pinned image is kept: its owner still needs it
            match self.delete_counted(row.id.as_str(), true, false) {
                Ok((items, bytes)) => {
                    report.deleted.extend(items);
                    report.reclaimed += bytes;
                }
                // gone meanwhile: nothing to prune
                Err(ImageError::NotFound { .. } | ImageError::Pinned { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("reclaimed".to_string(), report.reclaimed.to_string());
        self.events.emit(events::Action::Prune, "", attrs);
        Ok(report)
    }

    /// A delete, and the uncompressed bytes of the layers whose blobs it removed.
    /// See [`Self::delete`]; `unpin` releases the pins on what goes (else a pinned ref refuses the delete).
    fn delete_counted(&self, name: &str, force: bool, unpin: bool) -> Result<(Vec<DeleteItem>, u64), ImageError> {
        if name.is_empty() {
            return Err(ImageError::BlankName);
        }
        let (id, by_ref) = self.resolve(name)?;
        let refs = self.db.images().refs_of(&id)?;
        let mut out = Vec::new();
        let mut remove = refs_to_remove(by_ref.as_ref(), &refs, force, &id)?;
        remove.dedup();
        let held = self.db.pins().on(&remove)?;
        if !held.is_empty() && !unpin {
            let mut owners: Vec<String> = held.into_iter().map(|p| p.owner).collect();
            owners.sort();
            owners.dedup();
            return Err(ImageError::Pinned {
                reference: name.to_string(),
                owners,
            });
        }
        for n in &remove {
            out.push(DeleteItem::Untagged(Reference::familiar_of(n)));
        }
        let last = refs.iter().all(|(n, _, _)| remove.contains(n));
        let layers = if last {
            self.db.images().image_layers(&id)?
        } else {
            Vec::new()
        };
        let own_blobs = if last {
            self.db.images().blobs_of_image(&id)?
        } else {
            Vec::new()
        };
        let attrs = self.event_attrs(&id, id.as_str());
        let mut reclaimed = 0;
        self.db.images().remove(&remove, last.then_some(&id))?;
        if !held.is_empty() {
            self.db.pins().release(&remove)?;
            for p in &held {
                let owners = std::collections::BTreeMap::from([("owners".to_string(), p.owner.clone())]);
                self.events.emit_about(
                    events::Action::Unpin,
                    id.as_str(),
                    owners,
                    Some(Reference::familiar_of(&p.target)),
                );
            }
        }
        let layout_written = self.layout.sync();
        for n in &remove {
            self.events.emit_about(
                events::Action::Untag,
                id.as_str(),
                attrs.clone(),
                Some(Reference::familiar_of(n)),
            );
        }
        if last {
            self.events.emit(events::Action::Delete, id.as_str(), attrs);
        }
        if last {
            out.push(DeleteItem::Deleted(id.to_string()));
            let removed = self.transfers.collect(&self.db, &own_blobs)?;
            // on a full volume index.json could not be written before the blobs made room
            if !layout_written && !removed.is_empty() {
                self.layout.sync();
            }
            reclaimed = layers
                .iter()
                .filter(|l| removed.contains(&l.digest))
                .map(|l| l.uncompressed_size)
                .sum();
            out.extend(chain_ids_gone(&layers, &removed));
        }
        Ok((out, reclaimed))
    }

    /// Full GC: unreferenced blobs (unless the database may not know every owner, see [`META_BLOB_GC`]), stray
    /// files, and ingests no download owns: an unfinished one, or one that failed less than `keep_failed` ago
    /// (pulling the image again resumes from those bytes).
    pub fn gc(&self, keep_failed: Duration) -> Result<GcReport, ImageError> {
        let _exclusive = self.transfers.gc_exclusive();
        let io = |context: &str| {
            let context = context.to_string();
            move |source| ImageError::Io { context, source }
        };
        let mut keep = self.db.images().referenced_blobs()?;
        if self.db.settings().meta(META_BLOB_GC)?.is_some_and(|v| v != "on") {
            keep.extend(self.store.list().map_err(io("listing blobs"))?);
        }
        let owned = self
            .db
            .downloads()
            .owned_ingests(crate::store::db::now() - keep_failed.as_secs() as i64)?;
        self.store.gc(&keep, &owned).map_err(io("garbage collection"))
    }
}
