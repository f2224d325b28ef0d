//! Downloads: the one place that moves bytes from the network into the store, for every source.
//!
//! A download is network → (sha256, file in `ingest/`, an optional stream check) on a blocking thread, from a
//! [`Source`]: a registry blob, or a plain HTTP(S) file such as an LXC rootfs. It resumes from whatever bytes an
//! earlier attempt or an earlier daemon left in the ingest, retries resets and truncations with `Range`
//! requests under the one retry budget, refuses bodies longer than the expected size, and commits only after
//! the digest (when published), the size and the check agree. A registry layer's check is its diff_id: the
//! decompressed stream hashed as it arrives.

pub mod diff;
pub mod progress;
pub mod throttle;

use crate::digest::Digest;
use crate::net::http::{HttpError, Web};
use crate::net::{Retry, RetryPolicy};
use crate::oci::Descriptor;
use crate::registry::manifest::ManifestError;
use crate::registry::{RegistryError, Repo};
use crate::store::blobs::BlobError;
use crate::store::db::{BlobMeta, Db, DbError, LayerRecord};
use crate::store::BlobStore;
use crate::sync::Locked;
use crate::sync::RwLocked;
use diff::DiffHasher;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

const CHUNK: usize = 128 * 1024;
/// How often the bytes done are written to SQLite: coarse, never per chunk.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{what}: the {} sent more than the {size} bytes {}", .origin.sender(), .origin.declared())]
    TooLong { what: String, size: u64, origin: Origin },
    #[error("{what}: download incomplete after {attempts} attempts ({got} of {size} bytes): {last}")]
    Incomplete {
        what: String,
        attempts: u32,
        got: u64,
        size: u64,
        last: String,
    },
    #[error("layer {digest}: corrupt {what}: {source}")]
    Corrupt {
        digest: Digest,
        what: &'static str,
        source: io::Error,
    },
    #[error("layer {digest}: uncompressed content has digest {got}, but the image config says {want}")]
    DiffId { digest: Digest, got: Digest, want: Digest },
    #[error("cancelled")]
    Cancelled,
}

impl TransferError {
    /// Whether another attempt of the same request can help (see each client's errors).
    fn retry(&self) -> Retry {
        match self {
            TransferError::Registry(e) => e.retry(),
            TransferError::Http(e) => e.retry(),
            _ => Retry::Never,
        }
    }
}

/// Who says how long the content is, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A registry blob, its size from the manifest.
    Registry,
    /// A plain file, its size published or from the server.
    Server,
}

impl Origin {
    fn sender(self) -> &'static str {
        match self {
            Origin::Registry => "registry",
            Origin::Server => "server",
        }
    }
    fn declared(self) -> &'static str {
        match self {
            Origin::Registry => "the manifest declares",
            Origin::Server => "expected",
        }
    }
}

/// A body being read from a source; `offset` is where it starts in the content (0 when a server ignored our
/// `Range`).
pub struct Stream {
    pub reader: Box<dyn Read + Send>,
    pub offset: u64,
}

/// Where a download's bytes come from.
pub trait Source {
    /// Open the content at `offset`.
    fn open(&self, offset: u64) -> Result<Stream, TransferError>;
}

/// A blob of a registry repository.
pub struct RegistryBlob<'a> {
    pub repo: &'a Repo,
    pub digest: &'a Digest,
}

impl Source for RegistryBlob<'_> {
    fn open(&self, offset: u64) -> Result<Stream, TransferError> {
        let b = self.repo.blob(self.digest, offset)?;
        Ok(Stream {
            reader: b.reader,
            offset: b.offset,
        })
    }
}

/// A plain HTTP(S) file.
pub struct UrlFile<'a> {
    pub web: &'a Web,
    pub url: &'a str,
}

impl Source for UrlFile<'_> {
    fn open(&self, offset: u64) -> Result<Stream, TransferError> {
        let s = self.web.get(self.url, offset)?;
        Ok(Stream {
            reader: s.reader,
            offset: s.offset,
        })
    }
}

