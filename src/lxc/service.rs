//! The LXC template service both APIs call: what the sources offer ([`Sources`]), downloads on the one transfer
//! engine (persistent `downloads` rows of kind `lxc`, resumed at start, paused, cancelled, listed with the image
//! downloads), the templates kept, their removal, unpacking into a container directory, and Docker image →
//! template.

use super::blob::SharedBlob;
use super::index::{self, RemoteFile, TemplateName};
use super::meta::{self, Meta, Place};
use super::sources::{SourceConfig, Sources};
use super::unpack::{self, Shift, UnpackError};
use super::LxcError;
use super::{codec, convert};
use crate::digest::{Corrupt, Digest};
use crate::events::{Action, EventBus};
use crate::net::http::{HttpError, Web};
use crate::store::db::{DownloadKind, LxcTemplateRow};
use crate::store::{BlobStore, Db, DownloadState};
use crate::sync::Locked;
use crate::transfer::progress::{Live, Meter, Running, Stop};
use crate::transfer::{FetchJob, Transfers, UrlFile};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const MAX_SUMS: u64 = 1 << 20;
/// Room left on the volume beyond a download's own bytes.
const SPACE_MARGIN: u64 = 16 << 20;

/// What an LXC download fetches, kept with its row (so a resumed one fetches the very same files).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Spec {
    source: String,
    name: String,
    build: String,
    title: String,
    rootfs: RemoteFile,
    meta: Option<RemoteFile>,
    /// Look for a `SHA256SUMS` beside the files (an `lxc-download` server).
    sums: bool,
}

/// A template download running in this daemon.
pub struct LxcJob {
    pub download: i64,
    pub name: String,
    state: Mutex<JobState>,
    cancel: AtomicBool,
    discard: AtomicBool,
}

#[derive(Default)]
struct JobState {
    meter: Meter,
    stop: Option<Stop>,
    outcome: Option<Result<LxcTemplateRow, String>>,
}

impl LxcJob {
    fn st(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.locked()
    }

    /// The outcome, once there is one.
    pub fn outcome(&self) -> Option<Result<LxcTemplateRow, String>> {
        self.st().outcome.clone()
    }
}

impl Running for LxcJob {
    fn live(&self) -> Live {
        self.st().meter.live()
    }
    fn stopped(&self) -> Option<Stop> {
        self.st().stop
    }
    fn stop(&self, why: Stop) {
        self.st().stop.get_or_insert(why);
        self.cancel.store(true, Ordering::Relaxed);
    }
    fn ended(&self) -> bool {
        self.st().outcome.is_some()
    }
}

/// How to unpack a template.
#[derive(Debug, Clone, Default)]
pub struct UnpackRequest {
    pub shift: Option<Shift>,
    /// Use the template's unprivileged config and excludes (also implied by a shift).
    pub unprivileged: bool,
}

/// What an unpack did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnpackReport {
    pub template: String,
    pub dest: PathBuf,
    pub rootfs: PathBuf,
    pub summary: unpack::Summary,
    pub create_message: Option<String>,
}

/// A file a template download fetches: its URL, its ingest key, the digest that vouches for it, its size.
type PlannedFile = (String, Digest, Option<Digest>, u64);

/// A stored Docker image to make a template of (the caller reads it from the image service).
pub struct ConvertSource {
    pub reference: String,
    pub image_id: Digest,
    /// Layer blobs, lowest first.
    pub layers: Vec<Digest>,
    /// The image config document.
    pub config: Vec<u8>,
    /// Docker's architecture name (`amd64`, `arm64`, `arm`) and variant.
    pub architecture: String,
    pub variant: Option<String>,
}

pub struct LxcOptions {
    pub sources: Vec<SourceConfig>,
    /// This NAS's architecture in the servers' naming (`amd64`, `arm64`, `armhf`).
    pub arch: String,
    /// Where unpacks over TCP may write (the socket is trusted with any absolute path).
    pub dirs: Vec<PathBuf>,
    /// Index caches: `<data root>/lxc/`.
    pub cache: PathBuf,
    /// Memory an unpack's xz decoder may take for threads: half the board's memory budget.
    pub xz_memory: u64,
}

