//! `depot bundle import`: a bundle (or any `oci-archive` tar) taken in from a stream, in two phases.
//!
//! 1. Every member is read once, in the order the tar has it: each blob streams into an ingest and is committed
//!    only when it hashes to its name (one already in the store is passed by, never written again); nothing is
//!    named yet, and no collection runs meanwhile.
//! 2. Then `index.json` says what the blobs are: every image is built and checked by the admission step (its
//!    blobs, the signature policy with the signatures the bundle brought) before any is recorded, then each is
//!    recorded with its refs, templates after them, then the pins.
//!
//! A failure at any point (a damaged blob, a full volume, a refusal) records nothing more and collects the blobs
//! this import wrote that nothing needs; a crash leaves blobs no image names, which the next start collects.

use super::*;
use crate::digest::{Digest, Hasher};
use crate::image::admit::{Candidate, Entry, Signatures};
use crate::image::{pull, ImageError, ImageService};
use crate::policy::sigstore::parse_signature_manifest;
use crate::reference::Reference;
use crate::registry::manifest::parse_config;
use crate::store::db::{LayerRecord, LxcTemplateRow};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;

/// The largest `index.json` or `oci-layout` read: a bundle of thousands of images stays below it.
const MAX_INDEX: u64 = 4 << 20;
/// More members than a bundle has: a hostile tar is refused before it costs much.
const MAX_MEMBERS: usize = 100_000;

/// What an import reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportEvent {
    /// Bytes of the bundle read so far.
    Read(u64),
    Image(String),
    Template(String),
    Pinned {
        owner: String,
        target: String,
    },
}

/// What an import brought in.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ImportSummary {
    pub images: Vec<String>,
    pub templates: Vec<String>,
    pub pins: usize,
    /// Blobs written, and the bytes they hold.
    pub blobs_written: usize,
    pub bytes_written: u64,
    /// Blobs the store had already: read past, not written again.
    pub blobs_present: usize,
}

fn bad(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidParameter(format!("bundle: {}", msg.into()))
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        context: context.to_string(),
        source,
    }
}

/// A reader that tells how far it got.
struct Counting<'a> {
    inner: &'a mut dyn Read,
    read: u64,
    told: u64,
    on: &'a mut dyn FnMut(ImportEvent),
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.told >= 4 << 20 || n == 0 {
            self.told = self.read;
            (self.on)(ImportEvent::Read(self.read));
        }
        Ok(n)
    }
}

impl ImageService {
    /// Import the bundle `r` streams. See the module for what a failure leaves.
    pub fn bundle_import(
        &self,
        r: &mut dyn Read,
        on: &mut dyn FnMut(ImportEvent),
    ) -> Result<ImportSummary, ImageError> {
        let no_gc = self.transfers.no_gc();
        let mut summary = ImportSummary::default();
        let mut written = Vec::new();
        let result = self
            .ingest_members(r, on, &mut summary, &mut written)
            .and_then(|index| {
                let index = index.ok_or_else(|| bad("no index.json"))?;
                self.admit_bundle(&index, on, &mut summary)
            });
        drop(no_gc);
        if result.is_err() {
            // what this import wrote and nothing needs goes now, not at the next start
            if let Err(e) = self.transfers.collect(&self.db, &written) {
                log::warn!("collecting a failed import's blobs: {e}");
            }
        }
        result.map(|_| summary)
    }