/// A check of the content as it streams in, beside its sha256 (a layer's diff_id). It sees every byte in
/// order, also those an earlier attempt left in the ingest.
pub trait Check {
    fn update(&mut self, buf: &[u8]) -> Result<(), TransferError>;
    /// Forget every byte seen: the download starts over at zero.
    fn reset(&mut self) -> Result<(), TransferError>;
    /// All bytes are in and their size and digest are right: the last word before the commit. An error
    /// discards the ingest.
    fn finish(&mut self) -> Result<(), TransferError>;
}

/// No check but size and digest.
pub struct NoCheck;

impl Check for NoCheck {
    fn update(&mut self, _: &[u8]) -> Result<(), TransferError> {
        Ok(())
    }
    fn reset(&mut self) -> Result<(), TransferError> {
        Ok(())
    }
    fn finish(&mut self) -> Result<(), TransferError> {
        Ok(())
    }
}

/// A layer's diff_id, computed while it streams; after `finish`, its uncompressed digest and size.
struct DiffCheck<'a> {
    desc: &'a Descriptor,
    want: &'a Digest,
    zstd_window_log_max: u32,
    hasher: Option<DiffHasher>,
    result: Option<(Digest, u64)>,
}

impl DiffCheck<'_> {
    fn corrupt(&self, what: &'static str, e: io::Error) -> TransferError {
        TransferError::Corrupt {
            digest: self.desc.digest.clone(),
            what,
            source: e,
        }
    }
}

impl Check for DiffCheck<'_> {
    fn update(&mut self, buf: &[u8]) -> Result<(), TransferError> {
        if self.hasher.is_none() {
            self.reset()?;
        }
        let h = self.hasher.as_mut().expect("set above");
        h.update(buf).map_err(|e| self.corrupt("compressed stream", e))
    }

    fn reset(&mut self) -> Result<(), TransferError> {
        let h = DiffHasher::new(
            self.desc.compression().map_err(ManifestError::from)?,
            self.zstd_window_log_max,
        )
        .map_err(|e| self.corrupt("stream", e))?;
        self.hasher = Some(h);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TransferError> {
        let h = match self.hasher.take() {
            Some(h) => h,
            None => DiffHasher::new(
                self.desc.compression().map_err(ManifestError::from)?,
                self.zstd_window_log_max,
            )
            .map_err(|e| self.corrupt("stream", e))?,
        };
        let (got, n) = h.finish().map_err(|e| self.corrupt("compressed stream", e))?;
        if &got != self.want {
            return Err(TransferError::DiffId {
                digest: self.desc.digest.clone(),
                got,
                want: self.want.clone(),
            });
        }
        self.result = Some((got, n));
        Ok(())
    }
}

/// What a layer download reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerUpdate {
    /// No download slot free yet.
    Waiting,
    Progress {
        current: u64,
        total: u64,
    },
    Retrying {
        seconds: u64,
    },
    Verifying,
}

/// Counting semaphore for download slots; waiting happens on the transfer threads, never on the reactor.
pub struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

pub struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.locked() += 1;
        self.0.cv.notify_one();
    }
}

impl Slots {
    pub fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    /// Take a slot; `on_wait` runs once if none is free at once. Gives up when `cancel` is set.
    pub fn acquire(&self, cancel: &AtomicBool, on_wait: impl FnOnce()) -> Option<SlotGuard<'_>> {
        let mut free = wait_while(&self.free, &self.cv, |free| *free == 0, cancel, on_wait)?;
        *free -= 1;
        Some(SlotGuard(self))
    }
}

/// Lock `m` and wait on `cv` while `busy` holds; `on_wait` runs once if it had to wait. Returns `None` when
/// `cancel` is set while waiting. Wakes at least every 200 ms to look at `cancel`.
fn wait_while<'a, T>(
    m: &'a Mutex<T>,
    cv: &Condvar,
    mut busy: impl FnMut(&T) -> bool,
    cancel: &AtomicBool,
    on_wait: impl FnOnce(),
) -> Option<std::sync::MutexGuard<'a, T>> {
    let mut g = m.locked();
    let mut on_wait = Some(on_wait);
    while busy(&g) {
        if let Some(f) = on_wait.take() {
            f();
        }
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        g = cv
            .wait_timeout(g, Duration::from_millis(200))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    Some(g)
}