pub struct LxcService {
    db: Arc<Db>,
    store: BlobStore,
    transfers: Arc<Transfers>,
    web: Web,
    opts: LxcOptions,
    /// Where templates come from, and what they offer.
    pub sources: Sources,
    jobs: Arc<crate::jobs::JobMap<LxcJob>>,
    /// The image service's bus: the station's event log tells templates' pulls, deletes, unpacks and
    /// conversions beside the images'.
    events: Arc<EventBus>,
}

/// The servers' name for a Docker architecture.
pub fn lxc_arch(architecture: &str, variant: Option<&str>) -> &'static str {
    match (architecture, variant) {
        ("amd64", _) => "amd64",
        ("arm64", _) => "arm64",
        ("arm", Some("v6")) => "armel",
        ("arm", _) => "armhf",
        ("386", _) => "i386",
        ("ppc64le", _) => "ppc64el",
        ("s390x", _) => "s390x",
        ("riscv64", _) => "riscv64",
        _ => "unknown",
    }
}

/// LXC's `lxc.arch` for a server architecture.
fn kernel_arch(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "armhf" | "armel" => "armv7l",
        "i386" => "i686",
        "ppc64el" => "ppc64le",
        other => other,
    }
}

impl crate::jobs::Kind for LxcService {
    fn kind(&self) -> DownloadKind {
        DownloadKind::Lxc
    }

    fn restart(self: Arc<Self>, row: crate::store::db::DownloadRow) -> Result<bool, crate::jobs::JobError> {
        LxcService::restart(&self, row.id).map_err(|e| crate::jobs::JobError::Restart(e.to_string()))
    }
}

impl LxcService {
    pub fn new(
        db: Arc<Db>,
        store: BlobStore,
        transfers: Arc<Transfers>,
        web: Web,
        opts: LxcOptions,
        catalog: Option<Arc<crate::catalog::Catalog>>,
        events: Arc<EventBus>,
    ) -> LxcService {
        let jobs = Arc::new(crate::jobs::JobMap::new(transfers.running.clone()));
        let sources = Sources::new(
            db.clone(),
            web.clone(),
            opts.sources.clone(),
            opts.arch.clone(),
            opts.cache.clone(),
            catalog,
        );
        LxcService {
            events,
            db,
            store,
            transfers,
            web,
            opts,
            sources,
            jobs,
        }
    }

    pub fn arch(&self) -> &str {
        &self.opts.arch
    }

    /// How a large archive is decoded: on its own thread, xz on several within the board's budget.
    fn decoding(&self) -> codec::Decoding {
        codec::Decoding {
            pipelined: true,
            xz_memory: self.opts.xz_memory,
        }
    }

    /// Start (or join) the download of `name` (`DIST/RELEASE[/ARCH[/VARIANT]]`, the NAS's architecture and
    /// `default` when left out) from `source`, else from the first source that offers it.
    pub fn pull(self: &Arc<Self>, name: &str, source: Option<&str>) -> Result<Arc<LxcJob>, LxcError> {
        let name = self.full_name(name)?;
        let found = self.sources.find(&name, source)?;
        let key = name.to_string();
        self.jobs.join_or_start(&key, || {
            let sums = self.sources.has_sums(&found.source);
            let spec = Spec {
                source: found.source.clone(),
                name: key.clone(),
                build: found.offer.build.clone(),
                title: found.offer.title.clone(),
                rootfs: found.offer.rootfs.clone(),
                meta: found.offer.meta.clone(),
                sums,
            };
            let id = self
                .db
                .downloads()
                .create_download_of(DownloadKind::Lxc, &key, None, None)?;
            self.db
                .downloads()
                .set_download_spec(id, &serde_json::to_string(&spec).expect("serialisable"))?;
            Ok(self.start(id, spec))
        })
    }

    /// `DIST/RELEASE[/ARCH[/VARIANT]]` with this NAS's architecture and `default` filled in.
    pub fn full_name(&self, name: &str) -> Result<TemplateName, LxcError> {
        let n = name.split('/').count();
        Ok(match n {
            2 => format!("{name}/{}/default", self.opts.arch).parse()?,
            _ => name.parse()?,
        })
    }

