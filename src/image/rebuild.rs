//! Restore the database's images and refs from the data root alone: the OCI layout's `index.json` names every
//! stored manifest and its ref; manifests, configs and layers are blobs. Every start does this for what the
//! database does not know (a lost or rolled-back `depot.db`, or a crash between a delete's database commit and
//! its `index.json` rewrite: the delete was never answered, so the image coming back is right), and
//! `depot fsck --repair` does it into a new database when the old one is damaged. The database wins where both
//! know a ref: `index.json` is written after every database change, never before.
//!
//! What cannot come back: running downloads (their bytes stay in `ingest/` for a new pull to resume from for a
//! day) and the times refs were set. A rebuilt database never collects blobs it does not know (see
//! [`super::META_BLOB_GC`]).

use super::error::ImageError;
use super::pull::MAX_CONFIG_BYTES;
use crate::digest::Digest;
use crate::oci::MAX_MANIFEST;
use crate::reference::Reference;
use crate::registry::manifest::{parse_config, parse_manifest, Manifest};
use crate::store::db::RefKind;
use crate::store::layout;
use crate::store::{BlobStore, Db};
use crate::transfer::{Claims, Slots, Transfers};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct RebuildReport {
    pub images: usize,
    pub refs: usize,
    /// Entries of `index.json` that could not be restored, with why.
    pub skipped: Vec<String>,
}

/// Restore every image `index.json` names whose manifest the database does not know, with those of its refs the
/// database does not have. A no-op when the two agree.
pub fn rebuild(
    db: &Db,
    store: &BlobStore,
    gate: &super::admit::Gate,
    zstd_window_log_max: u32,
) -> Result<RebuildReport, ImageError> {
    let entries = layout::read_index(store.root()).map_err(|source| ImageError::Io {
        context: "reading index.json".into(),
        source,
    })?;
    // Facts about layers (diff_id, uncompressed size) are recomputed from the blobs by the same code a pull uses.
    let facts = Transfers {
        store: store.clone(),
        slots: Slots::new(1),
        claims: Claims::default(),
        retry: Default::default(),
        zstd_window_log_max,
        throttle: Default::default(),
        gc_lock: Default::default(),
        running: Default::default(),
    };
    let mut by_manifest: BTreeMap<Digest, (String, Vec<String>)> = BTreeMap::new();
    for e in entries {
        let slot = by_manifest.entry(e.manifest).or_insert((e.media_type, Vec::new()));
        slot.1.extend(e.ref_name);
    }
    let known = db.images().image_manifests()?;
    let mut report = RebuildReport::default();
    for (manifest, (media_type, names)) in by_manifest {
        if known.contains(&manifest) {
            continue;
        }
        let mut fresh = Vec::new();
        for n in names {
            if db.images().resolve_ref(&n)?.is_none() {
                fresh.push(n);
            }
        }
        match restore(db, store, gate, &facts, &manifest, &media_type, &fresh) {
            Ok(n) => {
                report.images += 1;
                report.refs += n;
            }
            Err(why) => report.skipped.push(format!("{manifest} ({}): {why}", fresh.join(", "))),
        }
    }
    if report.images > 0 {
        // The database did not see these arrive: it may not know every owner of every blob.
        db.settings()
            .set_meta(super::META_BLOB_GC, "off: images restored from index.json")?;
    }
    Ok(report)
}

/// Restore one image and its refs; the number of refs restored.
fn restore(
    db: &Db,
    store: &BlobStore,
    gate: &super::admit::Gate,
    facts: &Transfers,
    manifest: &Digest,
    media_type: &str,
    names: &[String],
) -> Result<usize, String> {
    let bytes = store.read(manifest, MAX_MANIFEST).map_err(|e| e.to_string())?;
    let m = match parse_manifest(&bytes, Some(media_type)).map_err(|e| e.to_string())? {
        Manifest::Image(m) => m,
        Manifest::Index(_) => return Err("names an index, not an image manifest".into()),
    };
    let cfg_bytes = store
        .read(&m.config.digest, MAX_CONFIG_BYTES)
        .map_err(|e| e.to_string())?;
    let cfg = parse_config(&cfg_bytes).map_err(|e| e.to_string())?;
    if cfg.diff_ids.len() != m.layers.len() {
        return Err(format!("{} diff_ids for {} layers", cfg.diff_ids.len(), m.layers.len()));
    }
    let mut layers = Vec::new();
    for (desc, diff) in m.layers.iter().zip(&cfg.diff_ids) {
        match facts.present(db, desc, diff).map_err(|e| e.to_string())? {
            Some(rec) => layers.push(rec),
            None => return Err(format!("layer {} is not in the store", desc.digest)),
        }
    }
    let mut manifests = vec![(manifest.clone(), m.media_type.clone())];
    let mut refs = Vec::new();
    for name in names {
        let r = Reference::parse(name).map_err(|e| format!("ref {name:?}: {e}"))?;
        let kind = if r.digest().is_some() {
            RefKind::Digest
        } else {
            RefKind::Tag
        };
        // A digest ref may name the index the image was chosen from: keep that index with the image.
        if let Some(d) = r.digest().filter(|d| *d != manifest && store.contains(d)) {
            if let Ok(b) = store.read(d, MAX_MANIFEST) {
                if let Ok(Manifest::Index(idx)) = parse_manifest(&b, None) {
                    manifests.push((d.clone(), idx.media_type));
                }
            }
        }
        refs.push((name.clone(), r.name(), kind));
    }
    let n = refs.len();
    let c = super::admit::Candidate {
        image: super::pull::new_image(&m.config.digest, manifest, manifests, &cfg, layers),
        refs,
        entry: super::admit::Entry::Rebuild,
        signatures: Default::default(),
    };
    gate.admit(db, store, &c).map_err(|e| e.to_string())?;
    Ok(n)
}

/// What a rebuilt database cannot have: it lived in the database alone, and changes too often to be kept
/// anywhere else.
pub const NOT_IN_THE_DATA_ROOT: &str = "sessions and the download history";

/// What `records.json` keeps (see [`crate::store::records`]): lost with the database when that file is missing.
pub const IN_RECORDS: &str = "users and their passwords (a new admin password is generated when TCP is on), API \
     tokens, private registries and their credentials, registry mirrors and download settings set over the API, \
     LXC templates' records, pins";

/// One sentence saying what a rebuild brought back and what it lost, for the daemon's log and `depot fsck
/// --repair`, so that nobody finds out by a failed login.
pub fn rebuilt(images: &RebuildReport, records: Option<&crate::store::records::Restored>) -> String {
    let back = format!("{} images and {} tags from index.json", images.images, images.refs);
    match records {
        Some(r) => format!(
            "back: {back}, and from records.json {r}{}; lost: {NOT_IN_THE_DATA_ROOT}",
            if r.skipped.is_empty() {
                String::new()
            } else {
                format!(" (left out: {})", r.skipped.join("; "))
            }
        ),
        None => format!("back: {back}; lost (no records.json): {IN_RECORDS}, {NOT_IN_THE_DATA_ROOT}"),
    }
}