/// Digests being downloaded: an ingest has exactly one writer. A second fetch of the same blob (another image
/// sharing the layer) waits for the first and then reuses the committed blob.
#[derive(Default)]
pub struct Claims {
    held: Mutex<std::collections::HashSet<Digest>>,
    cv: Condvar,
}

pub struct ClaimGuard<'a> {
    claims: &'a Claims,
    digest: Digest,
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        self.claims.held.locked().remove(&self.digest);
        self.claims.cv.notify_all();
    }
}

impl Claims {
    /// Claim `d`; `on_wait` runs once if another fetch holds it. Gives up when `cancel` is set.
    pub fn claim(&self, d: &Digest, cancel: &AtomicBool, on_wait: impl FnOnce()) -> Option<ClaimGuard<'_>> {
        let mut held = wait_while(&self.held, &self.cv, |held| held.contains(d), cancel, on_wait)?;
        held.insert(d.clone());
        Some(ClaimGuard {
            claims: self,
            digest: d.clone(),
        })
    }
}

pub struct Transfers {
    pub store: BlobStore,
    pub slots: Slots,
    pub claims: Claims,
    /// The one retry policy: its budget is per blob, whatever failed (a reset, a truncated body, a 503), and
    /// every attempt after the first resumes with `Range`.
    pub retry: RetryPolicy,
    /// See [`DiffHasher::new`]; from the board's memory budget.
    pub zstd_window_log_max: u32,
    /// The bandwidth limit and download window every download shares.
    pub throttle: std::sync::Arc<throttle::Throttle>,
    /// Garbage collection holds this exclusively from its snapshot of what is referenced to its last delete;
    /// whoever makes a blob someone's (a pull recording a blob it reuses, a download recording what it just
    /// committed, a load) holds it shared across that step. So a blob is never collected under its new owner.
    pub gc_lock: std::sync::RwLock<()>,
    /// Every download job running now, of any kind.
    pub running: std::sync::Arc<progress::Board>,
}

/// One download into the store, from any source.
pub struct FetchJob<'a> {
    /// Names the ingest and the claim; stable for the content across restarts: its digest when published,
    /// else one derived from where it comes from.
    pub key: &'a Digest,
    /// What the content must hash to, when published.
    pub expected: Option<&'a Digest>,
    pub size: u64,
    /// Names the content in messages: `layer sha256:…`, a URL.
    pub what: &'a str,
    pub origin: Origin,
    /// The `downloads` row whose progress this is.
    pub download: i64,
    pub cancel: &'a AtomicBool,
    /// See [`LayerJob::discard`].
    pub discard: &'a AtomicBool,
}

/// One layer to fetch.
pub struct LayerJob<'a> {
    pub repo: &'a Repo,
    pub desc: &'a Descriptor,
    pub diff_id: &'a Digest,
    pub download: i64,
    pub cancel: &'a AtomicBool,
    /// Set when the volume filled up: a cancelled download then drops its partial bytes instead of keeping them
    /// for a resume, so the volume is usable again.
    pub discard: &'a AtomicBool,
}

impl Transfers {
    /// Hold off garbage collection (shared): see [`Transfers::gc_lock`].
    pub fn no_gc(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gc_lock.read_locked()
    }

