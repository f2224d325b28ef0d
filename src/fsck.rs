//! `depot fsck`: an offline check of a data root (the daemon must be stopped; the root lock enforces it). It
//! accounts for every file: each blob is re-hashed against its name, each image's config, layers and manifests
//! must be present, SQLite checks its own file, `index.json` must agree with the database, and every ingest must
//! belong to a download; anything else in the store's directories is a stray. `--repair` removes what cannot be
//! trusted (corrupt blobs, the images whose blobs are gone, strays and orphan ingests), rewrites `index.json`,
//! and rebuilds a lost or damaged database from the OCI layout.

use crate::digest::{Digest, Hasher};
use crate::image::rebuild::{rebuild, RebuildReport};
use crate::store::{layout, BlobStore, DataRoot, Db, DbError, RootLock};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> FsckError {
    let context = context.into();
    move |source| FsckError::Io { context, source }
}

/// Partial bytes of a failed download are kept this long for a new pull to resume from (as the daemon does).
const KEEP_FAILED_SECS: i64 = 24 * 3600;

#[derive(Debug, Default)]
pub struct Report {
    pub blobs: u64,
    pub bytes: u64,
    /// Blobs whose content does not hash to their name.
    pub corrupt: Vec<Digest>,
    /// Images with blobs missing from the store: image id → missing digests.
    pub broken_images: BTreeMap<Digest, Vec<Digest>>,
    /// What SQLite reported (cannot open, or `integrity_check` lines), if anything.
    pub db: Vec<String>,
    /// With repair: the damaged database was moved here and a new one rebuilt from `index.json`.
    pub rebuilt: Option<(PathBuf, RebuildReport)>,
    /// With repair, the damaged database replaced: what came back from `records.json`, or why nothing did.
    pub records: Option<Result<crate::store::records::Restored, String>>,
    /// `index.json` (or `oci-layout`) does not agree with the database.
    pub layout_stale: bool,
    /// Files in the store's directories that are no content: temp files of a daemon that died, junk.
    pub strays: Vec<PathBuf>,
    /// Ingests no download owns.
    pub orphan_ingests: Vec<PathBuf>,
    /// With repair: what was removed.
    pub removed_blobs: u64,
    pub removed_images: Vec<(Digest, Vec<String>)>,
    pub removed_files: u64,
    /// Pins naming an image or template that is not here (after a repair removed it, or pinned before it
    /// came): (owner, target). Not a problem of the store: `depot ensure` brings them back.
    pub pinned_absent: Vec<(String, String)>,
    /// Run with `--repair`.
    pub repair: bool,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.corrupt.is_empty()
            && self.broken_images.is_empty()
            && self.db.is_empty()
            && !self.layout_stale
            && self.strays.is_empty()
            && self.orphan_ingests.is_empty()
    }

    /// After `--repair`: whether everything found was mended (a damaged database counts once rebuilt).
    pub fn repaired(&self) -> bool {
        self.db.is_empty() || self.rebuilt.is_some()
    }
}

fn hash_file(p: &Path) -> std::io::Result<(Digest, u64)> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// Open the database, or say why it cannot be trusted: it does not open, or SQLite's check finds damage.
fn open_db(path: &Path) -> (Option<Db>, Vec<String>) {
    match Db::open(path) {
        Ok(db) => match db.integrity_check() {
            Ok(lines) if lines.is_empty() => (Some(db), lines),
            Ok(lines) => (Some(db), lines),
            Err(e) => (Some(db), vec![e.to_string()]),
        },
        Err(e) => (None, vec![e.to_string()]),
    }
}

/// Move a damaged database (and its WAL) aside, keeping it for inspection; returns where it went.
fn move_aside(root: &Path) -> std::io::Result<PathBuf> {
    let stamp = crate::store::db::now();
    let target = root.join(format!("depot.db.damaged-{stamp}"));
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let from = root.join(format!("depot.db{suffix}"));
        if from.exists() {
            std::fs::rename(&from, root.join(format!("depot.db.damaged-{stamp}{suffix}")))?;
        }
    }
    crate::fsutil::fsync_dir(root)?;
    Ok(target)
}

