//! Every file and directory of a data root, named once. Nothing else in depot joins these names onto a data
//! root's path: a new file is a new method here, and docs/architecture.md's table lists the same.

use std::path::{Path, PathBuf};

/// A data root's path, and the names of what lives in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRoot(PathBuf);

impl DataRoot {
    pub fn new(path: impl Into<PathBuf>) -> DataRoot {
        DataRoot(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The SQLite database (`-wal`, `-shm` and `-reserve` beside it).
    pub fn db(&self) -> PathBuf {
        self.0.join("depot.db")
    }

    /// The mirror of the records a rebuilt database gets back (see [`super::records`]).
    pub fn records(&self) -> PathBuf {
        self.0.join(super::records::FILE)
    }

    /// The key that seals registry credentials (see [`super::secrets`]).
    pub fn credentials_key(&self) -> PathBuf {
        self.0.join("credentials.key")
    }

    /// The first admin's generated password.
    pub fn admin_password(&self) -> PathBuf {
        self.0.join("admin-password")
    }

    /// The lock one daemon (or `fsck`) holds.
    pub fn lock(&self) -> PathBuf {
        self.0.join("lock")
    }

    /// The daemon's unix socket, unless the config names another.
    pub fn socket(&self) -> PathBuf {
        self.0.join("depot.sock")
    }

    /// Registry certificates, dockerd's `certs.d` layout, unless the config names another place.
    pub fn certs(&self) -> PathBuf {
        self.0.join("certs.d")
    }

    /// The LAN registry's certificate, CA and keys, when depot issues them itself.
    pub fn registry_tls(&self) -> PathBuf {
        self.0.join("registry-tls")
    }

    /// The OCI layout's marker file.
    pub fn oci_layout(&self) -> PathBuf {
        self.0.join("oci-layout")
    }

    /// The OCI layout's index: every image manifest and ref.
    pub fn index_json(&self) -> PathBuf {
        self.0.join("index.json")
    }

    /// Verified content, by digest.
    pub fn blobs(&self) -> PathBuf {
        self.0.join("blobs").join("sha256")
    }

    /// Content being fetched, by the digest it must have.
    pub fn ingest(&self) -> PathBuf {
        self.0.join("ingest")
    }

    /// Scratch space on the same volume (renames into the store stay atomic), and what was put aside.
    pub fn tmp(&self) -> PathBuf {
        self.0.join("tmp")
    }

    /// The last catalog fetched.
    pub fn catalog(&self) -> PathBuf {
        self.0.join("catalog").join("list.json")
    }

    /// The LXC sources' index caches.
    pub fn lxc_cache(&self) -> PathBuf {
        self.0.join("lxc")
    }

    /// Where station unpacks may write unless the config says otherwise.
    pub fn containers(&self) -> PathBuf {
        self.0.join("containers")
    }

    /// Where station exports may write unless the config says otherwise.
    pub fn exports(&self) -> PathBuf {
        self.0.join("exports")
    }
}
