//! The content store: `blobs/sha256/<hex>` holds verified content only; `ingest/<hex>/data` holds downloads in
//! flight. The ingest key is the expected digest, so a restarted daemon finds its partial bytes again.
//!
//! Commit order (what survives a crash at each step): data fsynced in `ingest/` (a restart resumes from it) →
//! size and digest verified → renamed into `blobs/` → `blobs/sha256` fsynced (the blob is durable) → ingest dir
//! removed (a leftover one is reclaimed by GC). A blob is never visible under `blobs/` before it is verified.

use crate::digest::{Digest, DigestError, Hasher};
use crate::fsutil;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {digest}: {source}")]
    Io { digest: String, source: io::Error },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("blob {expected}: size {got} does not match the expected {want}")]
    Size { expected: Digest, got: u64, want: u64 },
    #[error("blob digest mismatch: expected {expected}, got {got}")]
    Mismatch { expected: Digest, got: Digest },
    #[error("blob {0} is not in the store")]
    NotFound(Digest),
    #[error("blob {digest} is larger than the limit of {limit} bytes")]
    TooLarge { digest: Digest, limit: u64 },
}

fn io_err(d: impl ToString) -> impl FnOnce(io::Error) -> BlobError {
    move |source| BlobError::Io {
        digest: d.to_string(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    blobs: PathBuf,
    ingest: PathBuf,
}

impl BlobStore {
    /// Open (creating) the store under `root`.
    pub fn open(root: &Path) -> io::Result<BlobStore> {
        let dr = super::DataRoot::new(root);
        let (blobs, ingest) = (dr.blobs(), dr.ingest());
        fsutil::create_dir_durable(&blobs)?;
        fsutil::create_dir_durable(&ingest)?;
        Ok(BlobStore {
            root: root.to_path_buf(),
            blobs,
            ingest,
        })
    }

    /// The data root this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, d: &Digest) -> Result<PathBuf, BlobError> {
        Ok(self.blobs.join(d.sha256_hex()?))
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).map(|p| p.is_file()).unwrap_or(false)
    }

    pub fn size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.path(d).ok()?).ok().map(|m| m.len())
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File, BlobError> {
        File::open(self.path(d)?).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::NotFound(d.clone()),
            _ => BlobError::Io {
                digest: d.to_string(),
                source: e,
            },
        })
    }

    /// Read a small blob (manifest, config) whole, refusing anything over `limit` bytes.
    pub fn read(&self, d: &Digest, limit: u64) -> Result<Vec<u8>, BlobError> {
        let f = self.open_blob(d)?;
        let mut buf = Vec::new();
        f.take(limit + 1).read_to_end(&mut buf).map_err(io_err(d))?;
        if buf.len() as u64 > limit {
            return Err(BlobError::TooLarge {
                digest: d.clone(),
                limit,
            });
        }
        Ok(buf)
    }

    /// Store bytes already in memory under their digest, verifying it. An existing blob is success.
    pub fn put(&self, expected: &Digest, bytes: &[u8]) -> Result<(), BlobError> {
        let got = Digest::of(bytes);
        if &got != expected {
            return Err(BlobError::Mismatch {
                expected: expected.clone(),
                got,
            });
        }
        if self.contains(expected) {
            return Ok(());
        }
        // A private temp file, not the digest's shared ingest: concurrent puts of one blob never meet.
        // Survives a crash as: nothing (temp name, reclaimed by GC) or the complete, verified blob.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.ingest.join(format!(".put-{}-{n}", std::process::id()));
        let res = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            f.set_permissions(fs::Permissions::from_mode(0o444))?;
            fs::rename(&tmp, self.blobs.join(expected.sha256_hex().map_err(io::Error::other)?))?;
            fsutil::fsync_dir(&self.blobs)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(io_err(expected))
    }

    /// A writer for a blob whose digest is known only at the end (a layer of a loaded archive): bytes go to a
    /// private temp file in `ingest/` (a stray if the daemon dies, removed at the next start) and are hashed as
    /// they go.
    pub fn writer(&self) -> Result<BlobWriter, BlobError> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.ingest.join(format!(".put-{}-w{n}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("new blob"))?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp,
            file: Some(io::BufWriter::with_capacity(128 * 1024, file)),
            hasher: Hasher::default(),
        })
    }

    /// Open the ingest for `expected`, keeping any bytes a previous attempt left. `on_existing` sees those bytes
    /// in order, so that callers can rebuild state derived from them (a decompressor, a diff_id hash).
    pub fn ingest(&self, expected: &Digest) -> Result<Ingest, BlobError> {
        self.ingest_keyed(expected, Some(expected))
    }

    /// Open the ingest named by `key`, a digest stable for what is fetched: the content's own digest when it is
    /// known, else one derived from where it comes from (a URL file published without a checksum). With
    /// `expected` unknown, [`Ingest::commit`] publishes the bytes under the digest they hash to.
    pub fn ingest_keyed(&self, key: &Digest, expected: Option<&Digest>) -> Result<Ingest, BlobError> {
        let hex = key.sha256_hex()?;
        let dir = self.ingest.join(hex);
        let path = dir.join("data");
        let fresh = !path.exists();
        fsutil::create_dir_durable(&dir).map_err(io_err(key))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path);
        let file = file.map_err(io_err(key))?;
        if fresh {
            // the name is durable before any byte is written: what a sync keeps, a power cut cannot orphan
            fsutil::fsync_dir(&dir).map_err(io_err(key))?;
        }
        Ok(Ingest {
            store: self.clone(),
            dir,
            file,
            key: key.clone(),
            expected: expected.cloned(),
            hasher: Hasher::default(),
            unsynced: 0,
        })
    }

    /// Whether a download of `blobs` fits: what is not in the store yet (less the bytes an earlier attempt left
    /// in `ingest/`) must fit in the volume's free space with `margin` to spare. `Err((need, free))` when not.
    pub fn room_for(&self, blobs: &[(Digest, u64)], margin: u64) -> io::Result<Result<(), (u64, u64)>> {
        let need: u64 = blobs
            .iter()
            .filter(|(d, _)| !self.contains(d))
            .map(|(d, size)| size.saturating_sub(self.ingest_len(d)))
            .sum();
        let free = crate::fsutil::free_space(&self.root)?;
        Ok(match need > 0 && need + margin > free {
            true => Err((need, free)),
            false => Ok(()),
        })
    }

    /// The ingest of `d` opened for reading, when a download is writing it: a reader follows the bytes as they
    /// are written (they go to the file unbuffered), and keeps its handle when the ingest is committed (a rename).
    pub fn open_ingest(&self, d: &Digest) -> Option<File> {
        let hex = d.sha256_hex().ok()?;
        File::open(self.ingest.join(hex).join("data")).ok()
    }

    /// Bytes an earlier attempt left in the ingest of `d` (0 if none).
    pub fn ingest_len(&self, d: &Digest) -> u64 {
        d.sha256_hex()
            .ok()
            .and_then(|h| fs::metadata(self.ingest.join(h).join("data")).ok())
            .map_or(0, |m| m.len())
    }

    /// Delete a committed blob (the caller has established that nothing references it).
    pub fn delete(&self, d: &Digest) -> Result<bool, BlobError> {
        match fs::remove_file(self.path(d)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlobError::Io {
                digest: d.to_string(),
                source: e,
            }),
        }
    }

    /// Put a committed blob found corrupt out of the store: moved to `tmp/corrupt-<hex>` (emptied at the next
    /// start), so that nothing serves it again and the next pull of an image that needs it fetches it anew. The
    /// image records stay: `fsck` names what is missing until then.
    pub fn quarantine(&self, d: &Digest) -> Result<PathBuf, BlobError> {
        let from = self.path(d)?;
        let tmp = super::DataRoot::new(&self.root).tmp();
        let to = tmp.join(format!("corrupt-{}", d.sha256_hex()?));
        let moved = fs::create_dir_all(&tmp)
            .and_then(|()| fs::rename(&from, &to))
            .and_then(|()| fsutil::fsync_dir(&self.blobs));
        moved.map_err(io_err(d))?;
        Ok(to)
    }

    /// Every committed blob.
    pub fn list(&self) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.blobs)? {
            let name = e?.file_name();
            // Anything that is not a valid sha256 hex name (a stray temp file) is not content.
            if let Ok(d) = Digest::from_sha256_hex(&name.to_string_lossy()) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Remove blobs not in `keep`, ingests not in `ingests` (the digests some download still owns), and every
    /// stray file (see [`BlobStore::strays`]).
    pub fn gc(&self, keep: &HashSet<Digest>, ingests: &HashSet<Digest>) -> io::Result<GcReport> {
        let mut report = GcReport::default();
        for d in self.list()? {
            if !keep.contains(&d) && !ingests.contains(&d) {
                if let Ok(p) = self.path(&d) {
                    let len = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                    if fs::remove_file(&p).is_ok() {
                        report.blobs += 1;
                        report.bytes += len;
                    }
                }
            }
        }
        for (path, owner) in self.ingests()? {
            if owner.is_some_and(|d| ingests.contains(&d)) {
                continue;
            }
            let len = fs::metadata(path.join("data")).map(|m| m.len()).unwrap_or(0);
            if fsutil::remove_any(&path).is_ok() {
                report.ingests += 1;
                report.bytes += len;
            }
        }
        for path in self.strays()? {
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if fsutil::remove_any(&path).is_ok() {
                report.strays += 1;
                report.bytes += len;
            }
        }
        fsutil::fsync_dir(&self.blobs)?;
        fsutil::fsync_dir(&self.ingest)?;
        Ok(report)
    }

    /// Every entry of `ingest/` that is an ingest directory, with the digest it is for. Anything else there is
    /// a stray.
    pub fn ingests(&self) -> io::Result<Vec<(PathBuf, Option<Digest>)>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.ingest)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                let d = Digest::from_sha256_hex(&e.file_name().to_string_lossy()).ok();
                out.push((e.path(), d));
            }
        }
        Ok(out)
    }

    /// Files in the store's directories that are neither content nor an ingest: temp files of a `put` that
    /// died (`ingest/.put-*`), anything in `blobs/sha256` not named by its sha256, anything in an ingest
    /// directory but its `data`.
    pub fn strays(&self) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.blobs)? {
            let e = e?;
            let named = Digest::from_sha256_hex(&e.file_name().to_string_lossy()).is_ok();
            if !named || !e.file_type()?.is_file() {
                out.push(e.path());
            }
        }
        for e in fs::read_dir(&self.ingest)? {
            let e = e?;
            if !e.file_type()?.is_dir() {
                out.push(e.path());
                continue;
            }
            for f in fs::read_dir(e.path())? {
                let f = f?;
                if f.file_name() != "data" {
                    out.push(f.path());
                }
            }
        }
        Ok(out)
    }
}

