//! What the LAN registry serves, read from the store: a repository's tags, manifests and blobs under the names
//! depot keeps them by (`docker.io/library/alpine`). Read-only.
//!
//! Pull-through: what depot does not hold is pulled by its own persistent pull ([`ImageService::pull_through`]:
//! resumable, verified, judged by the policy, kept). While that pull runs, the manifests and blobs it owns are
//! served too: a manifest once it is stored (the pull stores each before the layers, after the policy judged
//! the signatures), a layer as its bytes arrive ([`Arriving`]), so the first client is not made to wait for the
//! whole image and every client asking for the same blob follows the one download.

use super::{ImageError, ImageService};
use crate::digest::Digest;
use crate::oci::{DOCKER_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::policy::sigstore::signature_tag;
use crate::reference::Reference;
use crate::store::{BlobStore, Db};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A manifest as served: its digest and media type (its bytes are the blob of that digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedManifest {
    pub digest: Digest,
    pub media_type: String,
}

impl ImageService {
    /// The manifest image `id` goes by: the index it was pulled through when there is one (what its tag named
    /// at the registry, and what its signatures name), else its own.
    pub fn top_manifest(&self, id: &Digest) -> Result<ServedManifest, ImageError> {
        let images = self.db.images();
        let row = images.image_row(id)?.ok_or_else(|| ImageError::NotFound {
            reference: id.to_string(),
        })?;
        let manifests = images.manifests_of(id)?;
        manifests
            .iter()
            .find(|(_, mt)| mt == OCI_INDEX || mt == DOCKER_LIST)
            .or_else(|| manifests.iter().find(|(d, _)| *d == row.manifest_digest))
            .map(|(digest, media_type)| ServedManifest {
                digest: digest.clone(),
                media_type: media_type.clone(),
            })
            .ok_or_else(|| ImageError::InvalidParameter(format!("{id}: no manifest recorded")))
    }

    /// The manifest `reference` (a tag, cosign's `sha256-<hex>.sig`, or a digest) names in repository `repo`:
    /// one of its images', or one an unfinished pull of it has stored.
    pub fn served_manifest(&self, repo: &str, reference: &str) -> Result<Option<ServedManifest>, ImageError> {
        let images = self.db.images();
        if let Ok(d) = reference.parse::<Digest>() {
            if let Some(media_type) = images.manifest_in_repo(repo, &d)? {
                return Ok(Some(ServedManifest { digest: d, media_type }));
            }
            return match self.db.downloads().in_flight_blob(repo, &d)? {
                Some(_) if self.store.contains(&d) => self.stored_manifest(&d).map(Some),
                _ => Ok(None),
            };
        }
        if reference.ends_with(".sig") {
            let sig = images
                .signature_manifests(repo, None)?
                .into_iter()
                .find(|(_, signs)| signature_tag(signs) == reference);
            return Ok(sig.map(|(digest, _)| ServedManifest {
                digest,
                media_type: OCI_MANIFEST.into(),
            }));
        }
        match images.resolve_ref(&format!("{repo}:{reference}"))? {
            Some(id) => self.top_manifest(&id).map(Some),
            None => Ok(None),
        }
    }

    /// The referrers API's answer: a descriptor of each manifest of repository `repo` whose `subject` is
    /// `subject`, in digest order, only those of `artifact_type` when one is asked for. A manifest's artifact type is
    /// its `artifactType`, else its config's media type (the spec's rule).
    pub fn served_referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, ImageError> {
        let mut out = Vec::new();
        for (digest, media_type) in self.db.images().manifests_in_repo(repo)? {
            let bytes = self.store.read(&digest, crate::oci::MAX_MANIFEST)?;
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            if v["subject"]["digest"].as_str() != Some(subject.as_str()) {
                continue;
            }
            let kind = v["artifactType"]
                .as_str()
                .or_else(|| v["config"]["mediaType"].as_str())
                .map(str::to_string);
            if artifact_type.is_some_and(|t| kind.as_deref() != Some(t)) {
                continue;
            }
            let mut d = serde_json::json!({
                "mediaType": v["mediaType"].as_str().unwrap_or(&media_type),
                "digest": digest.as_str(),
                "size": bytes.len(),
            });
            if let Some(kind) = kind {
                d["artifactType"] = kind.into();
            }
            if v["annotations"].is_object() {
                d["annotations"] = v["annotations"].clone();
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Repository `repo`'s tags, with cosign's `.sig` tags of the signatures kept with its images, sorted.
    pub fn served_tags(&self, repo: &str) -> Result<Vec<String>, ImageError> {
        let images = self.db.images();
        let mut tags: Vec<String> = images
            .repo_tags(repo)?
            .into_iter()
            .filter_map(|(name, _)| name.rsplit_once(':').map(|(_, t)| t.to_string()))
            .collect();
        tags.extend(
            images
                .signature_manifests(repo, None)?
                .iter()
                .map(|(_, signs)| signature_tag(signs)),
        );
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Blob `d`, when an image of repository `repo` needs it or an unfinished pull of it owns it.
    pub fn served_blob(&self, repo: &str, d: &Digest) -> Result<Option<ServedBlob>, ImageError> {
        if !self.db.images().blob_in_repo(repo, d)? {
            let Some((download, size)) = self.db.downloads().in_flight_blob(repo, d)? else {
                return Ok(None);
            };
            return Ok(Some(ServedBlob::Arriving(Arriving::new(
                self.store.clone(),
                self.db.clone(),
                d.clone(),
                size,
                download,
            ))));
        }
        let size = self.store.size(d).ok_or_else(|| ImageError::Incomplete {
            names: repo.to_string(),
            blob: d.clone(),
        })?;
        Ok(Some(ServedBlob::Stored(Arc::new(self.store.open_blob(d)?), size)))
    }

    /// A manifest of the store with the media type it declares (or its shape implies).
    fn stored_manifest(&self, d: &Digest) -> Result<ServedManifest, ImageError> {
        let bytes = self.store.read(d, self.registry.options().max_manifest_bytes)?;
        let media_type = match crate::registry::manifest::parse_manifest(&bytes, None)? {
            crate::registry::manifest::Manifest::Image(m) => m.media_type,
            crate::registry::manifest::Manifest::Index(i) => i.media_type,
        };
        Ok(ServedManifest {
            digest: d.clone(),
            media_type,
        })
    }

    /// Pull `reference` (`repo:tag` or `repo@digest`) for a LAN registry's client, or join the pull already
    /// running: the manifest it names once the pull has stored it and the policy has judged it (its layers then
    /// arrive while the client asks for them), or once the pull is over (an image held whole already).
    pub async fn pull_through(self: &Arc<Self>, reference: Reference) -> Result<ServedManifest, Arc<ImageError>> {
        let spec = super::pull::PullSpec {
            reference,
            platform: None,
            creds: None,
        };
        let job = self.pull(spec).map_err(Arc::new)?;
        let mut cursor = 0;
        loop {
            let batch = job.next(&mut cursor).await;
            let planned = batch
                .events
                .iter()
                .any(|e| matches!(e, super::job::PullEvent::PullingFrom { .. }));
            let svc = self.clone();
            let download = job.download;
            match (planned, batch.outcome) {
                (_, Some(Err(e))) => return Err(e),
                (_, Some(Ok(o))) => {
                    return crate::pool::run(move || svc.top_manifest(&o.image_id))
                        .await
                        .map_err(Arc::new)
                }
                (true, None) => {
                    return crate::pool::run(move || {
                        let row = svc.db.downloads().download(download)?;
                        let d = row.and_then(|r| r.resolved_digest).ok_or_else(|| {
                            ImageError::InvalidParameter(format!("download {download}: nothing resolved"))
                        })?;
                        svc.stored_manifest(&d)
                    })
                    .await
                    .map_err(Arc::new)
                }
                (false, None) => {}
            }
        }
    }

    /// Every repository with a tag or digest ref.
    pub fn repositories(&self) -> Result<Vec<String>, ImageError> {
        Ok(self.db.images().repositories()?)
    }
}

/// The `meta` key of the owner's choice to serve the LAN registry or not (it wins over the configuration).
const META_LAN_REGISTRY: &str = "lan_registry";

impl ImageService {
    /// Whether the owner turned the LAN registry on or off (from the page); `None` if never.
    pub fn lan_registry_chosen(&self) -> Result<Option<bool>, ImageError> {
        Ok(self.db.settings().meta(META_LAN_REGISTRY)?.map(|v| v == "on"))
    }

    /// Keep the owner's choice to serve the LAN registry or not, across restarts.
    pub fn choose_lan_registry(&self, on: bool) -> Result<(), ImageError> {
        Ok(self
            .db
            .settings()
            .set_meta(META_LAN_REGISTRY, if on { "on" } else { "off" })?)
    }

    /// A blob of the store, whole (a manifest), at most `limit` bytes.
    pub fn store_read(&self, d: &Digest, limit: u64) -> Result<Vec<u8>, ImageError> {
        Ok(self.store.read(d, limit)?)
    }
}

/// A blob as the LAN registry serves it: whole in the store, or arriving. Read in chunks ([`ServedBlob::chunk`])
/// on the reads' pool, so that no client holds a thread of its own (nor its malloc arena) while it is served.
pub enum ServedBlob {
    /// Shared with the listener, which may send it by `sendfile(2)` instead of reading it.
    Stored(Arc<std::fs::File>, u64),
    Arriving(Arriving),
}

impl ServedBlob {
    pub fn size(&self) -> u64 {
        match self {
            ServedBlob::Stored(_, size) => *size,
            ServedBlob::Arriving(a) => a.size,
        }
    }

    /// Up to `max` bytes at `at` of a stored blob if the page cache holds them, read without blocking (Linux's
    /// `RWF_NOWAIT`): the caller then needs no thread for the read. `None` when they must come from the disk, the
    /// kernel cannot tell, or the blob is arriving: read with [`ServedBlob::chunk`] on a thread.
    pub fn chunk_cached(&self, at: u64, max: usize) -> Option<Vec<u8>> {
        use std::os::fd::AsRawFd;
        let ServedBlob::Stored(file, _) = self else {
            return None;
        };
        let mut buf = vec![0u8; max];
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let offset = libc::off_t::try_from(at).ok()?;
        // SAFETY: `iov` describes `buf`, which lives and is not otherwise touched across the call; the descriptor
        // is `file`'s, open for reading.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
        // EAGAIN (not cached), EOPNOTSUPP (an older kernel), 0 (read it the ordinary way to learn why)
        if n <= 0 {
            return None;
        }
        buf.truncate(n as usize);
        Some(buf)
    }

    /// Up to `max` bytes at offset `at`; `None` when none have arrived there yet (ask again in [`ARRIVAL_POLL`]).
    /// Fails when a stored blob ends early, when the download of an arriving one failed, or when nothing arrived
    /// for [`ARRIVAL_STALL`].
    pub fn chunk(&mut self, at: u64, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        use std::os::unix::fs::FileExt;
        match self {
            ServedBlob::Stored(file, size) => {
                let mut buf = vec![0u8; max];
                let n = file.read_at(&mut buf, at)?;
                if n == 0 {
                    return Err(std::io::Error::other(format!(
                        "the stored blob ends at {at} of {size} bytes"
                    )));
                }
                buf.truncate(n);
                Ok(Some(buf))
            }
            ServedBlob::Arriving(a) => a.chunk(at, max),
        }
    }
}

/// A blob an unfinished pull is fetching, followed as its bytes arrive: read from its ingest as the transfer
/// writes it (unbuffered), from the store once committed. Any number of clients follow one download.
pub struct Arriving {
    store: BlobStore,
    db: Arc<Db>,
    pub digest: Digest,
    pub size: u64,
    download: i64,
    /// The handle read from, and whether it is the committed blob.
    file: Option<(std::fs::File, bool)>,
    /// When a byte last arrived, and when the download was last looked at.
    progress: Instant,
    checked: Instant,
}

/// How long a follower waits for the next byte: longer than a transfer's read deadline with a retry.
const ARRIVAL_STALL: Duration = Duration::from_secs(180);
/// How often a follower with nothing to read looks again, and how often it checks that the download lives.
pub const ARRIVAL_POLL: Duration = Duration::from_millis(20);
const ARRIVAL_CHECK: Duration = Duration::from_millis(500);

impl Arriving {
    fn new(store: BlobStore, db: Arc<Db>, digest: Digest, size: u64, download: i64) -> Arriving {
        Arriving {
            store,
            db,
            digest,
            size,
            download,
            file: None,
            progress: Instant::now(),
            checked: Instant::now(),
        }
    }

    fn chunk(&mut self, at: u64, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        use std::os::unix::fs::FileExt;
        if self.file.is_none() {
            self.file = match self.store.open_blob(&self.digest) {
                Ok(f) => Some((f, true)),
                Err(_) => self.store.open_ingest(&self.digest).map(|f| (f, false)),
            };
        }
        let mut buf = vec![0u8; max];
        let n = match &self.file {
            Some((f, _)) => f.read_at(&mut buf, at)?,
            None => 0,
        };
        if n > 0 {
            buf.truncate(n);
            self.progress = Instant::now();
            return Ok(Some(buf));
        }
        if matches!(self.file, Some((_, true))) {
            return Err(std::io::Error::other(format!(
                "{}: the stored blob ends at {at} of {} bytes",
                self.digest, self.size
            )));
        }
        if self.progress.elapsed() > ARRIVAL_STALL {
            return Err(std::io::Error::other(format!(
                "{}: nothing arrived for {} s",
                self.digest,
                ARRIVAL_STALL.as_secs()
            )));
        }
        if self.checked.elapsed() > ARRIVAL_CHECK {
            self.checked = Instant::now();
            let state = self
                .db
                .downloads()
                .download(self.download)
                .map_err(std::io::Error::other)?
                .map(|r| r.state);
            if matches!(state, None | Some(crate::store::DownloadState::Failed)) && !self.store.contains(&self.digest) {
                return Err(std::io::Error::other(format!("{}: its download failed", self.digest)));
            }
            // look again: committed by now, or an ingest started afresh
            self.file = None;
        }
        Ok(None)
    }
}