    /// The job of download `id` fetching `spec`, ready for [`crate::jobs::JobMap::join_or_start`].
    fn start(self: &Arc<Self>, id: i64, spec: Spec) -> crate::jobs::Start<LxcJob> {
        let job = Arc::new(LxcJob {
            download: id,
            name: spec.name.clone(),
            state: Mutex::default(),
            cancel: AtomicBool::new(false),
            discard: AtomicBool::new(false),
        });
        let (svc, j) = (self.clone(), job.clone());
        crate::jobs::Start {
            id,
            job,
            thread: format!("lxc-{id}"),
            run: Box::new(move || svc.run(&j, &spec)),
        }
    }

    /// Start the job of unfinished download `id` again; false when its record is unreadable (it is then
    /// marked failed, with why).
    fn restart(self: &Arc<Self>, id: i64) -> Result<bool, LxcError> {
        let spec = self
            .db
            .downloads()
            .download_spec(id)?
            .and_then(|s| serde_json::from_str::<Spec>(&s).ok());
        let Some(spec) = spec else {
            self.db.downloads().set_download_state(
                id,
                DownloadState::Failed,
                Some("its record is unreadable; pull it again"),
            )?;
            return Ok(false);
        };
        let key = spec.name.clone();
        self.jobs.join_or_start(&key, || {
            log::info!("resuming LXC download {id} of {}", spec.name);
            Ok::<_, LxcError>(self.start(id, spec))
        })?;
        Ok(true)
    }

