//! `load`: images from a tar archive — Docker's archive (`manifest.json`, both the v25 layout and the older
//! `<id>/layer.tar` one) or a plain OCI image layout (`index.json`) — already streamed to a file on the volume
//! (never held in memory). Every layer, gzip, zstd or plain, is checked against the config's `diff_ids` while it
//! is copied into the store; tags move to the loaded images.

use super::archive::sniff;
use super::{pull, ImageError, ImageService};
use crate::digest::Digest;
use crate::events;
use crate::reference::Reference;
use crate::registry::manifest::parse_config;
use crate::store::db::{LayerRecord, RefKind};
use crate::transfer::diff::DiffHasher;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAX_JSON: u64 = 8 * 1024 * 1024;
/// More members than any real archive has: a hostile one is refused before it costs much memory.
const MAX_MEMBERS: usize = 200_000;
use crate::oci::{OCI_CONFIG, OCI_MANIFEST};

/// What a load reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadEvent {
    /// Bytes of a layer read so far (`id`: the short diff_id).
    Layer {
        id: String,
        current: u64,
        total: u64,
    },
    /// A tag that named another image now names a loaded one.
    Renamed {
        tag: String,
        old: Digest,
    },
    Loaded {
        tag: String,
    },
    LoadedId {
        id: Digest,
    },
}

/// Where a member's bytes are in the archive file.
#[derive(Debug, Clone, Copy)]
struct Member {
    offset: u64,
    size: u64,
}

/// A member's bytes as a reader (positional reads: members are visited in any order).
struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.end - self.pos) as usize);
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// One image the archive holds: where its config and layers are, and its tags.
struct Item {
    config: String,
    layers: Vec<String>,
    tags: Vec<String>,
}

fn bad(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidParameter(format!("invalid archive: {}", msg.into()))
}

fn index_members(f: &File) -> Result<HashMap<String, Member>, ImageError> {
    let mut members = HashMap::new();
    let mut a = tar::Archive::new(f);
    let entries = a.entries().map_err(|e| bad(e.to_string()))?;
    for e in entries {
        let e = e.map_err(|e| bad(e.to_string()))?;
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = e.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_string();
        members.insert(
            path,
            Member {
                offset: e.raw_file_position(),
                size: e.size(),
            },
        );
        if members.len() > MAX_MEMBERS {
            return Err(bad(format!("more than {MAX_MEMBERS} members")));
        }
    }
    Ok(members)
}

impl ImageService {
    /// Load the archive in `path`. Images come in the archive's order; an error stops at the image it met,
    /// leaving the images before it loaded (each one whole: a ref points at an image only once every blob is in).
    pub fn load(&self, path: &Path, on: &mut dyn FnMut(LoadEvent)) -> Result<Vec<Digest>, ImageError> {
        let f = File::open(path).map_err(|source| ImageError::Io {
            context: "opening the uploaded archive".into(),
            source,
        })?;
        let archive = Archive {
            svc: self,
            members: index_members(&f)?,
            file: &f,
        };
        let mut loaded = Vec::new();
        for item in archive.items()? {
            loaded.push(archive.image(&item, on)?);
        }
        Ok(loaded)
    }
}

/// A file of layers being taken into the store: an archive being loaded (its members by path), or an
/// import's single layer (no members).
pub(crate) struct Archive<'a> {
    pub(crate) svc: &'a ImageService,
    pub(crate) file: &'a File,
    members: HashMap<String, Member>,
}