/// Check (and with `repair`, mend) the data root at `root`.
pub fn run(root: &Path, repair: bool) -> Result<Report, FsckError> {
    let _lock = RootLock::acquire(root).map_err(io(format!("locking {}", root.display())))?;
    let store = BlobStore::open(root).map_err(io("opening the content store"))?;
    let db_path = DataRoot::new(root).db();
    let (mut db, problems) = open_db(&db_path);
    let mut r = Report {
        db: problems,
        repair,
        ..Report::default()
    };
    if repair && !r.db.is_empty() {
        drop(db.take());
        let moved = move_aside(root).map_err(io("moving the damaged database aside"))?;
        let fresh = Db::open(&db_path)?;
        r.records = fresh
            .restore_records(&|d| d.parse().is_ok_and(|d| store.contains(&d)))
            .map_err(|e| e.to_string())
            .transpose();
        let report = rebuild(&fresh, &store, &Default::default(), 27)?;
        r.rebuilt = Some((moved, report));
        db = Some(fresh);
    }
    check_blobs(&store, &mut r)?;
    // Without a usable database nothing more can be checked against it.
    let Some(db) = db.filter(|_| r.db.is_empty() || r.rebuilt.is_some()) else {
        return Ok(r);
    };
    check_images(&db, &store, &mut r)?;
    check_layout(root, &db, &store, &mut r)?;
    check_pins(&db, &mut r)?;
    Ok(r)
}

/// Pins whose target is not here: the images and templates an installed app counts on and lacks.
fn check_pins(db: &Db, r: &mut Report) -> Result<(), FsckError> {
    for p in db.pins().list(None)? {
        let here = match p.target.strip_prefix("lxc:") {
            Some(name) => db.templates().lxc_template(name)?.is_some(),
            None => db.images().resolve_ref(&p.target)?.is_some(),
        };
        if !here {
            r.pinned_absent.push((p.owner, p.target));
        }
    }
    Ok(())
}

/// Every blob re-hashed against its name, and the files of the store that are not blobs; with `repair`, the
/// corrupt blobs and the strays go.
fn check_blobs(store: &BlobStore, r: &mut Report) -> Result<(), FsckError> {
    let io_of = |d: &Digest| {
        let context = d.to_string();
        move |e| FsckError::Io {
            context,
            source: std::io::Error::other(e),
        }
    };
    for d in store.list().map_err(io("listing blobs"))? {
        let path = store.path(&d).map_err(io_of(&d))?;
        let (got, len) = hash_file(&path).map_err(io(format!("reading {}", path.display())))?;
        r.blobs += 1;
        r.bytes += len;
        if got != d {
            r.corrupt.push(d);
        }
    }
    if r.repair {
        for d in &r.corrupt {
            if store.delete(d).map_err(io_of(d))? {
                r.removed_blobs += 1;
            }
        }
    }
    r.strays = store.strays().map_err(io("listing the store"))?;
    if r.repair {
        for p in &r.strays {
            if crate::fsutil::remove_any(p).is_ok() {
                r.removed_files += 1;
            }
        }
    }
    Ok(())
}

/// Images with a blob missing or corrupt, and ingests no download owns; with `repair`, both go (pulling such an
/// image again fetches what was lost).
fn check_images(db: &Db, store: &BlobStore, r: &mut Report) -> Result<(), FsckError> {
    for (image, blob) in db.images().image_blobs()? {
        if !store.contains(&blob) || r.corrupt.contains(&blob) {
            r.broken_images.entry(image).or_default().push(blob);
        }
    }
    if r.repair {
        for image in r.broken_images.keys() {
            let refs: Vec<String> = db.images().refs_of(image)?.into_iter().map(|x| x.0).collect();
            db.images().remove(&refs, Some(image))?;
            r.removed_images.push((image.clone(), refs));
        }
    }
    let owned = db
        .downloads()
        .owned_ingests(crate::store::db::now() - KEEP_FAILED_SECS)?;
    for (path, digest) in store.ingests().map_err(io("listing ingests"))? {
        if !digest.is_some_and(|d| owned.contains(&d)) {
            r.orphan_ingests.push(path);
        }
    }
    if r.repair {
        for p in &r.orphan_ingests {
            if crate::fsutil::remove_any(p).is_ok() {
                r.removed_files += 1;
            }
        }
    }
    Ok(())
}

