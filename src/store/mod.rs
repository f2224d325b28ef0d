//! Persistent state: content-addressed blobs on disk and metadata in SQLite, under one data root guarded by a lock.

pub mod blobs;
pub mod db;
pub mod layout;
pub mod records;
pub mod root;
pub mod secrets;

pub use blobs::{BlobError, BlobStore, BlobWriter, Ingest, INGEST_SYNC_BYTES};
pub use db::{Db, DbError, DownloadState};
pub use root::DataRoot;
pub use secrets::{Sealer, SecretError};

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The exclusive lock on a data root: one daemon per data root. Held for the life of the value.
pub struct RootLock {
    _lock: nix::fcntl::Flock<File>,
    pub path: PathBuf,
}

impl RootLock {
    pub fn acquire(root: &Path) -> io::Result<RootLock> {
        let path = DataRoot::new(root).lock();
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("data root {} is in use by another depot", root.display()),
                )
            } else {
                io::Error::from(e)
            }
        })?;
        Ok(RootLock { _lock: lock, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_released() {
        let d = crate::testutil::tempdir();
        let a = RootLock::acquire(&d).unwrap();
        let e = RootLock::acquire(&d).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(e.to_string().contains("in use"));
        drop(a);
        RootLock::acquire(&d).unwrap();
    }
}