    fn run(&self, job: &LxcJob, spec: &Spec) {
        let r = self.fetch_template(job, spec);
        let r = match (r, job.stopped()) {
            (Err(_), Some(Stop::Pause)) => {
                log::info!("LXC download {} of {} paused", job.download, spec.name);
                job.st().outcome = Some(Err(LxcError::Paused(spec.name.clone()).to_string()));
                return;
            }
            (Err(_), Some(Stop::Cancel)) => Err(LxcError::Cancelled(spec.name.clone())),
            (r, _) => r,
        };
        let outcome = match r {
            Ok(row) => match self
                .db
                .downloads()
                .set_download_state(job.download, DownloadState::Committed, None)
            {
                Ok(()) => Ok(row),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => {
                let msg = e.to_string();
                log::warn!("LXC download of {} failed: {msg}", spec.name);
                if let Err(db) = self
                    .db
                    .downloads()
                    .set_download_state(job.download, DownloadState::Failed, Some(&msg))
                {
                    log::error!("recording the failure of download {}: {db}", job.download);
                }
                Err(msg)
            }
        };
        let mut attrs = std::collections::BTreeMap::from([("source".to_string(), spec.source.clone())]);
        match &outcome {
            Ok(row) => self.events.emit(Action::TemplatePull, row.name.as_str(), attrs),
            Err(msg) => {
                attrs.insert("error".into(), msg.clone());
                self.events.emit(Action::TemplatePullFailed, spec.name.as_str(), attrs)
            }
        }
        job.st().outcome = Some(outcome);
    }

    /// Resolve the checksums and sizes, check the space, fetch the files, read the metadata, keep the template.
    fn fetch_template(&self, job: &LxcJob, spec: &Spec) -> Result<LxcTemplateRow, LxcError> {
        let name: TemplateName = spec.name.parse()?;
        self.db
            .downloads()
            .set_download_state(job.download, DownloadState::Fetching, None)?;
        let files = self.planned_files(spec)?;
        // before the first byte: the total is known, and what cannot fit is refused
        let plan: Vec<(Digest, u64)> = files.iter().map(|f| (f.1.clone(), f.3)).collect();
        self.check_room(&spec.name, &plan)?;
        self.db.downloads().plan_download_blobs(job.download, &plan)?;
        let mut digests = Vec::new();
        for (url, key, expected, size) in &files {
            let fetch = FetchJob {
                key,
                expected: expected.as_ref(),
                size: *size,
                what: url,
                origin: crate::transfer::Origin::Server,
                download: job.download,
                cancel: &job.cancel,
                discard: &job.discard,
            };
            let id = key.to_string();
            let d = self
                .transfers
                .fetch_file(&self.db, &fetch, &UrlFile { web: &self.web, url }, &mut |u| {
                    if let crate::transfer::LayerUpdate::Progress { current, .. } = u {
                        job.st().meter.set(&id, current);
                    }
                })?;
            digests.push(d);
        }
        self.db
            .downloads()
            .set_download_state(job.download, DownloadState::Verifying, None)?;
        let rootfs = digests[0].clone();
        self.check_tarball(&rootfs, &spec.rootfs.url)?;
        let meta_digest = digests.get(1).cloned();
        let meta = match &meta_digest {
            Some(d) => self.read_meta(d, spec)?,
            None => Meta::default(),
        };
        let row = template_row(
            &name,
            spec.build.clone(),
            spec.source.clone(),
            (rootfs, files[0].3),
            meta_digest,
            &meta,
        );
        self.keep(&row)?;
        Ok(row)
    }

    /// The files of `spec` as (URL, ingest key, expected digest, size): the digest from the offer or the
    /// source's `SHA256SUMS`, the size from the offer or asked of the server; a file no digest vouches for is
    /// keyed by its URL.
    fn planned_files(&self, spec: &Spec) -> Result<Vec<PlannedFile>, LxcError> {
        let sums = if spec.sums && spec.rootfs.sha256.is_none() {
            match self.web.fetch(&index::sums_url(&spec.rootfs.url), MAX_SUMS) {
                Ok(b) => index::parse_sha256sums(&String::from_utf8_lossy(&b)),
                Err(HttpError::NotFound { .. }) => HashMap::new(),
                Err(e) => return Err(e.into()),
            }
        } else {
            HashMap::new()
        };
        let mut files = Vec::new();
        for f in std::iter::once(&spec.rootfs).chain(spec.meta.iter()) {
            let base = f.url.rsplit('/').next().unwrap_or("");
            let sha256 = f.sha256.clone().or_else(|| sums.get(base).cloned());
            let size = match f.size {
                Some(s) => s,
                None => self.web.length(&f.url)?,
            };
            let key = sha256
                .clone()
                .unwrap_or_else(|| Digest::of(format!("depot-url:{}", f.url).as_bytes()));
            files.push((f.url.clone(), key, sha256, size));
        }
        Ok(files)
    }

    /// Refuse a download of `plan` the volume cannot hold (see [`BlobStore::room_for`]).
    fn check_room(&self, name: &str, plan: &[(Digest, u64)]) -> Result<(), LxcError> {
        let room = self
            .store
            .room_for(plan, SPACE_MARGIN)
            .map_err(LxcError::io("free space"))?;
        room.map_err(|(need, free)| LxcError::NoSpace {
            name: name.to_string(),
            need,
            free,
        })
    }

    /// The metadata in the fetched `meta.tar.xz` `d`.
    fn read_meta(&self, d: &Digest, spec: &Spec) -> Result<Meta, LxcError> {
        let f = self.store.open_blob(d)?;
        let (_, r) = codec::open(Box::new(f), codec::Decoding::default()).map_err(|e| LxcError::NotATarball {
            url: spec.meta.as_ref().map(|m| m.url.clone()).unwrap_or_default(),
            why: e.to_string(),
        })?;
        Ok(meta::parse(r)?)
    }

    /// Record a template (its blobs are committed and owned by the caller) and collect what an older build of
    /// the same name held.
    fn keep(&self, row: &LxcTemplateRow) -> Result<(), LxcError> {
        let old = self.db.templates().put_lxc_template(row)?;
        self.collect_replaced(row, old)
    }

    /// Collect the blobs `old` (what the build `row` replaced held) that `row` does not hold itself and nothing
    /// else needs.
    fn collect_replaced(&self, row: &LxcTemplateRow, old: Vec<Digest>) -> Result<(), LxcError> {
        self.transfers.collect(&self.db, &row.released(old))?;
        Ok(())
    }

    /// The first entries of a rootfs decode as a tar archive (an HTML page served as a file is refused here,
    /// not at unpack time).
    fn check_tarball(&self, d: &Digest, url: &str) -> Result<(), LxcError> {
        let bad = |why: String| LxcError::NotATarball {
            url: url.to_string(),
            why,
        };
        let f = self.store.open_blob(d)?;
        let (_, r) = codec::open(Box::new(f), codec::Decoding::default()).map_err(|e| bad(e.to_string()))?;
        let mut a = tar::Archive::new(r);
        let mut entries = a.entries().map_err(|e| bad(e.to_string()))?;
        match entries.next() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(bad(e.to_string())),
            None => Err(bad("no entries".into())),
        }
    }

