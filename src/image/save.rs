//! `save`: images as one tar in Docker's archive layout since v25 — an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…` with uncompressed layers, as dockerd writes them) plus the docker-archive
//! `manifest.json` and `repositories` — streamed: layers are decompressed from the store as they are written.

use super::archive::{decompressed, TarWriter};
use super::{ImageError, ImageService};
use crate::digest::{Corrupt, Digest, Verified};
use crate::events;
use crate::reference::{AnyReference, Reference};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufWriter, Write};

use crate::oci::{OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST};

/// What one save writes: each image once, with the tags it is saved under (none when named by id or digest).
#[derive(Debug, Default)]
pub struct SavePlan {
    pub images: Vec<(Digest, Vec<Reference>)>,
}

/// A writer whose bytes become a request body stream (the save side of a hand-off).
struct ChanWriter(async_channel::Sender<std::io::Result<bytes::Bytes>>);

impl Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(64 * 1024);
        self.0
            .send_blocking(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the engine stopped reading"))?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ImageService {
    /// Hand `names` to the Docker engine at `engine` (Container Station's dockerd): saved as an archive its
    /// `/images/load` reads (manifest.json with plain layers: dockerd 20.10 reads neither zstd nor OCI-only
    /// archives), streamed end to end. The engine's `Loaded image…` lines.
    pub fn handoff(&self, names: &[String], engine: &std::path::Path) -> Result<Vec<String>, ImageError> {
        let plan = self.save_plan(names)?;
        let (tx, rx) = async_channel::bounded(8);
        let loaded = std::thread::scope(|s| {
            let saver = s.spawn(move || {
                let cut = tx.clone();
                let saved = self.save(&plan, BufWriter::with_capacity(64 * 1024, ChanWriter(tx)));
                if let Err(e) = &saved {
                    // the engine must see the archive broken off, not ended
                    let _ = cut.send_blocking(Err(std::io::Error::other(e.to_string())));
                }
                saved
            });
            let client = crate::engine_client::Client {
                socket: engine.to_path_buf(),
            };
            let loaded = smol::block_on(crate::engine_client::engine_load(
                &client,
                crate::engine_client::Outgoing::Stream(rx),
            ));
            let saved = saver
                .join()
                .unwrap_or_else(|_| Err(ImageError::InvalidParameter("the save failed".into())));
            (loaded, saved)
        });
        match loaded {
            (Ok(lines), Ok(())) => Ok(lines),
            (Err(e), _) => Err(ImageError::Handoff {
                engine: engine.display().to_string(),
                msg: e.to_string(),
            }),
            (Ok(_), Err(e)) => Err(e),
        }
    }

    /// Resolve the names of a save before any byte is written: `name:tag` is one image, a bare repository name
    /// every tag of it, an id (or a digest reference) the image without tags.
    pub fn save_plan(&self, names: &[String]) -> Result<SavePlan, ImageError> {
        let mut plan = SavePlan::default();
        let mut add = |id: Digest, tag: Option<Reference>| match plan.images.iter_mut().find(|(i, _)| *i == id) {
            Some((_, tags)) => tags.extend(tag.filter(|t| !tags.contains(t))),
            None => plan.images.push((id, tag.into_iter().collect())),
        };
        for name in names {
            if name.is_empty() {
                return Err(ImageError::BlankName);
            }
            match AnyReference::parse(name)? {
                AnyReference::Id(_) => add(self.resolve(name)?.0, None),
                AnyReference::Named(r) if r.tag().is_none() && r.digest().is_none() => {
                    let tags = self.db.images().repo_tags(&r.name())?;
                    if tags.is_empty() {
                        // not a repository we have: an id prefix, or nothing
                        add(self.resolve(name)?.0, None);
                    }
                    for (t, id) in tags {
                        add(id, Some(Reference::parse(&t)?));
                    }
                }
                AnyReference::Named(r) if r.digest().is_some() => add(self.resolve(name)?.0, None),
                AnyReference::Named(r) => match self.db.images().resolve_ref(&r.to_string())? {
                    Some(id) => add(id, Some(r)),
                    None => {
                        return Err(ImageError::UnknownTag {
                            reference: r.familiar(),
                        })
                    }
                },
            }
        }
        Ok(plan)
    }

    /// Save `names` into the file `path` on the NAS (a station export): written beside it under a temporary
    /// name, fsynced, then renamed over it and the directory fsynced. Survives a crash as: the previous file
    /// (or none) and possibly a `.tmp` beside it, or the complete archive. `progress` sees (bytes written,
    /// bytes expected).
    pub fn export_to(
        &self,
        names: &[String],
        path: &std::path::Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), ImageError> {
        let plan = self.save_plan(names)?;
        let mut expected = 0;
        for (id, _) in &plan.images {
            expected += self.inspect(id.as_str())?.layers.iter().map(|l| l.size).sum::<u64>();
        }
        let io = |source| ImageError::Io {
            context: format!("writing {}", path.display()),
            source,
        };
        let tmp = path.with_extension("tar.tmp");
        // a leftover (or a planted symlink) goes; the new file is ours alone (O_EXCL never follows a link)
        let _ = std::fs::remove_file(&tmp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io)?;
        struct Counted<'a, W> {
            inner: W,
            done: u64,
            total: u64,
            progress: &'a mut dyn FnMut(u64, u64),
        }
        impl<W: Write> Write for Counted<'_, W> {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let n = self.inner.write(b)?;
                let before = self.done;
                self.done += n as u64;
                if before / (1 << 20) != self.done / (1 << 20) {
                    (self.progress)(self.done, self.total);
                }
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.inner.flush()
            }
        }
        let mut out = Counted {
            inner: std::io::BufWriter::with_capacity(256 * 1024, file),
            done: 0,
            total: expected,
            progress,
        };
        let r = self.save(&plan, &mut out).and_then(|()| {
            let file = out.inner.into_inner().map_err(|e| io(e.into_error()))?;
            file.sync_all().map_err(io)?;
            std::fs::rename(&tmp, path).map_err(io)?;
            crate::fsutil::fsync_dir(path.parent().unwrap_or(std::path::Path::new("."))).map_err(io)
        });
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }

    /// Write `plan` to `out` as a tar. Memory stays bounded whatever the image sizes.
    pub fn save(&self, plan: &SavePlan, out: impl Write) -> Result<(), ImageError> {
        let io = |context: String| move |source| ImageError::Io { context, source };
        let mut tw = TarWriter::new(out, 0);
        let mut written: HashSet<Digest> = HashSet::new();
        let mut index = Vec::new();
        let mut manifest_json = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        tw.dir("blobs/").map_err(io("writing the archive".into()))?;
        tw.dir("blobs/sha256/").map_err(io("writing the archive".into()))?;
        for (id, tags) in &plan.images {
            let img = self.inspect(id.as_str())?;
            let mut layer_paths = Vec::new();
            let mut sources = serde_json::Map::new();
            let mut descs = Vec::new();
            for l in &img.layers {
                let path = format!("blobs/sha256/{}", l.diff_id.hex());
                if written.insert(l.diff_id.clone()) {
                    write_layer(&self.store, self.transfers.zstd_window_log_max, &mut tw, &path, l)?;
                }
                let desc = json!({"mediaType": OCI_LAYER, "digest": l.diff_id.as_str(), "size": l.uncompressed_size});
                sources.insert(l.diff_id.to_string(), desc.clone());
                descs.push(desc);
                layer_paths.push(path);
            }
            let cfg_path = format!("blobs/sha256/{}", id.hex());
            if written.insert(id.clone()) {
                tw.bytes(&cfg_path, &img.config)
                    .map_err(io("writing the config".into()))?;
            }
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": id.as_str(), "size": img.config.len()},
                "layers": descs,
            }))
            .unwrap_or_default();
            let mdigest = Digest::of(&manifest);
            if written.insert(mdigest.clone()) {
                tw.bytes(&format!("blobs/sha256/{}", mdigest.hex()), &manifest)
                    .map_err(io("writing a manifest".into()))?;
            }
            index.extend(index_entries(tags, &mdigest, manifest.len()));
            if let Some(top) = img.layers.last() {
                for t in tags {
                    let tag = t.tag().unwrap_or("latest").to_string();
                    let repo = repositories.entry(t.familiar_name()).or_default();
                    repo.insert(tag, top.diff_id.hex().to_string());
                }
            }
            let repo_tags: Value = if tags.is_empty() {
                Value::Null
            } else {
                tags.iter().map(|t| t.familiar()).collect::<Vec<_>>().into()
            };
            manifest_json.push(json!({"Config": cfg_path, "RepoTags": repo_tags, "Layers": layer_paths,
                                      "LayerSources": sources}));
            self.events
                .emit(events::Action::Save, id.as_str(), self.event_attrs(id, id.as_str()));
        }
        let w = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": index});
        let e = io("writing the archive".into());
        (|| {
            tw.bytes("index.json", &w(&index))?;
            tw.bytes("manifest.json", &w(&Value::from(manifest_json)))?;
            tw.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            if !repositories.is_empty() {
                tw.bytes("repositories", &w(&json!(repositories)))?;
            }
            tw.finish().map(|_| ())
        })()
        .map_err(e)
    }
}