impl<'a> Archive<'a> {
    /// The upload `file` as one layer.
    pub(crate) fn single(svc: &'a ImageService, file: &'a File) -> Archive<'a> {
        Archive {
            svc,
            file,
            members: HashMap::new(),
        }
    }

    fn member(&self, p: &str) -> Result<Member, ImageError> {
        self.members
            .get(p)
            .copied()
            .ok_or_else(|| bad(format!("{p} is missing")))
    }

    fn read_json(&self, p: &str) -> Result<Vec<u8>, ImageError> {
        let m = self.member(p)?;
        if m.size > MAX_JSON {
            return Err(bad(format!("{p} is larger than {MAX_JSON} bytes")));
        }
        let mut buf = Vec::new();
        MemberReader {
            file: self.file,
            pos: m.offset,
            end: m.offset + m.size,
        }
        .read_to_end(&mut buf)
        .map_err(|source| ImageError::Io {
            context: p.to_string(),
            source,
        })?;
        Ok(buf)
    }

    /// The images the archive holds, by its Docker `manifest.json` or its OCI `index.json`.
    fn items(&self) -> Result<Vec<Item>, ImageError> {
        if self.members.contains_key("manifest.json") {
            docker_items(&self.read_json("manifest.json")?)
        } else if self.members.contains_key("index.json") {
            oci_items(&self.read_json("index.json")?, &self.svc.platform, &|p| {
                self.read_json(p)
            })
        } else {
            Err(bad("no manifest.json or index.json"))
        }
    }

    /// Load one image: its layers checked against its config's diff_ids, its config, a manifest for it, then
    /// admitted with its tags.
    fn image(&self, item: &Item, on: &mut dyn FnMut(LoadEvent)) -> Result<Digest, ImageError> {
        let svc = self.svc;
        let config = self.read_json(&item.config)?;
        let id = Digest::of(&config);
        let cfg = parse_config(&config)?;
        if cfg.diff_ids.len() != item.layers.len() {
            return Err(bad(format!(
                "{} lists {} layers, its config {} diff_ids",
                item.config,
                item.layers.len(),
                cfg.diff_ids.len()
            )));
        }
        // Nothing this load commits is collected by a concurrent delete before the image exists.
        let _no_gc = svc.transfers.no_gc();
        let mut layers = Vec::new();
        for (i, (p, want)) in item.layers.iter().zip(&cfg.diff_ids).enumerate() {
            let rec = self.layer(self.member(p)?, Some(want), on).map_err(|e| match e {
                LayerFailure::DiffId(got) => bad(format!(
                    "invalid diffID for layer {i}: expected \"{want}\", got \"{got}\""
                )),
                LayerFailure::Image(e) => e,
            })?;
            layers.push(rec);
        }
        svc.store.put(&id, &config)?;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": id.as_str(), "size": config.len()},
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest.as_str(), "size": l.size})).collect::<Vec<_>>(),
        }))
        .unwrap_or_default();
        let mdigest = Digest::of(&manifest);
        svc.store.put(&mdigest, &manifest)?;
        let mut refs = Vec::new();
        let mut tags = Vec::new();
        for t in &item.tags {
            let r = Reference::parse(t)?.with_default_tag();
            if r.digest().is_some() {
                continue;
            }
            if let Some(old) = svc.db.images().resolve_ref(&r.to_string())?.filter(|o| *o != id) {
                tags.push(LoadEvent::Renamed { tag: r.familiar(), old });
            }
            tags.push(LoadEvent::Loaded { tag: r.familiar() });
            refs.push((r.to_string(), r.name(), RefKind::Tag));
        }
        svc.admit(super::admit::Candidate {
            image: pull::new_image(
                &id,
                &mdigest,
                vec![(mdigest.clone(), OCI_MANIFEST.into())],
                &cfg,
                layers,
            ),
            refs,
            entry: super::admit::Entry::Load,
            signatures: Default::default(),
        })?;
        drop(_no_gc);
        svc.events
            .emit(events::Action::Load, id.as_str(), svc.event_attrs(&id, id.as_str()));
        if tags.is_empty() {
            on(LoadEvent::LoadedId { id: id.clone() });
        }
        for t in tags {
            on(t);
        }
        Ok(id)
    }

    /// Copy the whole of `f` into the store as one layer (import): its diff_id is whatever it is.
    pub(crate) fn whole(&self, on: &mut dyn FnMut(LoadEvent)) -> Result<LayerRecord, ImageError> {
        let f = self.file;
        let size = f
            .metadata()
            .map_err(|source| ImageError::Io {
                context: "the uploaded layer".into(),
                source,
            })?
            .len();
        // What no diff_id vouches for must at least be a tar: every header read before a byte is stored.
        let mut head = [0u8; 4];
        let n = f.read_at(&mut head, 0).map_err(|source| ImageError::Io {
            context: "the uploaded layer".into(),
            source,
        })?;
        let r = MemberReader {
            file: f,
            pos: 0,
            end: size,
        };
        let plain = super::archive::decompressed(r, sniff(&head[..n]), self.svc.transfers.zstd_window_log_max)
            .map_err(|e| bad(format!("the upload does not decompress: {e}")))?;
        let mut a = tar::Archive::new(plain);
        let mut entries = 0usize;
        for e in a.entries().map_err(|e| bad(format!("not a tar: {e}")))? {
            let mut e = e.map_err(|e| bad(format!("not a tar: {e}")))?;
            io::copy(&mut e, &mut io::sink()).map_err(|e| bad(format!("not a tar: {e}")))?;
            entries += 1;
        }
        if entries == 0 {
            return Err(bad("the upload is an empty tar"));
        }
        self.layer(Member { offset: 0, size }, None, on).map_err(|e| match e {
            LayerFailure::Image(e) => e,
            LayerFailure::DiffId(_) => unreachable!("no diff_id was asked for"),
        })
    }

    /// Copy one layer into the store, checking its diff_id on the way when `want` is given.
    fn layer(
        &self,
        m: Member,
        want: Option<&Digest>,
        on: &mut dyn FnMut(LoadEvent),
    ) -> Result<LayerRecord, LayerFailure> {
        let f = self.file;
        let what = want.map(|w| w.to_string()).unwrap_or_else(|| "import".into());
        let io = |source| {
            LayerFailure::Image(ImageError::Io {
                context: format!("loading layer {what}"),
                source,
            })
        };
        let mut r = MemberReader {
            file: f,
            pos: m.offset,
            end: m.offset + m.size,
        };
        let mut head = [0u8; 4];
        let n = f.read_at(&mut head, m.offset).map_err(io)?;
        let c = sniff(&head[..n]);
        let mut diff = DiffHasher::new(c, self.svc.transfers.zstd_window_log_max).map_err(io)?;
        let mut w = self.svc.store.writer().map_err(|e| LayerFailure::Image(e.into()))?;
        let id = want.map(|w| w.short().to_string()).unwrap_or_else(|| "import".into());
        let mut buf = vec![0u8; 128 * 1024];
        let (mut done, mut last) = (0u64, 0u64);
        loop {
            let n = r.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).map_err(io)?;
            diff.update(&buf[..n])
                .map_err(|e| LayerFailure::Image(bad(format!("layer {what} does not decompress: {e}"))))?;
            done += n as u64;
            if done - last >= (m.size / 100).max(512 * 1024) || done == m.size {
                on(LoadEvent::Layer {
                    id: id.clone(),
                    current: done,
                    total: m.size,
                });
                last = done;
            }
        }
        let (got, usize) = diff
            .finish()
            .map_err(|e| LayerFailure::Image(bad(format!("layer {what} does not decompress: {e}"))))?;
        if want.is_some_and(|w| *w != got) {
            return Err(LayerFailure::DiffId(got));
        }
        let (digest, size) = w.commit().map_err(|e| LayerFailure::Image(e.into()))?;
        let media_type = c.oci_layer_type();
        let rec = LayerRecord {
            digest: digest.clone(),
            diff_id: got.clone(),
            media_type: media_type.into(),
            size,
            uncompressed_size: usize,
        };
        let _ = self.svc.db.images().put_blob_meta(&crate::store::db::BlobMeta {
            digest,
            size,
            media_type: media_type.into(),
            diff_id: Some(got),
            uncompressed_size: Some(usize),
        });
        Ok(rec)
    }
}