    pub fn templates(&self) -> Result<Vec<LxcTemplateRow>, LxcError> {
        Ok(self.db.templates().lxc_templates()?)
    }

    pub fn template(&self, name: &str) -> Result<LxcTemplateRow, LxcError> {
        let n = self.full_name(name)?.to_string();
        self.db.templates().lxc_template(&n)?.ok_or(LxcError::NoTemplate(n))
    }

    /// Forget a template and free its blobs (those nothing else needs).
    pub fn remove(&self, name: &str) -> Result<LxcTemplateRow, LxcError> {
        let row = self.template(name)?;
        let held = self.db.pins().on(&[format!("lxc:{}", row.name)])?;
        if !held.is_empty() {
            return Err(LxcError::Pinned {
                name: row.name,
                owners: held.into_iter().map(|p| p.owner).collect(),
            });
        }
        let blobs = self
            .db
            .templates()
            .delete_lxc_template(&row.name)?
            .ok_or_else(|| LxcError::NoTemplate(row.name.clone()))?;
        self.transfers.collect(&self.db, &blobs)?;
        self.events
            .emit(Action::TemplateDelete, row.name.as_str(), Default::default());
        Ok(row)
    }

    /// `dest`, held for a caller limited to the configured directories: an absolute path whose parent is one
    /// of them or beneath one with no symlink on the way, held open so that a later swap cannot move the
    /// unpack (see [`crate::fsutil::beneath`]).
    pub fn dest_allowed(&self, dest: &Path) -> Result<crate::fsutil::beneath::Anchored, LxcError> {
        let refuse = || {
            LxcError::DestNotAllowed(
                dest.to_path_buf(),
                self.opts
                    .dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        match crate::fsutil::beneath::hold(dest, &self.opts.dirs) {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(refuse()),
            Err(e) => {
                log::warn!("unpack destination {}: {e}", dest.display());
                Err(refuse())
            }
        }
    }

    /// The configured directories for container trees, made if missing.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.opts.dirs
    }

    /// Unpack template `name` as the container at `dest` (must not exist): `dest/rootfs`, `dest/config`,
    /// `dest/fstab` when the template has one, the `templates` files substituted; all in place at once.
    pub fn unpack(&self, name: &str, dest: &Path, req: &UnpackRequest) -> Result<UnpackReport, LxcError> {
        self.unpack_at(name, dest, dest, req)
    }

    /// [`LxcService::unpack`] into `at`, the same place as `dest` reached another way (a held directory's
    /// `/proc/self/fd` path); `dest` is what the container's config names.
    pub fn unpack_at(&self, name: &str, dest: &Path, at: &Path, req: &UnpackRequest) -> Result<UnpackReport, LxcError> {
        if !dest.is_absolute() {
            return Err(LxcError::DestNotAllowed(dest.to_path_buf(), "an absolute path".into()));
        }
        let row = self.template(name)?;
        let meta: Meta = serde_json::from_str(&row.meta).unwrap_or_default();
        let unprivileged = req.unprivileged || req.shift.is_some() || !nix::unistd::geteuid().is_root();
        let opts = unpack::Options {
            shift: req.shift,
            excludes: if unprivileged {
                meta.excludes_user.clone()
            } else {
                Vec::new()
            },
            layer: false,
        };
        let place = Place::at(dest);
        // what is read is hashed on the way: a damaged rootfs fails the unpack before it is put in place
        let blob = SharedBlob::open(&self.store, &row.rootfs_digest)?;
        let judged = blob.clone();
        let summary = unpack::into_place(at, |tmp| {
            let rootfs = tmp.join("rootfs");
            let io = |op: &'static str, p: &Path| {
                let p = p.display().to_string();
                move |source| UnpackError::Io { path: p, op, source }
            };
            std::fs::create_dir(&rootfs).map_err(io("mkdir", &rootfs))?;
            let (_, r) = codec::open(Box::new(blob.clone()), self.decoding())
                .map_err(|source| UnpackError::Broken { entries: 0, source })?;
            let s = unpack::unpack_into(r, &rootfs, &opts)?;
            if let Some(c) = blob.verdict() {
                return Err(UnpackError::Broken {
                    entries: s.files + s.dirs,
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, c),
                });
            }
            let config = meta.container_config(&place, unprivileged, &row.name);
            std::fs::write(tmp.join("config"), config).map_err(io("write", &tmp.join("config")))?;
            if let Some(f) = &meta.fstab {
                std::fs::write(tmp.join("fstab"), place.substitute(f)).map_err(io("write", &tmp.join("fstab")))?;
            }
            substitute_templates(&rootfs, &meta, &place, &row.name)?;
            Ok(s)
        });
        let summary = match summary {
            // a decoder that failed may have failed on damage: the whole blob is judged (the rest read)
            Err(e @ UnpackError::Broken { .. }) => match judged.verdict() {
                Some(c) => return Err(self.put_aside(c)),
                None => return Err(e.into()),
            },
            r => r?,
        };
        let at = std::collections::BTreeMap::from([("dest".to_string(), dest.display().to_string())]);
        self.events.emit(Action::TemplateUnpack, row.name.as_str(), at);
        Ok(UnpackReport {
            template: row.name,
            dest: dest.to_path_buf(),
            rootfs: dest.join("rootfs"),
            summary,
            create_message: meta.create_message,
        })
    }

    /// A template's blob found damaged by a read: out of the store (the next pull of the template fetches it
    /// again), and the error that says so.
    fn put_aside(&self, c: Corrupt) -> LxcError {
        match self.store.quarantine(&c.expected) {
            Ok(to) => log::error!(
                "{c}: blob moved to {}; pulling the template again fetches it",
                to.display()
            ),
            Err(qe) => log::error!("{c}: putting the blob aside: {qe}"),
        }
        LxcError::Blob(crate::store::blobs::BlobError::Mismatch {
            expected: c.expected,
            got: c.found,
        })
    }

    /// Make a template of a stored Docker image: its layers flattened into `rootfs.tar.xz`, a generated meta
    /// with what it runs. Named `NAME` or `<repository>/<tag>/<arch>/docker`.
    pub fn convert(&self, src: &ConvertSource, name: Option<&str>, scratch: &Path) -> Result<LxcTemplateRow, LxcError> {
        let arch = lxc_arch(&src.architecture, src.variant.as_deref());
        let name: TemplateName = match name {
            Some(n) => self.full_name(n)?,
            None => convert::template_name(&src.reference, arch)?,
        };
        let meta = convert::meta_of(&src.reference, &src.config, kernel_arch(arch));
        // the tree is scratch (tmp/ is emptied at every start): a crash leaves nothing the store relies on
        let tree = scratch.join("tree");
        std::fs::create_dir_all(&tree).map_err(LxcError::io(format!("creating {}", tree.display())))?;
        let result = self.build_template(src, &name, &meta, &tree);
        let _ = crate::fsutil::remove_any(scratch);
        if let Ok(row) = &result {
            let from = std::collections::BTreeMap::from([("from".to_string(), src.reference.clone())]);
            self.events.emit(Action::TemplateConvert, row.name.as_str(), from);
        }
        result
    }

    /// Flatten `src`'s layers into `tree`, pack it as `rootfs.tar.xz` and `meta` beside it, and keep both as
    /// template `name` (replacing an earlier one of that name).
    fn build_template(
        &self,
        src: &ConvertSource,
        name: &TemplateName,
        meta: &Meta,
        tree: &Path,
    ) -> Result<LxcTemplateRow, LxcError> {
        let store = self.store.clone();
        let how = self.decoding();
        let layers = src
            .layers
            .iter()
            .map(move |d| -> std::io::Result<Box<dyn Read + Send>> {
                let f = store.open_blob(d).map_err(std::io::Error::other)?;
                Ok(codec::open(Box::new(f), how)?.1)
            });
        convert::flatten(layers, tree)?;
        // rootfs.tar.xz, LXC's own format, on liblzma's multi-threaded encoder (a zstd encoder would add 570 KB
        // of compressor to a binary that must stay within its budget)
        let mut w = self.store.writer()?;
        {
            let mut xz = codec::xz_encoder(&mut w, self.opts.xz_memory).map_err(LxcError::io("xz"))?;
            convert::pack(tree, &mut xz).map_err(LxcError::io("packing the rootfs"))?;
            xz.finish().map_err(LxcError::io("xz"))?;
        }
        let mut m = self.store.writer()?;
        {
            let tar = meta::build_tar(meta, crate::store::db::now().max(0) as u64)
                .map_err(LxcError::io("packing the metadata"))?;
            let mut xz = liblzma::write::XzEncoder::new(&mut m, 6);
            xz.write_all(&tar).map_err(LxcError::io("xz"))?;
            xz.finish().map_err(LxcError::io("xz"))?;
        }
        // committed and recorded with no collection in between
        let _no_gc = self.transfers.no_gc();
        let (rootfs, size) = w.commit()?;
        let (meta_digest, _) = m.commit()?;
        let row = template_row(
            name,
            src.image_id.to_string(),
            format!("docker:{}", src.reference),
            (rootfs, size),
            Some(meta_digest),
            meta,
        );
        let old = self.db.templates().put_lxc_template(&row)?;
        drop(_no_gc);
        self.collect_replaced(&row, old)?;
        Ok(row)
    }
}