/// Layer `l` uncompressed into the archive at `path`, verified as it streams: the blob against its digest
/// and what it inflates to against its diff_id. A damaged layer fails the save (after its bytes went out:
/// the caller must cut the stream so that no client takes the archive for whole) and leaves the store.
fn write_layer<W: Write>(
    store: &crate::store::BlobStore,
    zstd_window_log_max: u32,
    tw: &mut TarWriter<W>,
    path: &str,
    l: &crate::store::db::LayerRecord,
) -> Result<(), ImageError> {
    let c = crate::oci::Descriptor::compression_of(&l.media_type)
        .map_err(crate::registry::manifest::ManifestError::from)?;
    let blob = store.open_blob(&l.digest)?;
    let mut blob = Verified::new(std::io::BufReader::new(blob), l.digest.clone());
    let written = decompressed(&mut blob, c, zstd_window_log_max).and_then(|r| {
        let mut r = Verified::new(r, l.diff_id.clone());
        tw.file(path, l.uncompressed_size, &mut r)?;
        r.finish()
    });
    // A decoder that failed on damaged data says so in its own words: the blob's own check says whether the
    // store holds it damaged.
    use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
    let r = match written {
        Ok(()) => blob.finish(),
        Err(e) if matches!(e.kind(), InvalidData | InvalidInput | UnexpectedEof) => match blob.finish() {
            Err(damaged) if Corrupt::of(&damaged).is_some() => Err(damaged),
            _ => Err(e),
        },
        Err(e) => Err(e),
    };
    r.map_err(|e| read_failed(store, &l.digest, e, format!("writing layer {}", l.diff_id)))
}

