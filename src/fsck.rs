//! `depot fsck`: an offline check of a data root (the daemon must be stopped; the root lock enforces it).
//! Every blob is re-hashed against its name, every image's config, layers and manifests must be present, and
//! SQLite checks its own file. `--repair` removes what cannot be trusted: corrupt blobs, and the images (with
//! their tags) whose blobs are gone, so that pulling them again downloads what is missing.

use crate::digest::{Digest, Hasher};
use crate::store::{BlobStore, Db, DbError, RootLock};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] DbError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> FsckError {
    let context = context.into();
    move |source| FsckError::Io { context, source }
}

#[derive(Debug, Default)]
pub struct Report {
    pub blobs: u64,
    pub bytes: u64,
    /// Blobs whose content does not hash to their name.
    pub corrupt: Vec<Digest>,
    /// Images with blobs missing from the store: image id → missing digests.
    pub broken_images: BTreeMap<Digest, Vec<Digest>>,
    /// What SQLite's `integrity_check` reported, if not "ok".
    pub db: Vec<String>,
    /// With repair: what was removed.
    pub removed_blobs: u64,
    pub removed_images: Vec<(Digest, Vec<String>)>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.corrupt.is_empty() && self.broken_images.is_empty() && self.db.is_empty()
    }

    /// After `--repair`: whether everything found was mended (a damaged database counts only once rebuilt).
    pub fn repaired(&self) -> bool {
        self.db.is_empty()
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

/// Check (and with `repair`, mend) the data root at `root`.
pub fn run(root: &Path, repair: bool) -> Result<Report, FsckError> {
    let _lock = RootLock::acquire(root).map_err(io(format!("locking {}", root.display())))?;
    let db = Db::open(&root.join("depot.db"))?;
    let store = BlobStore::open(root).map_err(io("opening the content store"))?;
    let mut r = Report {
        db: db.integrity_check()?,
        ..Report::default()
    };
    for d in store.list().map_err(io("listing blobs"))? {
        let path = store.path(&d).map_err(|e| FsckError::Io {
            context: d.to_string(),
            source: std::io::Error::other(e),
        })?;
        let (got, len) = hash_file(&path).map_err(io(format!("reading {}", path.display())))?;
        r.blobs += 1;
        r.bytes += len;
        if got != d {
            r.corrupt.push(d);
        }
    }
    if repair {
        for d in &r.corrupt {
            if store.delete(d).map_err(|e| FsckError::Io {
                context: d.to_string(),
                source: std::io::Error::other(e),
            })? {
                r.removed_blobs += 1;
            }
        }
    }
    for (image, blob) in db.image_blobs()? {
        if !store.contains(&blob) || r.corrupt.contains(&blob) {
            r.broken_images.entry(image).or_default().push(blob);
        }
    }
    if repair {
        for image in r.broken_images.keys() {
            let refs: Vec<String> = db.refs_of(image)?.into_iter().map(|x| x.0).collect();
            db.remove(&refs, Some(image))?;
            r.removed_images.push((image.clone(), refs));
        }
    }
    Ok(r)
}

/// The report as text, one finding per line, for `depot fsck`.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for d in &r.corrupt {
        out.push_str(&format!("corrupt blob {d}: its content does not hash to its name\n"));
    }
    for (img, missing) in &r.broken_images {
        for m in missing {
            out.push_str(&format!("image {img}: blob {m} is missing or corrupt\n"));
        }
    }
    for line in &r.db {
        out.push_str(&format!("database: {line}\n"));
    }
    if r.removed_blobs > 0 {
        out.push_str(&format!("removed {} corrupt blobs\n", r.removed_blobs));
    }
    for (img, refs) in &r.removed_images {
        let names: Vec<String> = refs
            .iter()
            .map(|n| crate::reference::Reference::familiar_of(n))
            .collect();
        out.push_str(&format!("removed image {img} ({}); pull it again\n", names.join(", ")));
    }
    out.push_str(&format!(
        "{} blobs ({} bytes) checked: {}\n",
        r.blobs,
        r.bytes,
        if r.clean() {
            "no problems"
        } else if r.removed_blobs > 0 || !r.removed_images.is_empty() {
            "repaired"
        } else {
            "problems found (depot fsck --repair removes what cannot be trusted)"
        }
    ));
    out
}