/// See [`BlobStore::writer`]. Dropped without [`BlobWriter::commit`], it leaves nothing behind.
pub struct BlobWriter {
    store: BlobStore,
    tmp: PathBuf,
    file: Option<io::BufWriter<File>>,
    hasher: Hasher,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer already committed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl BlobWriter {
    /// Make the bytes a blob under their digest (an existing blob is success). Survives a crash as: the temp
    /// file (a stray) or the complete blob, durable.
    pub fn commit(mut self) -> Result<(Digest, u64), BlobError> {
        let (digest, len) = std::mem::take(&mut self.hasher).finish();
        let f = self.file.take().expect("committed once");
        let r = (|| {
            let f = f.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            f.set_permissions(fs::Permissions::from_mode(0o444))?;
            let target = self.store.blobs.join(digest.hex());
            if target.exists() {
                fs::remove_file(&self.tmp)?;
            } else {
                fs::rename(&self.tmp, &target)?;
                fsutil::fsync_dir(&self.store.blobs)?;
            }
            Ok(())
        })();
        r.map_err(io_err(&digest))?;
        Ok((digest, len))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: u64,
    pub ingests: u64,
    pub strays: u64,
    pub bytes: u64,
}

/// A download in flight. Bytes written are hashed as they go; [`Ingest::commit`] verifies and publishes them.
pub struct Ingest {
    store: BlobStore,
    dir: PathBuf,
    file: File,
    /// Names the ingest directory (and errors).
    key: Digest,
    /// What the bytes must hash to, when known before they are fetched.
    expected: Option<Digest>,
    hasher: Hasher,
    /// Bytes written since the last fsync: what a power cut can take.
    unsynced: u64,
}

/// An ingest syncs itself after this many bytes, so that a power cut costs a resume at most this much of a
/// download (a SIGKILL costs nothing: the page cache survives it).
pub const INGEST_SYNC_BYTES: u64 = 8 << 20;

impl Ingest {
    /// Hash the bytes a previous attempt left and position at their end; returns the resume offset.
    /// `max` bounds what is kept: a longer leftover cannot be this blob and is discarded.
    pub fn resume(&mut self, max: u64, mut on_existing: impl FnMut(&[u8]) -> io::Result<()>) -> Result<u64, BlobError> {
        let e = self.key.clone();
        self.hasher = Hasher::default();
        let len = self.file.metadata().map_err(io_err(&e))?.len();
        if len > max {
            self.reset()?;
            return Ok(0);
        }
        self.file.seek(SeekFrom::Start(0)).map_err(io_err(&e))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = len;
        while left > 0 {
            let n = self.file.read(&mut buf).map_err(io_err(&e))?;
            if n == 0 {
                break;
            }
            let n = n.min(left as usize);
            self.hasher.update(&buf[..n]);
            on_existing(&buf[..n]).map_err(io_err(&e))?;
            left -= n as u64;
        }
        Ok(self.hasher.len())
    }

    /// Drop whatever is in the ingest and start at zero.
    pub fn reset(&mut self) -> Result<(), BlobError> {
        let e = self.key.clone();
        self.file.set_len(0).map_err(io_err(&e))?;
        self.file.seek(SeekFrom::Start(0)).map_err(io_err(&e))?;
        self.hasher = Hasher::default();
        Ok(())
    }

    pub fn offset(&self) -> u64 {
        self.hasher.len()
    }

    pub fn write_all(&mut self, buf: &[u8]) -> Result<(), BlobError> {
        self.file.write_all(buf).map_err(io_err(&self.key))?;
        self.hasher.update(buf);
        self.unsynced += buf.len() as u64;
        if self.unsynced >= INGEST_SYNC_BYTES {
            self.sync()?;
        }
        Ok(())
    }

    /// fsync what was written so far (a restart resumes from it).
    pub fn sync(&mut self) -> Result<(), BlobError> {
        self.file.sync_data().map_err(io_err(&self.key))?;
        self.unsynced = 0;
        Ok(())
    }

    /// The first thing wrong with what was written, given its size, digest and length.
    fn check(&self, got: &Digest, len: u64, size: Option<u64>) -> Option<BlobError> {
        match (size, &self.expected) {
            (Some(want), _) if len != want => Some(BlobError::Size {
                expected: self.expected.clone().unwrap_or_else(|| self.key.clone()),
                got: len,
                want,
            }),
            (_, Some(expected)) if got != expected => Some(BlobError::Mismatch {
                expected: expected.clone(),
                got: got.clone(),
            }),
            _ => None,
        }
    }

    /// Check size and digest of what was written, without publishing. A mismatch discards the ingest, its
    /// directory too: bytes that hash wrong are never resumed from.
    pub fn verify(&mut self, size: u64) -> Result<(), BlobError> {
        match self.check(&self.hasher.peek(), self.hasher.len(), Some(size)) {
            None => Ok(()),
            Some(err) => {
                self.reset()?;
                let _ = fs::remove_dir_all(&self.dir);
                Err(err)
            }
        }
    }

    /// Verify size (when known) and digest (when expected), then publish under `blobs/`; returns the digest it
    /// is published as. A mismatch discards the ingest, so bad bytes are never resumed from. An already
    /// existing blob is success.
    pub fn commit(self, size: Option<u64>) -> Result<Digest, BlobError> {
        let e = self.key.clone();
        let (got, len) = (self.hasher.peek(), self.hasher.len());
        if let Some(err) = self.check(&got, len, size) {
            let _ = fs::remove_dir_all(&self.dir);
            return Err(err);
        }
        let Ingest { store, dir, file, .. } = self;
        file.sync_all().map_err(io_err(&e))?;
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(io_err(&e))?;
        drop(file);
        let target = store.path(&got)?;
        if !target.exists() {
            fs::rename(dir.join("data"), &target).map_err(io_err(&e))?;
            fsutil::fsync_dir(&store.blobs).map_err(io_err(&e))?;
        }
        let _ = fs::remove_dir_all(&dir);
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (PathBuf, BlobStore) {
        let d = crate::testutil::tempdir();
        let s = BlobStore::open(&d).unwrap();
        (d, s)
    }

    #[test]
    fn writer_commits_under_the_computed_digest_or_leaves_nothing() {
        let (d, s) = store();
        let mut w = s.writer().unwrap();
        w.write_all(b"loaded layer").unwrap();
        let (dg, n) = w.commit().unwrap();
        assert_eq!((dg.clone(), n), (Digest::of(b"loaded layer"), 12));
        assert_eq!(s.read(&dg, 100).unwrap(), b"loaded layer");
        let mut w = s.writer().unwrap();
        w.write_all(b"loaded layer").unwrap();
        assert_eq!(w.commit().unwrap().0, dg, "an existing blob is success");
        let mut w = s.writer().unwrap();
        w.write_all(b"abandoned").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(d.join("ingest")).unwrap().count(), 0, "no temp file left");
    }

    #[test]
    fn put_read_and_dedup() {
        let (_d, s) = store();
        let dg = Digest::of(b"hello");
        s.put(&dg, b"hello").unwrap();
        s.put(&dg, b"hello").unwrap();
        assert_eq!(s.read(&dg, 100).unwrap(), b"hello");
        assert!(matches!(s.read(&dg, 3), Err(BlobError::TooLarge { .. })));
        let mode = fs::metadata(s.path(&dg).unwrap()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444, "committed blobs are read-only");
        assert_eq!(s.list().unwrap(), vec![dg]);
    }

    #[test]
    fn concurrent_puts_of_one_blob() {
        let (d, s) = store();
        let data = b"config bytes ".repeat(5000);
        let dg = Digest::of(&data);
        std::thread::scope(|sc| {
            for _ in 0..8 {
                sc.spawn(|| s.put(&dg, &data).unwrap());
            }
        });
        assert_eq!(fs::read(s.path(&dg).unwrap()).unwrap(), data);
        assert_eq!(fs::read_dir(d.join("ingest")).unwrap().count(), 0, "no temp file left");
    }

    #[test]
    fn wrong_content_never_reaches_blobs() {
        let (d, s) = store();
        let dg = Digest::of(b"good");
        assert!(matches!(s.put(&dg, b"evil"), Err(BlobError::Mismatch { .. })));
        let mut ing = s.ingest(&dg).unwrap();
        ing.write_all(b"evil").unwrap();
        assert!(matches!(ing.commit(Some(4)), Err(BlobError::Mismatch { .. })));
        let mut ing = s.ingest(&dg).unwrap();
        ing.write_all(b"goo").unwrap();
        assert!(matches!(ing.commit(Some(4)), Err(BlobError::Size { .. })));
        assert!(!s.contains(&dg));
        assert_eq!(fs::read_dir(d.join("blobs/sha256")).unwrap().count(), 0);
        assert_eq!(
            fs::read_dir(d.join("ingest")).unwrap().count(),
            0,
            "a failed commit discards its ingest"
        );
    }

    #[test]
    fn ingest_resumes_from_leftover_bytes() {
        let (_d, s) = store();
        let data = b"0123456789abcdef".repeat(1000);
        let dg = Digest::of(&data);
        let mut ing = s.ingest(&dg).unwrap();
        ing.write_all(&data[..5000]).unwrap();
        ing.sync().unwrap();
        drop(ing);
        let mut ing = s.ingest(&dg).unwrap();
        let mut seen = Vec::new();
        let off = ing
            .resume(data.len() as u64, |b| {
                seen.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        assert_eq!(off, 5000);
        assert_eq!(seen, &data[..5000]);
        ing.write_all(&data[5000..]).unwrap();
        ing.commit(Some(data.len() as u64)).unwrap();
        assert_eq!(fs::read(s.path(&dg).unwrap()).unwrap(), data);
    }

    #[test]
    fn oversized_leftover_is_discarded() {
        let (_d, s) = store();
        let dg = Digest::of(b"abc");
        let mut ing = s.ingest(&dg).unwrap();
        ing.write_all(b"abcdef").unwrap();
        drop(ing);
        let mut ing = s.ingest(&dg).unwrap();
        assert_eq!(ing.resume(3, |_| Ok(())).unwrap(), 0);
        ing.write_all(b"abc").unwrap();
        ing.commit(Some(3)).unwrap();
    }

    #[test]
    fn gc_keeps_referenced_and_owned_and_removes_strays() {
        let (d, s) = store();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        s.put(&a, b"a").unwrap();
        s.put(&b, b"b").unwrap();
        let owned = Digest::of(b"owned");
        s.ingest(&owned).unwrap().write_all(b"li").unwrap();
        let orphan = Digest::of(b"orphan");
        s.ingest(&orphan).unwrap().write_all(b"st").unwrap();
        fs::create_dir_all(d.join("ingest").join(Digest::of(b"empty").hex())).unwrap();
        fs::create_dir_all(d.join("ingest/not-a-digest")).unwrap();
        fs::write(d.join("ingest/.put-123-4"), b"half a config").unwrap();
        fs::write(d.join("blobs/sha256/junk"), b"x").unwrap();
        fs::write(d.join("ingest").join(owned.hex()).join("data.tmp"), b"x").unwrap();
        assert_eq!(s.strays().unwrap().len(), 3);
        let keep: HashSet<_> = [a.clone()].into();
        let r = s.gc(&keep, &[owned.clone()].into()).unwrap();
        assert_eq!((r.blobs, r.ingests, r.strays), (1, 3, 3));
        assert!(s.contains(&a) && !s.contains(&b));
        assert!(d.join("ingest").join(owned.hex()).join("data").exists());
        let left: Vec<_> = fs::read_dir(d.join("ingest"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from(owned.hex())],
            "only the owned ingest is left"
        );
        assert!(s.strays().unwrap().is_empty());
    }
}