/// `manifest.json` of a docker archive: `[{"Config", "RepoTags", "Layers"}]`.
fn docker_items(text: &[u8]) -> Result<Vec<Item>, ImageError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct E {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let list: Vec<E> = serde_json::from_slice(text).map_err(|e| bad(format!("manifest.json: {e}")))?;
    Ok(list
        .into_iter()
        .map(|e| Item {
            config: e.config,
            layers: e.layers,
            tags: e.repo_tags.unwrap_or_default(),
        })
        .collect())
}

/// `index.json` of an OCI layout: each image manifest (an index's entry for this daemon's platform), named
/// by `io.containerd.image.name`, or by `org.opencontainers.image.ref.name` when that is a whole reference.
fn oci_items(
    text: &[u8],
    platform: &crate::platform::Platform,
    read: &dyn Fn(&str) -> Result<Vec<u8>, ImageError>,
) -> Result<Vec<Item>, ImageError> {
    let v: serde_json::Value = serde_json::from_slice(text).map_err(|e| bad(format!("index.json: {e}")))?;
    let blob = |d: &Digest| format!("blobs/{}/{}", d.algorithm(), d.hex());
    let mut items = Vec::new();
    for desc in v["manifests"].as_array().cloned().unwrap_or_default() {
        let d: Digest = desc["digest"]
            .as_str()
            .unwrap_or("")
            .parse()
            .map_err(|e| bad(format!("index.json: {e}")))?;
        let (_, image) = super::archive::image_manifest(&|m| read(&blob(m)), &d, desc["mediaType"].as_str(), platform)?;
        let ann = &desc["annotations"];
        let name = ann["io.containerd.image.name"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                ann["org.opencontainers.image.ref.name"]
                    .as_str()
                    .filter(|n| n.contains(':') || n.contains('/'))
                    .map(str::to_string)
            });
        items.push(Item {
            config: blob(&image.config.digest),
            layers: image.layers.iter().map(|l| blob(&l.digest)).collect(),
            tags: name.into_iter().collect(),
        });
    }
    Ok(items)
}

enum LayerFailure {
    DiffId(Digest),
    Image(ImageError),
}