/// `index.json` and `oci-layout` in step with the database; with `repair`, written again.
fn check_layout(root: &Path, db: &Db, store: &BlobStore, r: &mut Report) -> Result<(), FsckError> {
    let expected = layout::render(&db.images().layout_entries()?, |d| store.size(d));
    let dr = DataRoot::new(root);
    let actual = std::fs::read_to_string(dr.index_json()).unwrap_or_default();
    r.layout_stale = actual != expected || !dr.oci_layout().is_file();
    if r.repair && r.layout_stale {
        layout::init(root).map_err(io("writing oci-layout"))?;
        layout::write_index(root, &expected).map_err(io("writing index.json"))?;
    }
    Ok(())
}

/// The report as text, one finding per line, for `depot fsck`.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for line in &r.db {
        out.push_str(&format!("database: {line}\n"));
    }
    if let Some((moved, rb)) = &r.rebuilt {
        out.push_str(&format!(
            "database rebuilt from index.json: {} images, {} refs (the damaged one is kept as {})\n",
            rb.images,
            rb.refs,
            moved.display()
        ));
        if let Some(Err(e)) = &r.records {
            out.push_str(&format!("records.json: {e}\n"));
        }
        out.push_str(&format!(
            "{} (the damaged database is kept aside)\n",
            crate::image::rebuild::rebuilt(rb, r.records.as_ref().and_then(|r| r.as_ref().ok()))
        ));
        for s in &rb.skipped {
            out.push_str(&format!("not restored: {s}\n"));
        }
    }
    for d in &r.corrupt {
        out.push_str(&format!("corrupt blob {d}: its content does not hash to its name\n"));
    }
    for (img, missing) in &r.broken_images {
        for m in missing {
            out.push_str(&format!("image {img}: blob {m} is missing or corrupt\n"));
        }
    }
    for p in &r.strays {
        out.push_str(&format!("stray file {}: no content and no download's\n", p.display()));
    }
    for p in &r.orphan_ingests {
        out.push_str(&format!("orphan ingest {}: no download owns it\n", p.display()));
    }
    if r.layout_stale {
        out.push_str("index.json does not agree with the database\n");
    }
    for (owner, target) in &r.pinned_absent {
        out.push_str(&format!(
            "{owner} pins {target}, which is not here (depot ensure --owner {owner} {target} brings it back)\n"
        ));
    }
    if r.removed_blobs > 0 {
        out.push_str(&format!("removed {} corrupt blobs\n", r.removed_blobs));
    }
    if r.removed_files > 0 {
        out.push_str(&format!("removed {} stray files and orphan ingests\n", r.removed_files));
    }
    for (img, refs) in &r.removed_images {
        let names: Vec<String> = refs
            .iter()
            .map(|n| crate::reference::Reference::familiar_of(n))
            .collect();
        out.push_str(&format!("removed image {img} ({}); pull it again\n", names.join(", ")));
    }
    let mended = r.rebuilt.is_some() || r.removed_blobs > 0 || !r.removed_images.is_empty() || r.removed_files > 0;
    out.push_str(&format!(
        "{} blobs ({} bytes) checked: {}\n",
        r.blobs,
        r.bytes,
        if r.clean() {
            "no problems"
        } else if r.repair && (mended || (r.layout_stale && r.repaired())) {
            "repaired"
        } else {
            "problems found (depot fsck --repair removes what cannot be trusted)"
        }
    ));
    out
}