    /// Collect garbage (exclusive): see [`Transfers::gc_lock`].
    pub fn gc_exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gc_lock.write_locked()
    }

    /// Remove those of `candidates` (the blobs of an image or a template just deleted) that no image, template
    /// or unfinished download needs any more; returns what went. Blobs outside `candidates` are never touched.
    pub fn collect(&self, db: &Db, candidates: &[Digest]) -> Result<std::collections::HashSet<Digest>, TransferError> {
        let _exclusive = self.gc_exclusive();
        let keep = db.images().referenced_blobs()?;
        let live = db.downloads().live_download_blobs()?;
        let mut removed = std::collections::HashSet::new();
        for d in candidates {
            if !keep.contains(d) && !live.contains(d) && self.store.delete(d)? {
                removed.insert(d.clone());
            }
        }
        if !removed.is_empty() {
            // room again: the next delete on a full volume finds the database's reserve
            db.renew_reserve();
        }
        Ok(removed)
    }

    /// A layer already in the store, with what we know of it; `None` if it must be downloaded.
    pub fn present(
        &self,
        db: &Db,
        desc: &Descriptor,
        want_diff: &Digest,
    ) -> Result<Option<LayerRecord>, TransferError> {
        if !self.store.contains(&desc.digest) {
            return Ok(None);
        }
        let meta = match db.images().blob_meta(&desc.digest)? {
            Some(m) if m.diff_id.is_some() && m.uncompressed_size.is_some() => m,
            // Committed by a daemon that died before recording its facts: recompute them from disk.
            _ => self.recompute(db, desc)?,
        };
        let diff_id = meta.diff_id.expect("checked");
        if &diff_id != want_diff {
            return Err(TransferError::DiffId {
                digest: desc.digest.clone(),
                got: diff_id,
                want: want_diff.clone(),
            });
        }
        Ok(Some(LayerRecord {
            digest: desc.digest.clone(),
            diff_id,
            media_type: desc.media_type.clone(),
            size: desc.size,
            uncompressed_size: meta.uncompressed_size.expect("checked"),
        }))
    }

    fn recompute(&self, db: &Db, desc: &Descriptor) -> Result<BlobMeta, TransferError> {
        let mut f = self.store.open_blob(&desc.digest)?;
        let mut check = self.diff_check(desc, &desc.digest);
        check.reset()?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = f.read(&mut buf).map_err(|e| BlobError::Io {
                digest: desc.digest.to_string(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            check.update(&buf[..n])?;
        }
        let h = check.hasher.take().expect("reset above");
        let (d, n) = h.finish().map_err(|e| check.corrupt("compressed stream", e))?;
        let meta = BlobMeta {
            digest: desc.digest.clone(),
            size: desc.size,
            media_type: desc.media_type.clone(),
            diff_id: Some(d),
            uncompressed_size: Some(n),
        };
        db.images().put_blob_meta(&meta)?;
        Ok(meta)
    }

    fn diff_check<'a>(&self, desc: &'a Descriptor, want: &'a Digest) -> DiffCheck<'a> {
        DiffCheck {
            desc,
            want,
            zstd_window_log_max: self.zstd_window_log_max,
            hasher: None,
            result: None,
        }
    }

    /// Download, verify and commit one layer. Resumes from the ingest; never leaves unverified bytes in `blobs/`.
    pub fn fetch_layer(
        &self,
        db: &Db,
        job: &LayerJob<'_>,
        report: &mut dyn FnMut(LayerUpdate),
    ) -> Result<LayerRecord, TransferError> {
        let desc = job.desc;
        let mut waited = false;
        let _claim = self
            .claims
            .claim(&desc.digest, job.cancel, || {
                waited = true;
                report(LayerUpdate::Waiting)
            })
            .ok_or(TransferError::Cancelled)?;
        if waited {
            // Another pull fetched this blob meanwhile: reuse it if it committed.
            if let Some(rec) = self.present(db, desc, job.diff_id)? {
                return Ok(rec);
            }
        }
        let what = format!("layer {}", desc.digest);
        let fetch = FetchJob {
            key: &desc.digest,
            expected: Some(&desc.digest),
            size: desc.size,
            what: &what,
            origin: Origin::Registry,
            download: job.download,
            cancel: job.cancel,
            discard: job.discard,
        };
        let mut check = self.diff_check(desc, job.diff_id);
        let source = RegistryBlob {
            repo: job.repo,
            digest: &desc.digest,
        };
        let ing = self.fetch(db, &fetch, &source, &mut check, report)?;
        // the digest was planned before the first byte: the blob is this download's from its commit on
        ing.commit(Some(desc.size))?;
        db.downloads()
            .set_download_blob(job.download, &desc.digest, desc.size, desc.size)?;
        let (diff_id, usize) = check.result.take().expect("finished before the commit");
        let meta = BlobMeta {
            digest: desc.digest.clone(),
            size: desc.size,
            media_type: desc.media_type.clone(),
            diff_id: Some(diff_id.clone()),
            uncompressed_size: Some(usize),
        };
        db.images().put_blob_meta(&meta)?;
        Ok(LayerRecord {
            digest: desc.digest.clone(),
            diff_id,
            media_type: desc.media_type.clone(),
            size: desc.size,
            uncompressed_size: usize,
        })
    }

    /// Download one file (a plain URL) under its claim: `job.key` is held for the whole download, so a second
    /// download of the same file waits and then finds it committed. Returns the digest it is stored as.
    pub fn fetch_file(
        &self,
        db: &Db,
        job: &FetchJob<'_>,
        source: &dyn Source,
        report: &mut dyn FnMut(LayerUpdate),
    ) -> Result<Digest, TransferError> {
        let _claim = self
            .claims
            .claim(job.key, job.cancel, || report(LayerUpdate::Waiting))
            .ok_or(TransferError::Cancelled)?;
        if let Some(d) = job.expected {
            let _no_gc = self.no_gc();
            if self.store.contains(d) {
                db.downloads()
                    .set_download_blob(job.download, job.key, job.size, job.size)?;
                return Ok(d.clone());
            }
        }
        let ing = self.fetch(db, job, source, &mut NoCheck, report)?;
        // a digest learnt only now is recorded as this download's before a collection can see the blob
        let _no_gc = self.no_gc();
        let digest = ing.commit(Some(job.size))?;
        db.downloads()
            .set_download_blob(job.download, job.key, job.size, job.size)?;
        if &digest != job.key {
            db.downloads().rekey_download_blob(job.download, job.key, &digest)?;
        }
        Ok(digest)
    }

    /// The one fetch loop: a download slot, resume from the ingest, `Range` requests under the retry budget,
    /// the throttle, progress to the database once a second. Returns the ingest once size, digest and `check`
    /// agree, for the caller to commit (and record, before a collection can see the blob unowned). The caller
    /// holds the claim of `job.key`.
    pub fn fetch(
        &self,
        db: &Db,
        job: &FetchJob<'_>,
        source: &dyn Source,
        check: &mut dyn Check,
        report: &mut dyn FnMut(LayerUpdate),
    ) -> Result<crate::store::Ingest, TransferError> {
        let size = job.size;
        let _slot = self
            .slots
            .acquire(job.cancel, || report(LayerUpdate::Waiting))
            .ok_or(TransferError::Cancelled)?;
        let mut ing = self.resume_ingest(db, job, check, report)?;
        let mut budget = self.retry.budget();
        let mut buf = vec![0u8; CHUNK];
        let mut last_persist = Instant::now();
        while ing.offset() < size {
            // outside the download window no request is made: the link is the family's
            if job.cancel.load(Ordering::Relaxed) || !self.throttle.wait_open(job.cancel) {
                return Err(stop(&mut ing, job));
            }
            let (failure, how): (String, Retry) = match source.open(ing.offset()) {
                Err(e) => match e.retry() {
                    Retry::Never => return Err(e),
                    how => (e.to_string(), how),
                },
                Ok(mut stream) => {
                    if stream.offset != ing.offset() {
                        // The server ignored our Range: what it sends starts at zero.
                        ing.reset()?;
                        check.reset()?;
                    }
                    let mut to = Sink {
                        db,
                        job,
                        ing: &mut ing,
                        check: &mut *check,
                        report: &mut *report,
                        last_persist: &mut last_persist,
                    };
                    (self.read_stream(&mut stream, &mut to, &mut buf)?, Retry::Backoff)
                }
            };
            if ing.offset() == size {
                break;
            }
            if job.cancel.load(Ordering::Relaxed) {
                return Err(stop(&mut ing, job));
            }
            // Keep what we have: the next attempt, or the next daemon, resumes from here.
            ing.sync()?;
            db.downloads()
                .set_download_blob(job.download, job.key, size, ing.offset())?;
            let Some(delay) = budget.failed(how) else {
                return Err(TransferError::Incomplete {
                    what: job.what.to_string(),
                    attempts: budget.used(),
                    got: ing.offset(),
                    size,
                    last: failure,
                });
            };
            log::info!("{}: {failure}; retrying in {delay:?}", job.what);
            report(LayerUpdate::Retrying {
                seconds: delay.as_secs().max(1),
            });
            std::thread::sleep(delay);
        }
        report(LayerUpdate::Verifying);
        ing.verify(size)?;
        if let Err(e) = check.finish() {
            ing.reset()?;
            return Err(e);
        }
        Ok(ing)
    }

    /// The ingest of `job.key` with what an earlier attempt left (fed to `check`), or empty when those bytes do
    /// not even pass the check; its length recorded and reported.
    fn resume_ingest(
        &self,
        db: &Db,
        job: &FetchJob<'_>,
        check: &mut dyn Check,
        report: &mut dyn FnMut(LayerUpdate),
    ) -> Result<crate::store::Ingest, TransferError> {
        let mut ing = self.store.ingest_keyed(job.key, job.expected)?;
        check.reset()?;
        let mut corrupt_prefix = None;
        ing.resume(job.size, |b| {
            if corrupt_prefix.is_none() {
                if let Err(e) = check.update(b) {
                    corrupt_prefix = Some(e);
                }
            }
            Ok(())
        })?;
        if corrupt_prefix.is_some() {
            // Leftover bytes that do not even pass the check: start over rather than fail forever.
            ing.reset()?;
            check.reset()?;
        }
        db.downloads()
            .set_download_blob(job.download, job.key, job.size, ing.offset())?;
        report(LayerUpdate::Progress {
            current: ing.offset(),
            total: job.size,
        });
        Ok(ing)
    }

    /// Copy `stream` into the ingest until it ends, fails or the job is cancelled: why it stopped short (empty
    /// when the ingest is whole). An error ends the fetch: a body longer than announced, a full volume (the
    /// download is then cancelled and its bytes dropped), bytes the check refuses.
    fn read_stream(&self, stream: &mut Stream, to: &mut Sink<'_, '_>, buf: &mut [u8]) -> Result<String, TransferError> {
        let (job, size) = (to.job, to.job.size);
        let too_long = || TransferError::TooLong {
            what: job.what.to_string(),
            size,
            origin: job.origin,
        };
        loop {
            if job.cancel.load(Ordering::Relaxed) {
                return Ok("cancelled".to_string());
            }
            let n = match stream.reader.read(buf) {
                Ok(0) => return Ok(format!("connection closed after {} of {size} bytes", to.ing.offset())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Ok(format!("read failed after {} of {size} bytes: {e}", to.ing.offset())),
            };
            if !self.throttle.take(n, job.cancel) {
                return Ok("cancelled".to_string());
            }
            if to.ing.offset() + n as u64 > size {
                // Never write past the expected size: an endless body must not fill the disk.
                to.ing.reset()?;
                return Err(too_long());
            }
            if let Err(e) = to.ing.write_all(&buf[..n]) {
                if matches!(&e, BlobError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull) {
                    job.discard.store(true, Ordering::Relaxed);
                    job.cancel.store(true, Ordering::Relaxed);
                    let _ = to.ing.reset();
                }
                return Err(e.into());
            }
            to.check.update(&buf[..n])?;
            (to.report)(LayerUpdate::Progress {
                current: to.ing.offset(),
                total: size,
            });
            if to.last_persist.elapsed() >= PERSIST_EVERY {
                // Progress for those who list downloads; a resume goes by the ingest's own length.
                // A volume filling up fails the bytes' own write next, with the real cause.
                if let Err(e) = to
                    .db
                    .downloads()
                    .set_download_blob(job.download, job.key, size, to.ing.offset())
                {
                    log::debug!("recording the progress of {}: {e}", job.what);
                }
                *to.last_persist = Instant::now();
            }
            if to.ing.offset() == size {
                // A body that goes on past the expected size is broken (or endless): refuse it rather than trust
                // the prefix. With a correct Content-Length this read returns 0 at once.
                if matches!(stream.reader.read(&mut buf[..1]), Ok(n) if n > 0) {
                    to.ing.reset()?;
                    return Err(too_long());
                }
                return Ok(String::new());
            }
        }
    }
}

/// Where one attempt's bytes go: the download's ingest, its check, its progress.
struct Sink<'a, 'j> {
    db: &'a Db,
    job: &'a FetchJob<'j>,
    ing: &'a mut crate::store::Ingest,
    check: &'a mut dyn Check,
    report: &'a mut dyn FnMut(LayerUpdate),
    last_persist: &'a mut Instant,
}

/// End a cancelled download: keep its bytes for a resume (synced), or drop them when the volume is full.
fn stop(ing: &mut crate::store::Ingest, job: &FetchJob<'_>) -> TransferError {
    let r = if job.discard.load(Ordering::Relaxed) {
        ing.reset()
    } else {
        ing.sync()
    };
    match r {
        Ok(()) => TransferError::Cancelled,
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn present_blob_without_recorded_facts_is_recomputed_from_disk() {
        let dir = crate::testutil::tempdir();
        let store = BlobStore::open(&dir).unwrap();
        let db = Db::open_in_memory().unwrap();
        let content = b"layer content ".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&content).unwrap();
        let blob = gz.finish().unwrap();
        let digest = Digest::of(&blob);
        // committed by a daemon that died before recording the blob's facts
        store.put(&digest, &blob).unwrap();
        let desc: Descriptor = serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest.to_string(), "size": blob.len()
        }))
        .unwrap();
        let t = Transfers {
            store,
            slots: Slots::new(1),
            claims: Claims::default(),
            retry: RetryPolicy::default(),
            zstd_window_log_max: 27,
            throttle: Default::default(),
            gc_lock: Default::default(),
            running: Default::default(),
        };
        let diff = Digest::of(&content);
        let rec = t.present(&db, &desc, &diff).unwrap().expect("present");
        assert_eq!(
            (rec.diff_id.clone(), rec.uncompressed_size),
            (diff.clone(), content.len() as u64)
        );
        assert_eq!(
            db.images().blob_meta(&digest).unwrap().unwrap().diff_id,
            Some(diff.clone()),
            "the facts are recorded now"
        );
        // a blob whose content does not match what the config expects is an error, not a silent reuse
        assert!(matches!(
            t.present(&db, &desc, &Digest::of(b"other")),
            Err(TransferError::DiffId { .. })
        ));
        // absent: must be downloaded
        let mut other = desc.clone();
        other.digest = Digest::of(b"absent");
        assert!(t.present(&db, &other, &diff).unwrap().is_none());
    }

    #[test]
    fn claims_are_exclusive_per_digest() {
        let c = Arc::new(Claims::default());
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let cancel = AtomicBool::new(false);
        let ga = c.claim(&a, &cancel, || panic!("free")).unwrap();
        let _gb = c
            .claim(&b, &cancel, || panic!("another digest is independent"))
            .unwrap();
        let waited = Arc::new(AtomicBool::new(false));
        let (c2, w2, a2) = (c.clone(), waited.clone(), a.clone());
        let t = std::thread::spawn(move || {
            let cancel = AtomicBool::new(false);
            let _g = c2.claim(&a2, &cancel, || w2.store(true, Ordering::SeqCst)).unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(waited.load(Ordering::SeqCst));
        drop(ga);
        t.join().unwrap();
        let cancelled = AtomicBool::new(true);
        let _again = c.claim(&a, &cancelled, || {}).expect("free again after release");
        assert!(c.claim(&a, &cancelled, || {}).is_none(), "a cancelled waiter gives up");
    }

    #[test]
    fn slots_limit_and_release() {
        let s = Arc::new(Slots::new(2));
        let cancel = AtomicBool::new(false);
        let a = s.acquire(&cancel, || panic!("must not wait")).unwrap();
        let _b = s.acquire(&cancel, || panic!("must not wait")).unwrap();
        let waited = Arc::new(AtomicBool::new(false));
        let (s2, w2) = (s.clone(), waited.clone());
        let t = std::thread::spawn(move || {
            let c = AtomicBool::new(false);
            let _g = s2.acquire(&c, || w2.store(true, Ordering::SeqCst)).unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(a);
        t.join().unwrap();
        assert!(waited.load(Ordering::SeqCst));
        cancel.store(true, Ordering::SeqCst);
        let _c = s.acquire(&cancel, || {}).unwrap(); // one is free again
        assert!(s.acquire(&cancel, || {}).is_none(), "a cancelled waiter gives up");
    }
}