/// A kept template's row: its name's parts, its build and where it came from, its rootfs (digest, size) and
/// metadata, kept now.
fn template_row(
    name: &TemplateName,
    build: String,
    source: String,
    (rootfs_digest, rootfs_size): (Digest, u64),
    meta_digest: Option<Digest>,
    meta: &Meta,
) -> LxcTemplateRow {
    LxcTemplateRow {
        name: name.to_string(),
        dist: name.dist.clone(),
        release: name.release.clone(),
        arch: name.arch.clone(),
        variant: name.variant.clone(),
        build,
        source,
        rootfs_digest,
        rootfs_size,
        meta_digest,
        meta: serde_json::to_string(meta).expect("serialisable"),
        created_at: crate::store::db::now(),
    }
}

/// The files the template's metadata lists (`templates`), inside `rootfs`, with the container's place
/// substituted; a listed path that leaves the rootfs is skipped, not followed.
fn substitute_templates(rootfs: &Path, meta: &Meta, place: &Place, name: &str) -> Result<(), UnpackError> {
    for t in &meta.templates {
        let file = match unpack::open_inside(rootfs, t) {
            Ok(f) => f,
            Err(e @ UnpackError::Unsafe { .. }) => {
                log::warn!("template {name}: templates entry skipped: {e}");
                None
            }
            Err(e) => return Err(e),
        };
        let Some(mut f) = file else { continue };
        let mut text = String::new();
        if f.read_to_string(&mut text).is_err() {
            continue;
        }
        let new = place.substitute(&text);
        if new != text {
            use std::io::Seek;
            f.set_len(0)
                .and_then(|_| f.seek(std::io::SeekFrom::Start(0)))
                .and_then(|_| f.write_all(new.as_bytes()))
                .map_err(|source| UnpackError::Io {
                    path: t.clone(),
                    op: "write",
                    source,
                })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures() {
        assert_eq!(lxc_arch("arm", Some("v7")), "armhf");
        assert_eq!(lxc_arch("arm64", Some("v8")), "arm64");
        assert_eq!(kernel_arch("armhf"), "armv7l");
    }
}