    /// Phase 1: every blob into the store, verified; `index.json` kept.
    fn ingest_members(
        &self,
        r: &mut dyn Read,
        on: &mut dyn FnMut(ImportEvent),
        summary: &mut ImportSummary,
        written: &mut Vec<Digest>,
    ) -> Result<Option<Vec<u8>>, ImageError> {
        let mut tar = tar::Archive::new(Counting {
            inner: r,
            read: 0,
            told: 0,
            on,
        });
        let mut index = None;
        for (n, entry) in tar.entries().map_err(io("reading the bundle"))?.enumerate() {
            if n >= MAX_MEMBERS {
                return Err(bad(format!("more than {MAX_MEMBERS} members")));
            }
            let mut e = entry.map_err(io("reading the bundle"))?;
            let path = String::from_utf8_lossy(&e.path_bytes())
                .trim_start_matches("./")
                .to_string();
            match e.header().entry_type() {
                tar::EntryType::Directory => continue,
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                other => return Err(bad(format!("{path}: a {other:?} member, where files are expected"))),
            }
            let size = e.size();
            if path == "index.json" || path == "oci-layout" {
                if size > MAX_INDEX {
                    return Err(bad(format!("{path} is larger than {MAX_INDEX} bytes")));
                }
                let mut b = Vec::with_capacity(size as usize);
                e.read_to_end(&mut b).map_err(io("reading the bundle"))?;
                if path == "index.json" {
                    index = Some(b);
                }
                continue;
            }
            let d = path
                .strip_prefix("blobs/sha256/")
                .ok_or_else(|| bad(format!("{path}: not a member of an OCI image layout")))
                .and_then(|hex| Digest::from_sha256_hex(hex).map_err(|e| bad(format!("{path}: {e}"))))?;
            if self.store.contains(&d) {
                summary.blobs_present += 1;
                continue;
            }
            self.ingest_blob(&d, size, &mut e)?;
            written.push(d);
            summary.blobs_written += 1;
            summary.bytes_written += size;
        }
        Ok(index)
    }