/// The entries of `index.json` for a manifest: one per tag, named as containerd and the OCI annotations name
/// it, or one without a name for an untagged image.
fn index_entries(tags: &[Reference], manifest: &Digest, size: usize) -> Vec<Value> {
    let desc = |annotations: Value| json!({"mediaType": OCI_MANIFEST, "digest": manifest.as_str(), "size": size, "annotations": annotations});
    if tags.is_empty() {
        return vec![desc(json!({}))];
    }
    tags.iter()
        .map(|t| {
            desc(json!({"io.containerd.image.name": t.to_string(),
                        "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest")}))
        })
        .collect()
}

/// The error of a read of blob `d` that failed: a blob found corrupt (it, or what it inflates to, does not
/// hash to its name) is put out of the store so that the next pull fetches it again.
pub(super) fn read_failed(
    store: &crate::store::BlobStore,
    d: &Digest,
    e: std::io::Error,
    context: String,
) -> ImageError {
    let Some(c) = Corrupt::of(&e) else {
        return ImageError::Io { context, source: e };
    };
    match store.quarantine(d) {
        Ok(to) => log::error!(
            "{c}: blob {d} moved to {}; pulling the image again fetches it",
            to.display()
        ),
        Err(qe) => log::error!("{c}: putting blob {d} aside: {qe}"),
    }
    ImageError::Blob(crate::store::blobs::BlobError::Mismatch {
        expected: c.expected.clone(),
        got: c.found.clone(),
    })
}