    /// One blob from the bundle into the store: it must fit, and hash to its name.
    fn ingest_blob(&self, d: &Digest, size: u64, r: &mut dyn Read) -> Result<(), ImageError> {
        if let Err((need, free)) = self
            .store
            .room_for(&[(d.clone(), size)], 0)
            .map_err(io("checking free space"))?
        {
            return Err(ImageError::NoSpace {
                reference: format!("bundle blob {d}"),
                need,
                free,
            });
        }
        let mut ing = self.store.ingest(d)?;
        // bytes an earlier, interrupted import left are not trusted: this copy is whole
        ing.reset()?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = r.read(&mut buf).map_err(io("reading the bundle"))?;
            if n == 0 {
                break;
            }
            ing.write_all(&buf[..n])?;
        }
        ing.commit(Some(size))?;
        Ok(())
    }

    /// Phase 2: what `index.json` names, checked whole before anything is recorded. Returns the blobs that
    /// templates' older builds held, for the caller to collect once no guard holds collections off.
    fn admit_bundle(
        &self,
        index: &[u8],
        on: &mut dyn FnMut(ImportEvent),
        summary: &mut ImportSummary,
    ) -> Result<Vec<Digest>, ImageError> {
        let v: Value = serde_json::from_slice(index).map_err(|e| bad(format!("index.json: {e}")))?;
        let entries = v["manifests"].as_array().cloned().unwrap_or_default();
        // by (repository, the manifest they sign)
        let mut sigs: HashMap<(String, Digest), Signatures> = HashMap::new();
        for e in entries.iter().filter(|e| e["annotations"][SIGNATURE_OF].is_string()) {
            let (key, s) = self.bundled_signatures(e)?;
            let slot = sigs.entry(key).or_default();
            slot.list.extend(s.list);
            slot.artifact = slot.artifact.take().or(s.artifact);
        }
        let mut images = Vec::new();
        let mut templates = Vec::new();
        for e in entries.iter().filter(|e| !e["annotations"][SIGNATURE_OF].is_string()) {
            if e["artifactType"] == LXC_ARTIFACT {
                templates.push(self.bundled_template(e)?);
            } else if let Some(c) = self.bundled_image(e, &sigs)? {
                images.push(c);
            }
        }
        if images.is_empty() && templates.is_empty() {
            return Err(bad("index.json names no image and no template"));
        }
        for (c, _) in &images {
            self.gate.check(&self.store, c)?;
        }
        let mut pins = Vec::new();
        for (c, owner) in images {
            let name = c
                .refs
                .last()
                .map(|r| r.0.clone())
                .unwrap_or_else(|| c.image.id.to_string());
            self.admit(c)?;
            on(ImportEvent::Image(Reference::familiar_of(&name)));
            summary.images.push(Reference::familiar_of(&name));
            pins.extend(owner.clone().map(|o| (o, name)));
        }
        let mut replaced = Vec::new();
        for (row, owner) in &templates {
            let old = self.db.templates().put_lxc_template(row)?;
            replaced.extend(row.released(old));
            on(ImportEvent::Template(row.name.clone()));
            summary.templates.push(row.name.clone());
            pins.extend(
                owner
                    .clone()
                    .map(|o| (o, format!("{}{}", crate::image::pins::LXC, row.name))),
            );
        }
        for (owner, target) in pins {
            self.pins.add(&owner, std::slice::from_ref(&target))?;
            on(ImportEvent::Pinned { owner, target });
            summary.pins += 1;
        }
        Ok(replaced)
    }

    /// A `.sig` manifest of the bundle: its repository (its name is `REPO:sha256-<hex>.sig`, as in a registry)
    /// and the digest it signs, and its signatures read from the store.
    fn bundled_signatures(&self, e: &Value) -> Result<((String, Digest), Signatures), ImageError> {
        let digest = descriptor_digest(e)?;
        let name = e["annotations"][REF_NAME].as_str().unwrap_or_default();
        let repo = name
            .rsplit_once(':')
            .and_then(|(repo, _)| Reference::parse(repo).ok())
            .filter(|r| r.tag().is_none() && r.digest().is_none())
            .ok_or_else(|| {
                bad(format!(
                    "signature manifest {digest}: {REF_NAME} {name:?} is no REPO:TAG"
                ))
            })?
            .name();
        let signs: Digest = e["annotations"][SIGNATURE_OF]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| bad(format!("{SIGNATURE_OF}: {e}")))?;
        let m = parse_signature_manifest(&self.store.read(&digest, self.registry.options().max_manifest_bytes)?)
            .map_err(bad)?;
        let s = crate::image::signatures::stored(self, digest, &signs, &repo, m)?;
        Ok(((repo, signs), s))
    }

    /// An image entry as a candidate for the admission step (and the app to pin it for).
    fn bundled_image(
        &self,
        e: &Value,
        sigs: &HashMap<(String, Digest), Signatures>,
    ) -> Result<Option<(Candidate, Option<String>)>, ImageError> {
        let top = descriptor_digest(e)?;
        let ann = &e["annotations"];
        let max = self.registry.options().max_manifest_bytes;
        let read = |d: &Digest| Ok(self.store.read(d, max)?);
        let (manifests, m) =
            crate::image::archive::image_manifest(&read, &top, e["mediaType"].as_str(), &self.platform)?;
        let config = self.store.read(&m.config.digest, pull::MAX_CONFIG_BYTES)?;
        let cfg = parse_config(&config)?;
        if cfg.diff_ids.len() != m.layers.len() {
            return Err(bad(format!(
                "{top}: {} layers, {} diff_ids",
                m.layers.len(),
                cfg.diff_ids.len()
            )));
        }
        let sizes: Vec<u64> = ann[UNCOMPRESSED]
            .as_str()
            .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default();
        let mut layers = Vec::new();
        for (i, (l, diff_id)) in m.layers.iter().zip(&cfg.diff_ids).enumerate() {
            let uncompressed_size = match sizes.get(i) {
                Some(s) if sizes.len() == m.layers.len() => *s,
                _ => self.measure_layer(&l.digest, &l.media_type, diff_id)?,
            };
            layers.push(LayerRecord {
                digest: l.digest.clone(),
                diff_id: diff_id.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                uncompressed_size,
            });
        }
        let name = ann[CONTAINERD_NAME]
            .as_str()
            .or_else(|| ann[REF_NAME].as_str().filter(|n| n.contains('/') || n.contains(':')));
        let named = name.map(Reference::parse).transpose()?;
        let refs = named.as_ref().map(|r| pull::pull_refs(r, &top)).unwrap_or_default();
        // the signatures fetched for this image's own repository
        let signatures = named
            .and_then(|r| sigs.get(&(r.name(), top.clone())).cloned())
            .unwrap_or_default();
        let manifest_digest = manifests.last().map(|(d, _)| d.clone()).unwrap_or_else(|| top.clone());
        let c = Candidate {
            image: pull::new_image(&m.config.digest, &manifest_digest, manifests, &cfg, layers),
            refs,
            entry: Entry::Bundle,
            signatures,
        };
        Ok(Some((c, ann[PIN_OWNER].as_str().map(str::to_string))))
    }

    /// A layer's uncompressed size, read from the store, its diff_id checked on the way (a foreign bundle does
    /// not say the size).
    fn measure_layer(&self, d: &Digest, media_type: &str, diff_id: &Digest) -> Result<u64, ImageError> {
        let c = crate::oci::Descriptor::compression_of(media_type)
            .map_err(crate::registry::manifest::ManifestError::from)?;
        let blob = std::io::BufReader::new(self.store.open_blob(d)?);
        let mut r = crate::image::archive::decompressed(blob, c, 31).map_err(io("reading a layer"))?;
        let mut h = Hasher::default();
        std::io::copy(&mut r, &mut h).map_err(io("reading a layer"))?;
        let (got, len) = h.finish();
        if &got != diff_id {
            return Err(bad(format!(
                "layer {d}: its content hashes to {got}, its config says {diff_id}"
            )));
        }
        Ok(len)
    }

    /// A template entry: its record, its blobs in the store.
    fn bundled_template(&self, e: &Value) -> Result<(LxcTemplateRow, Option<String>), ImageError> {
        let d = descriptor_digest(e)?;
        let m: Value =
            serde_json::from_slice(&self.store.read(&d, MAX_INDEX)?).map_err(|e| bad(format!("{d}: {e}")))?;
        let record: TemplateRecord = serde_json::from_str(m["annotations"][TEMPLATE].as_str().unwrap_or_default())
            .map_err(|e| bad(format!("{d}: the template record: {e}")))?;
        let name: crate::lxc::index::TemplateName =
            record.name.parse().map_err(|e| bad(format!("{}: {e}", record.name)))?;
        let layer = |mt: &str| -> Result<Option<(Digest, u64)>, ImageError> {
            let Some(l) = m["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["mediaType"] == mt)
            else {
                return Ok(None);
            };
            let d = descriptor_digest(l)?;
            match self.store.contains(&d) {
                true => Ok(Some((d, l["size"].as_u64().unwrap_or_default()))),
                false => Err(bad(format!("template {}: blob {d} is not in the bundle", record.name))),
            }
        };
        let (rootfs_digest, rootfs_size) =
            layer(LXC_ROOTFS)?.ok_or_else(|| bad(format!("template {}: no rootfs", record.name)))?;
        let row = LxcTemplateRow {
            name: name.to_string(),
            dist: name.dist.clone(),
            release: name.release.clone(),
            arch: name.arch.clone(),
            variant: name.variant.clone(),
            build: record.build,
            source: record.source,
            rootfs_digest,
            rootfs_size,
            meta_digest: layer(LXC_META)?.map(|(d, _)| d),
            meta: record.meta,
            created_at: crate::store::db::now(),
        };
        Ok((row, e["annotations"][PIN_OWNER].as_str().map(str::to_string)))
    }
}

fn descriptor_digest(e: &Value) -> Result<Digest, ImageError> {
    e["digest"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|err| bad(format!("a descriptor's digest: {err}")))
}
