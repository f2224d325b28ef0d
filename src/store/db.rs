//! Metadata in SQLite: images, refs, blob facts and persistent download jobs.
//!
//! One connection behind a mutex (SQLite has one writer anyway); WAL so readers never block the writer; every
//! multi-row change is one transaction. Schema changes are numbered migrations tracked in `PRAGMA user_version`:
//! append to [`MIGRATIONS`], never edit a shipped one.

use crate::digest::Digest;
use crate::sync::Locked;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this depot understands ({known}); refusing to touch it")]
    TooNew { found: i64, known: i64 },
    #[error("database holds a malformed value in {0}")]
    Corrupt(&'static str),
    #[error("database is damaged: {0}")]
    Damaged(String),
    /// A row that would break a uniqueness or reference rule (the caller's input, not damage).
    #[error("{0}")]
    Conflict(String),
    /// `records.json` could not be read back (see [`super::records`]); it was put aside.
    #[error("{0}")]
    Records(String),
}

type Result<T> = std::result::Result<T, DbError>;

/// Numbered migrations: index + 1 is the `user_version` after applying it.
pub const MIGRATIONS: &[&str] = &[
    // 1: the image store and persistent downloads.
    r#"
    CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        diff_id TEXT,
        uncompressed_size INTEGER
    );
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        os TEXT NOT NULL,
        architecture TEXT NOT NULL,
        variant TEXT,
        created INTEGER,
        size INTEGER NOT NULL,
        labels TEXT,
        added_at INTEGER NOT NULL,
        last_tag_time INTEGER
    );
    CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        digest TEXT NOT NULL,
        diff_id TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        uncompressed_size INTEGER NOT NULL,
        PRIMARY KEY (image_id, idx)
    );
    CREATE TABLE image_manifests (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        PRIMARY KEY (image_id, digest)
    );
    CREATE TABLE refs (
        name TEXT PRIMARY KEY,
        repo TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
        image_id TEXT NOT NULL REFERENCES images(id),
        created_at INTEGER NOT NULL
    );
    CREATE INDEX refs_image ON refs(image_id);
    CREATE TABLE downloads (
        id INTEGER PRIMARY KEY,
        reference TEXT NOT NULL,
        platform TEXT,
        state TEXT NOT NULL CHECK (state IN ('queued', 'fetching', 'verifying', 'committed', 'failed')),
        error TEXT,
        resolved_digest TEXT,
        manifest_digest TEXT,
        image_id TEXT,
        auth TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE download_blobs (
        download_id INTEGER NOT NULL REFERENCES downloads(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        done INTEGER NOT NULL,
        PRIMARY KEY (download_id, digest)
    );
    "#,
    // 2: facts about the store itself (e.g. whether unreferenced blobs may be collected).
    r#"
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 3: who may use the TCP listener: users (password hashes in PHC form) and API tokens (sha256 of the token;
    // the token itself is shown once, at creation).
    r#"
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        admin INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used INTEGER
    );
    "#,
    // 4: a user can pause a download; a paused one is not resumed at start. Orthogonal to the lifecycle state,
    // which stays where the download stopped.
    r#"
    ALTER TABLE downloads ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
    "#,
    // 5: private registries (credentials sealed: see store::secrets) and the private image records of the
    // station API.
    r#"
    CREATE TABLE registries (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        host TEXT NOT NULL,
        username TEXT,
        password_sealed TEXT,
        insecure INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE private_images (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        registry_id INTEGER REFERENCES registries(id),
        is_private INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (name, registry_id)
    );
    "#,
    // 6: LXC templates, and downloads of any kind (`image`: `reference` is an image reference; `lxc`: it is
    // the template name, and `spec` what exactly is fetched, as JSON). A template's files are blobs of the content store like any layer.
    r#"
    ALTER TABLE downloads ADD COLUMN kind TEXT NOT NULL DEFAULT 'image' CHECK (kind IN ('image', 'lxc'));
    ALTER TABLE downloads ADD COLUMN spec TEXT;
    CREATE TABLE lxc_templates (
        name TEXT PRIMARY KEY,
        dist TEXT NOT NULL,
        release TEXT NOT NULL,
        arch TEXT NOT NULL,
        variant TEXT NOT NULL,
        build TEXT NOT NULL,
        source TEXT NOT NULL,
        rootfs_digest TEXT NOT NULL,
        rootfs_size INTEGER NOT NULL,
        meta_digest TEXT,
        meta TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    "#,
    // 7: sessions of the station API and the owner's page outlive a restart; kept by the sha256 of their id,
    // so the database holds nothing that opens one.
    r#"
    CREATE TABLE sessions (
        id_sha256 TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        admin INTEGER NOT NULL,
        login_time INTEGER NOT NULL,
        expires INTEGER NOT NULL
    );
    "#,
    // 8: a revoked token's id is never given again (AUTOINCREMENT): a script or log naming token 3 always means
    // the same token. The ids so far carry over.
    r#"
    CREATE TABLE tokens_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used INTEGER
    );
    INSERT INTO tokens_new (id, name, token_sha256, created_at, last_used)
        SELECT id, name, token_sha256, created_at, last_used FROM tokens;
    DROP TABLE tokens;
    ALTER TABLE tokens_new RENAME TO tokens;
    "#,
];

/// A session as stored (by the sha256 of its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user: String,
    pub admin: bool,
    pub login_time: i64,
    /// Unix seconds.
    pub expires: i64,
}

/// What kind of thing a download fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadKind {
    Image,
    Lxc,
}

impl DownloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DownloadKind::Image => "image",
            DownloadKind::Lxc => "lxc",
        }
    }
}

/// An LXC template as stored: its files are blobs (`rootfs_digest`, `meta_digest`), `meta` the JSON of what
/// its metadata says (see `lxc::meta`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxcTemplateRow {
    /// `dist/release/arch/variant`.
    pub name: String,
    pub dist: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
    /// The build serial (`20260904_07:42`), or the image id of a converted Docker image.
    pub build: String,
    /// The source it came from, or `docker:<reference>`.
    pub source: String,
    pub rootfs_digest: Digest,
    pub rootfs_size: u64,
    pub meta_digest: Option<Digest>,
    pub meta: String,
    pub created_at: i64,
}

fn lxc_template_blobs(tx: &Transaction<'_>, name: &str) -> Result<Vec<Digest>> {
    let mut st = tx.prepare_cached("SELECT rootfs_digest, meta_digest FROM lxc_templates WHERE name = ?1")?;
    let rows = st.query_map([name], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))?;
    let mut out = Vec::new();
    for r in rows {
        let (a, b) = r?;
        out.push(digest_col(a, "lxc_templates.rootfs_digest")?);
        if let Some(b) = opt_digest(b, "lxc_templates.meta_digest")? {
            out.push(b);
        }
    }
    Ok(out)
}

/// A registry the station knows, with its credentials (the password sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRow {
    pub id: i64,
    pub name: String,
    /// `https://host[:port]` or `http://…`.
    pub url: String,
    /// `host[:port]`: what references name.
    pub host: String,
    pub username: Option<String>,
    pub password_sealed: Option<String>,
    pub insecure: bool,
}

/// A private image record of the station API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateImageRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub registry_id: Option<i64>,
    pub is_private: bool,
}

/// A user of the station API and the owner's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub name: String,
    pub password_hash: String,
    pub admin: bool,
}

/// An API token, as listed (never with the token).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used: Option<i64>,
}

/// A download's lifecycle, persisted as data. Terminal states are `Committed` and `Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadState {
    Queued,
    Fetching,
    Verifying,
    Committed,
    Failed,
}

impl DownloadState {
    pub fn is_terminal(self) -> bool {
        matches!(self, DownloadState::Committed | DownloadState::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DownloadState::Queued => "queued",
            DownloadState::Fetching => "fetching",
            DownloadState::Verifying => "verifying",
            DownloadState::Committed => "committed",
            DownloadState::Failed => "failed",
        }
    }
}

impl FromStr for DownloadState {
    type Err = DbError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => DownloadState::Queued,
            "fetching" => DownloadState::Fetching,
            "verifying" => DownloadState::Verifying,
            "committed" => DownloadState::Committed,
            "failed" => DownloadState::Failed,
            _ => return Err(DbError::Corrupt("downloads.state")),
        })
    }
}

/// What the store knows about a committed blob beyond its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// For layers: the digest and size of the uncompressed tar.
    pub diff_id: Option<Digest>,
    pub uncompressed_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    pub digest: Digest,
    pub diff_id: Digest,
    pub media_type: String,
    pub size: u64,
    pub uncompressed_size: u64,
}

/// An image as committed by a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    pub id: Digest,
    pub manifest_digest: Digest,
    /// Every manifest blob this image needs: its own manifest and the index it was chosen from.
    pub manifests: Vec<(Digest, String)>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub created: Option<i64>,
    pub labels: Option<String>,
    pub layers: Vec<LayerRecord>,
}

impl NewImage {
    /// Docker's image `Size`: the sum of uncompressed layer sizes.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.uncompressed_size).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub id: Digest,
    pub manifest_digest: Digest,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub created: Option<i64>,
    pub size: u64,
    pub labels: Option<String>,
    /// Canonical ref names, tags then digests, each sorted.
    pub tags: Vec<String>,
    pub digests: Vec<String>,
    /// When a tag operation (not a pull) last named this image, unix seconds.
    pub last_tag_time: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadRow {
    pub id: i64,
    pub reference: String,
    pub platform: Option<String>,
    pub state: DownloadState,
    pub error: Option<String>,
    pub resolved_digest: Option<Digest>,
    pub manifest_digest: Option<Digest>,
    pub image_id: Option<Digest>,
    /// Held by a user: not resumed until they say so.
    pub paused: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub kind: DownloadKind,
}

/// One manifest descriptor of the OCI layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRow {
    pub manifest: Digest,
    pub media_type: String,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// The canonical ref name (`docker.io/library/alpine:3.20`, `host:5000/repo@sha256:…`), if any.
    pub ref_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Tag,
    Digest,
}

pub struct Db {
    conn: Mutex<Connection>,
    /// Woken by every row written to `downloads` or `download_blobs` (SQLite's update hook, so no write can
    /// forget to say so).
    downloads_changed: Arc<Changes>,
    /// A file of [`RESERVE_BYTES`] beside the database, given back to the file system when a state change finds
    /// the volume full, so that recording a download's end (above all its failure) or a delete never fails for
    /// want of room. Made again when blobs are freed ([`Db::renew_reserve`]) and at the next open.
    reserve: Option<std::path::PathBuf>,
    /// Set by the update hook when a table [`super::records`] mirrors is written.
    records_dirty: Arc<AtomicBool>,
    /// `records.json` beside the database file (none for an in-memory database).
    records: Option<super::records::Mirror>,
}

/// The connection, held: giving it back writes `records.json` when a mirrored table changed, so that no
/// write can forget to. Transactions taken from it have ended by then (committed or rolled back).
pub struct Conn<'a> {
    guard: MutexGuard<'a, Connection>,
    db: &'a Db,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.guard
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.guard
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(m) = &self.db.records {
            m.flush(&self.guard);
        }
    }
}

/// A wake-up for whoever waits on the next change.
///
/// The hook runs inside the writing statement, before its transaction commits, while the writer holds the
/// connection: a woken reader takes the connection after it and so reads the committed rows.
#[derive(Default)]
pub struct Changes {
    event: event_listener::Event,
}

impl Changes {
    fn bump(&self) {
        self.event.notify(usize::MAX);
    }

    /// Resolves at the next change after this call. Take it before reading, so that a change made while one
    /// reads is not missed.
    pub fn listen(&self) -> event_listener::EventListener {
        self.event.listen()
    }
}

/// Room kept for state changes on a full volume: a handful of WAL frames is all one needs.
pub const RESERVE_BYTES: u64 = 1024 * 1024;
/// The least reserve worth keeping when the volume has no room for a whole one.
pub const MIN_RESERVE_BYTES: u64 = 128 * 1024;

fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn digest_col(s: String, what: &'static str) -> Result<Digest> {
    s.parse().map_err(|_| DbError::Corrupt(what))
}

fn opt_digest(s: Option<String>, what: &'static str) -> Result<Option<Digest>> {
    s.map(|s| digest_col(s, what)).transpose()
}

impl Db {
    /// Open (creating) the database. It holds credentials of running downloads, so it is made private to the
    /// daemon; SQLite gives its `-wal` and `-shm` files the same mode.
    pub fn open(path: &Path) -> Result<Db> {
        use std::os::unix::fs::PermissionsExt;
        let fresh = !path.exists();
        let conn = Connection::open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|_| DbError::Corrupt("permissions of the database file"))?;
        let mut name = path.as_os_str().to_owned();
        name.push("-reserve");
        let reserve = std::path::PathBuf::from(name);
        if let Err(e) = make_reserve(&reserve) {
            log::warn!("cannot keep {RESERVE_BYTES} bytes in reserve for the database ({e}): the volume is full");
        }
        let mut db = Self::setup(conn)?;
        db.reserve = Some(reserve);
        let records = path.with_file_name(super::records::FILE);
        // a new database beside a records file waits for restore_records before it writes the file
        let armed = !(fresh && records.exists());
        db.records = Some(super::records::Mirror::new(records, db.records_dirty.clone(), armed));
        Ok(db)
    }

    pub fn open_in_memory() -> Result<Db> {
        Self::setup(Connection::open_in_memory()?)
    }

    /// Keep the reserve again, once space was freed (a delete's blobs collected) after it was used. Best effort:
    /// a volume still full keeps none until the next free.
    pub fn renew_reserve(&self) {
        if let Some(r) = self.reserve.as_ref().filter(|r| !r.exists()) {
            match make_reserve(r) {
                Ok(()) => log::info!("the database's reserve is kept again"),
                Err(e) => log::debug!("the database's reserve is not kept yet: {e}"),
            }
        }
    }

    /// Run a write; if the volume is full, give the reserve back to the file system and run it once more.
    fn with_room<T, E: Into<DbError>>(&self, f: impl Fn(&Connection) -> std::result::Result<T, E>) -> Result<T> {
        let conn = self.conn();
        match f(&conn).map_err(Into::into) {
            Err(DbError::Sqlite(e)) if is_full(&e) => {
                let Some(r) = self.reserve.as_ref().filter(|r| r.exists()) else {
                    return Err(e.into());
                };
                log::warn!("the volume is full: using the database's reserve to record a state change");
                let _ = std::fs::remove_file(r);
                f(&conn).map_err(Into::into)
            }
            r => r,
        }
    }

    fn setup(mut conn: Connection) -> Result<Db> {
        // WAL: readers do not block the writer; synchronous=FULL: a committed transaction survives power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted content is overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.pragma_update(None, "cache_size", -512)?; // 512 KiB: the daemon's memory budget is small
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn, MIGRATIONS)?;
        let downloads_changed = Arc::new(Changes::default());
        let records_dirty = Arc::new(AtomicBool::new(false));
        let hook = downloads_changed.clone();
        let dirty = records_dirty.clone();
        conn.update_hook(Some(move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
            if table == "downloads" || table == "download_blobs" {
                hook.bump();
            } else if super::records::is_mirrored(table) {
                dirty.store(true, std::sync::atomic::Ordering::Release);
            }
        }))?;
        Ok(Db {
            conn: Mutex::new(conn),
            downloads_changed,
            reserve: None,
            records_dirty,
            records: None,
        })
    }

    /// What a follower of the downloads list waits on instead of reading it again and again.
    pub fn downloads_changed(&self) -> &Changes {
        &self.downloads_changed
    }

    fn conn(&self) -> Conn<'_> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back on drop).
        Conn {
            guard: self.conn.locked(),
            db: self,
        }
    }

    /// Put back what `records.json` holds that this database lacks (see [`super::records`]), then keep the file
    /// in step. `present` says whether a blob is in the store. `Ok(None)`: no file, or an in-memory database.
    pub fn restore_records(&self, present: &dyn Fn(&str) -> bool) -> Result<Option<super::records::Restored>> {
        let Some(m) = &self.records else {
            return Ok(None);
        };
        let r = {
            let mut conn = self.conn();
            super::records::restore(&mut conn, m.path(), present)
        };
        let r = r.map_err(|e| {
            // kept for whoever wants to read it by hand, out of the way of the file this database writes
            let aside = m.path().with_extension(format!("json.unreadable-{}", now()));
            match std::fs::rename(m.path(), &aside) {
                Ok(()) => DbError::Records(format!("{e} (kept as {})", aside.display())),
                Err(re) => DbError::Records(format!("{e} (and putting it aside: {re})")),
            }
        });
        m.arm();
        // the file as this database now has it
        drop(self.conn());
        r
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn().query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    pub fn put_blob_meta(&self, m: &BlobMeta) -> Result<()> {
        self.conn().execute(
            "INSERT INTO blobs (digest, size, media_type, diff_id, uncompressed_size) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(digest) DO UPDATE SET diff_id = coalesce(excluded.diff_id, diff_id),
               uncompressed_size = coalesce(excluded.uncompressed_size, uncompressed_size)",
            params![
                m.digest.as_str(),
                m.size as i64,
                m.media_type,
                m.diff_id.as_ref().map(|d| d.as_str()),
                m.uncompressed_size.map(|s| s as i64)
            ],
        )?;
        Ok(())
    }

    pub fn blob_meta(&self, d: &Digest) -> Result<Option<BlobMeta>> {
        let row = self
            .conn()
            .query_row(
                "SELECT size, media_type, diff_id, uncompressed_size FROM blobs WHERE digest = ?1",
                [d.as_str()],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(size, media_type, diff, usize)| {
            Ok(BlobMeta {
                digest: d.clone(),
                size: size as u64,
                media_type,
                diff_id: opt_digest(diff, "blobs.diff_id")?,
                uncompressed_size: usize.map(|u| u as u64),
            })
        })
        .transpose()
    }

    /// Whether the image (config digest) is already stored.
    pub fn has_image(&self, id: &Digest) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM images WHERE id = ?1", [id.as_str()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Insert the image (if new) and point `refs` at it, in one transaction: a ref never points at an image whose
    /// rows are not all there. Tags move; a download, if given, becomes `committed`.
    pub fn commit_image(
        &self,
        img: &NewImage,
        refs: &[(String, String, RefKind)],
        download: Option<i64>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let t = now();
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO images (id, manifest_digest, os, architecture, variant, created, size, labels, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                img.id.as_str(),
                img.manifest_digest.as_str(),
                img.os,
                img.architecture,
                img.variant,
                img.created,
                img.size() as i64,
                img.labels,
                t
            ],
        )?;
        if inserted == 1 {
            for (i, l) in img.layers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers (image_id, idx, digest, diff_id, media_type, size, uncompressed_size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        img.id.as_str(),
                        i as i64,
                        l.digest.as_str(),
                        l.diff_id.as_str(),
                        l.media_type,
                        l.size as i64,
                        l.uncompressed_size as i64
                    ],
                )?;
            }
        }
        for (d, mt) in &img.manifests {
            tx.execute(
                "INSERT OR IGNORE INTO image_manifests (image_id, digest, media_type) VALUES (?1, ?2, ?3)",
                params![img.id.as_str(), d.as_str(), mt],
            )?;
        }
        for (name, repo, kind) in refs {
            let kind = match kind {
                RefKind::Tag => "tag",
                RefKind::Digest => "digest",
            };
            tx.execute(
                "INSERT INTO refs (name, repo, kind, image_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, created_at = excluded.created_at",
                params![name, repo, kind, img.id.as_str(), t],
            )?;
        }
        if let Some(id) = download {
            set_state(&tx, id, DownloadState::Committed, None)?;
            tx.execute(
                "UPDATE downloads SET image_id = ?2 WHERE id = ?1",
                params![id, img.id.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// All images with their refs, newest first.
    pub fn list_images(&self) -> Result<Vec<ImageRow>> {
        self.images_where(None)
    }

    /// One image with its refs.
    pub fn image_row(&self, id: &Digest) -> Result<Option<ImageRow>> {
        Ok(self.images_where(Some(id))?.pop())
    }

    fn images_where(&self, id: Option<&Digest>) -> Result<Vec<ImageRow>> {
        let conn = self.conn();
        let only = id.map(|d| d.as_str().to_string());
        let mut refs = conn
            .prepare_cached("SELECT image_id, name, kind FROM refs WHERE ?1 IS NULL OR image_id = ?1 ORDER BY name")?;
        let mut by_image: std::collections::HashMap<String, (Vec<String>, Vec<String>)> = Default::default();
        for r in refs.query_map([&only], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })? {
            let (id, name, kind) = r?;
            let e = by_image.entry(id).or_default();
            if kind == "tag" {
                e.0.push(name)
            } else {
                e.1.push(name)
            }
        }
        let mut st = conn.prepare_cached(
            "SELECT id, manifest_digest, os, architecture, variant, created, size, labels, last_tag_time FROM images
             WHERE ?1 IS NULL OR id = ?1 ORDER BY coalesce(created, 0) DESC, id",
        )?;
        let rows = st.query_map([&only], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<i64>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let ((id, md), os, architecture, variant, created, size, labels, last_tag_time) = r?;
            let (tags, digests) = by_image.remove(&id).unwrap_or_default();
            out.push(ImageRow {
                id: digest_col(id, "images.id")?,
                manifest_digest: digest_col(md, "images.manifest_digest")?,
                os,
                architecture,
                variant,
                created,
                size: size as u64,
                labels,
                tags,
                digests,
                last_tag_time,
            });
        }
        Ok(out)
    }

    /// Record digest ref `name` (`repo@sha256:…`) for image `id` (after a push).
    pub fn add_digest_ref(&self, name: &str, repo: &str, id: &Digest) -> Result<()> {
        self.conn().execute(
            "INSERT INTO refs (name, repo, kind, image_id, created_at) VALUES (?1, ?2, 'digest', ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            params![name, repo, id.as_str(), now()],
        )?;
        Ok(())
    }

    /// Repositories (canonical names) whose images have blob `d`, for cross-repository mounts.
    pub fn repos_with_blob(&self, d: &Digest) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT DISTINCT r.repo FROM refs r JOIN image_layers l ON l.image_id = r.image_id WHERE l.digest = ?1
             ORDER BY r.repo",
        )?;
        let rows = st.query_map([d.as_str()], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The media type the image's own manifest was stored with.
    pub fn manifest_media_type(&self, id: &Digest, manifest: &Digest) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT media_type FROM image_manifests WHERE image_id = ?1 AND digest = ?2",
                [id.as_str(), manifest.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Point tag `name` (in `repo`) at image `id`, moving it from any other image, and note the time of this
    /// tag operation on the image.
    pub fn tag(&self, name: &str, repo: &str, id: &Digest) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let t = now();
        tx.execute(
            "INSERT INTO refs (name, repo, kind, image_id, created_at) VALUES (?1, ?2, 'tag', ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, created_at = excluded.created_at",
            params![name, repo, id.as_str(), t],
        )?;
        tx.execute(
            "UPDATE images SET last_tag_time = ?2 WHERE id = ?1",
            params![id.as_str(), t],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn image_layers(&self, id: &Digest) -> Result<Vec<LayerRecord>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT digest, diff_id, media_type, size, uncompressed_size FROM image_layers WHERE image_id = ?1 ORDER BY idx",
        )?;
        let rows = st.query_map([id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (d, diff, media_type, size, us) = r?;
            out.push(LayerRecord {
                digest: digest_col(d, "image_layers.digest")?,
                diff_id: digest_col(diff, "image_layers.diff_id")?,
                media_type,
                size: size as u64,
                uncompressed_size: us as u64,
            });
        }
        Ok(out)
    }

    /// The image a canonical ref name points at.
    pub fn resolve_ref(&self, name: &str) -> Result<Option<Digest>> {
        let id: Option<String> = self
            .conn()
            .query_row("SELECT image_id FROM refs WHERE name = ?1", [name], |r| r.get(0))
            .optional()?;
        opt_digest(id, "refs.image_id")
    }

    /// The tags of repository `repo` (canonical names) with their images, sorted by name.
    pub fn repo_tags(&self, repo: &str) -> Result<Vec<(String, Digest)>> {
        let conn = self.conn();
        let mut st =
            conn.prepare_cached("SELECT name, image_id FROM refs WHERE repo = ?1 AND kind = 'tag' ORDER BY name")?;
        let rows = st.query_map([repo], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|r| {
            let (n, i) = r?;
            Ok((n, digest_col(i, "refs.image_id")?))
        })
        .collect()
    }

    /// Images whose id hex starts with `prefix` (lowercase hex).
    pub fn images_by_prefix(&self, prefix: &str) -> Result<Vec<Digest>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT id FROM images WHERE substr(id, 8, ?2) = ?1")?;
        let ids = st.query_map(params![prefix, prefix.len() as i64], |r| r.get::<_, String>(0))?;
        ids.map(|r| digest_col(r?, "images.id")).collect()
    }

    /// Refs of an image: (name, repo, kind).
    pub fn refs_of(&self, id: &Digest) -> Result<Vec<(String, String, RefKind)>> {
        let conn = self.conn();
        let mut st =
            conn.prepare_cached("SELECT name, repo, kind FROM refs WHERE image_id = ?1 ORDER BY kind DESC, name")?;
        let rows = st.query_map([id.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?;
        rows.map(|r| {
            let (n, repo, k) = r?;
            Ok((n, repo, if k == "tag" { RefKind::Tag } else { RefKind::Digest }))
        })
        .collect()
    }

    /// Remove refs and, if `delete_image`, the image row, in one transaction.
    /// Succeeds on a full volume (see [`Db::with_room`]): a delete is how the owner frees space.
    pub fn remove(&self, refs: &[String], delete_image: Option<&Digest>) -> Result<()> {
        self.with_room(|conn| {
            let tx = conn.unchecked_transaction()?;
            for r in refs {
                tx.execute("DELETE FROM refs WHERE name = ?1", [r])?;
            }
            if let Some(id) = delete_image {
                tx.execute("DELETE FROM images WHERE id = ?1", [id.as_str()])?;
            }
            tx.commit()
        })
    }

    /// Every blob some image or LXC template needs: configs, layers, manifests, rootfs and meta files.
    pub fn referenced_blobs(&self) -> Result<HashSet<Digest>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT id FROM images UNION SELECT digest FROM image_layers UNION SELECT digest FROM image_manifests
             UNION SELECT rootfs_digest FROM lxc_templates
             UNION SELECT meta_digest FROM lxc_templates WHERE meta_digest IS NOT NULL",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest_col(r?, "referenced blob")).collect()
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// What `index.json` of the OCI layout lists: every image's manifest with each of its refs (an image with
    /// none is listed once, unnamed), ordered by ref name.
    pub fn layout_entries(&self) -> Result<Vec<LayoutRow>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT i.manifest_digest, m.media_type, i.os, i.architecture, i.variant, r.name
             FROM images i JOIN image_manifests m ON m.image_id = i.id AND m.digest = i.manifest_digest
             LEFT JOIN refs r ON r.image_id = i.id
             ORDER BY r.name IS NULL, r.name, i.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        rows.map(|r| {
            let (d, media_type, os, architecture, variant, ref_name) = r?;
            Ok(LayoutRow {
                manifest: digest_col(d, "images.manifest_digest")?,
                media_type,
                os,
                architecture,
                variant,
                ref_name,
            })
        })
        .collect()
    }

    /// Every (image, layer blob, uncompressed size) triple: what shared sizes and disk usage are computed from.
    pub fn layer_usage(&self) -> Result<Vec<(Digest, Digest, u64)>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT image_id, digest, uncompressed_size FROM image_layers")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        rows.map(|r| {
            let (i, d, n) = r?;
            Ok((
                digest_col(i, "image_layers.image_id")?,
                digest_col(d, "image_layers.digest")?,
                n as u64,
            ))
        })
        .collect()
    }

    /// An image's config labels (JSON object text), if it has any.
    pub fn image_labels(&self, id: &Digest) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT labels FROM images WHERE id = ?1", [id.as_str()], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()?
            .flatten())
    }

    /// The image manifest of every image.
    pub fn image_manifests(&self) -> Result<HashSet<Digest>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT manifest_digest FROM images")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest_col(r?, "images.manifest_digest")).collect()
    }

    /// The blobs one image needs: its config, layers and manifests.
    pub fn blobs_of_image(&self, id: &Digest) -> Result<Vec<Digest>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT id FROM images WHERE id = ?1 UNION SELECT digest FROM image_layers WHERE image_id = ?1
             UNION SELECT digest FROM image_manifests WHERE image_id = ?1",
        )?;
        let rows = st.query_map([id.as_str()], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest_col(r?, "image blob")).collect()
    }

    /// Every (image, blob it needs) pair.
    pub fn image_blobs(&self) -> Result<Vec<(Digest, Digest)>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT id, id FROM images UNION SELECT image_id, digest FROM image_layers
             UNION SELECT image_id, digest FROM image_manifests ORDER BY 1, 2",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|r| {
            let (i, b) = r?;
            Ok((digest_col(i, "image id")?, digest_col(b, "image blob")?))
        })
        .collect()
    }

    /// At a tidy stop: move the WAL's content into the main file and leave WAL mode, which removes `-wal` and
    /// `-shm`, so the database is one self-contained file (the next open switches WAL on again). A write that
    /// still comes after this is durable all the same, through a rollback journal.
    pub fn checkpoint(&self) -> Result<()> {
        checkpoint(&self.conn())
    }

    /// Changes made through this connection since it opened (every write of the daemon goes through it).
    pub fn changes(&self) -> u64 {
        self.conn().total_changes()
    }

    /// Hold the connection: nothing writes while the returned guard lives (a stopping daemon's last act).
    pub fn freeze(&self) -> Frozen<'_> {
        Frozen(self.conn())
    }

    /// SQLite's own check of the database file: empty when it is sound.
    /// A fast structural check (`quick_check`: pages and records, not index contents), for every start: a torn
    /// or truncated file is caught before the daemon trusts it. The database is small (metadata only).
    pub fn quick_check(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st = conn.prepare("PRAGMA quick_check")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let lines: Vec<String> = rows.collect::<std::result::Result<_, _>>()?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st = conn.prepare("PRAGMA integrity_check")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let lines: Vec<String> = rows.collect::<std::result::Result<_, _>>()?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    // --- users and tokens ---

    pub fn user_count(&self) -> Result<i64> {
        Ok(self.conn().query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT name, password_hash, admin FROM users WHERE name = ?1",
                [name],
                |r| {
                    Ok(UserRow {
                        name: r.get(0)?,
                        password_hash: r.get(1)?,
                        admin: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Create the user or replace its password and role.
    pub fn put_user(&self, u: &UserRow) -> Result<()> {
        self.conn().execute(
            "INSERT INTO users (name, password_hash, admin, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, admin = excluded.admin",
            params![u.name, u.password_hash, u.admin, now()],
        )?;
        Ok(())
    }

    pub fn create_token(&self, name: &str, token_sha256: &str) -> Result<TokenRow> {
        let conn = self.conn();
        let t = now();
        conn.execute(
            "INSERT INTO tokens (name, token_sha256, created_at) VALUES (?1, ?2, ?3)",
            params![name, token_sha256, t],
        )?;
        Ok(TokenRow {
            id: conn.last_insert_rowid(),
            name: name.to_string(),
            created_at: t,
            last_used: None,
        })
    }

    /// The token with this hash, marked as used now.
    pub fn use_token(&self, token_sha256: &str) -> Result<Option<TokenRow>> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT id, name, created_at, last_used FROM tokens WHERE token_sha256 = ?1",
                [token_sha256],
                |r| {
                    Ok(TokenRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                        last_used: r.get(3)?,
                    })
                },
            )
            .optional()?;
        if let Some(t) = &row {
            // at most one write a minute per token: a polling client must not turn every read into a write
            if t.last_used.is_none_or(|u| now() - u >= 60) {
                conn.execute("UPDATE tokens SET last_used = ?2 WHERE id = ?1", params![t.id, now()])?;
            }
        }
        Ok(row)
    }

    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id, name, created_at, last_used FROM tokens ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(TokenRow {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                last_used: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether a token with this id existed.
    pub fn delete_token(&self, id: i64) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM tokens WHERE id = ?1", [id])? > 0)
    }

    // --- registries and private images ---

    fn registries_where(&self, cond: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<RegistryRow>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT id, name, url, host, username, password_sealed, insecure FROM registries WHERE {cond} ORDER BY id"
        ))?;
        let rows = st.query_map(p, |r| {
            Ok(RegistryRow {
                id: r.get(0)?,
                name: r.get(1)?,
                url: r.get(2)?,
                host: r.get(3)?,
                username: r.get(4)?,
                password_sealed: r.get(5)?,
                insecure: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn registries(&self) -> Result<Vec<RegistryRow>> {
        self.registries_where("1", params![])
    }

    pub fn registry(&self, id: i64) -> Result<Option<RegistryRow>> {
        Ok(self.registries_where("id = ?1", params![id])?.pop())
    }

    pub fn registry_named(&self, name: &str) -> Result<Option<RegistryRow>> {
        Ok(self.registries_where("name = ?1", params![name])?.pop())
    }

    pub fn registry_for_host(&self, host: &str) -> Result<Option<RegistryRow>> {
        Ok(self.registries_where("host = ?1", params![host])?.pop())
    }

    /// Insert (`id` 0) or replace a registry; its id. A name in use is [`DbError::Conflict`].
    pub fn put_registry(&self, r: &RegistryRow) -> Result<i64> {
        let conn = self.conn();
        let res = if r.id == 0 {
            conn.execute(
                "INSERT INTO registries (name, url, host, username, password_sealed, insecure, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![r.name, r.url, r.host, r.username, r.password_sealed, r.insecure, now()],
            )
            .map(|_| conn.last_insert_rowid())
        } else {
            conn.execute(
                "UPDATE registries SET name = ?2, url = ?3, host = ?4, username = ?5, password_sealed = ?6, insecure = ?7
                 WHERE id = ?1",
                params![r.id, r.name, r.url, r.host, r.username, r.password_sealed, r.insecure],
            )
            .map(|_| r.id)
        };
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(DbError::Conflict(format!("a registry is already named {:?}", r.name)))
            }
            r => Ok(r?),
        }
    }

    /// Delete a registry unless a private image record names it; whether it existed.
    pub fn delete_registry(&self, id: i64) -> Result<bool> {
        let conn = self.conn();
        let used: i64 = conn.query_row(
            "SELECT count(*) FROM private_images WHERE registry_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        if used > 0 {
            return Err(DbError::Conflict(format!(
                "{used} private image records name registry {id}"
            )));
        }
        Ok(conn.execute("DELETE FROM registries WHERE id = ?1", [id])? > 0)
    }

    fn private_images_where(&self, cond: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<PrivateImageRow>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT id, name, description, registry_id, is_private FROM private_images WHERE {cond} ORDER BY id"
        ))?;
        let rows = st.query_map(p, |r| {
            Ok(PrivateImageRow {
                id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                registry_id: r.get(3)?,
                is_private: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn private_images(&self) -> Result<Vec<PrivateImageRow>> {
        self.private_images_where("1", params![])
    }

    pub fn private_image(&self, id: i64) -> Result<Option<PrivateImageRow>> {
        Ok(self.private_images_where("id = ?1", params![id])?.pop())
    }

    /// Insert (`id` 0) or replace a record; its id. The same name in the same registry twice is a conflict.
    pub fn put_private_image(&self, r: &PrivateImageRow) -> Result<i64> {
        let conn = self.conn();
        let res = if r.id == 0 {
            conn.execute(
                "INSERT INTO private_images (name, description, registry_id, is_private, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.name, r.description, r.registry_id, r.is_private, now()],
            )
            .map(|_| conn.last_insert_rowid())
        } else {
            conn.execute(
                "UPDATE private_images SET name = ?2, description = ?3, registry_id = ?4, is_private = ?5 WHERE id = ?1",
                params![r.id, r.name, r.description, r.registry_id, r.is_private],
            )
            .map(|_| r.id)
        };
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => Err(
                DbError::Conflict(format!("image {:?} is already recorded for this registry", r.name)),
            ),
            r => Ok(r?),
        }
    }

    pub fn delete_private_image(&self, id: i64) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM private_images WHERE id = ?1", [id])? > 0)
    }

    // --- sessions ---

    pub fn put_session(&self, id_sha256: &str, s: &SessionRow) -> Result<()> {
        let conn = self.conn();
        conn.execute("DELETE FROM sessions WHERE expires < ?1", [now()])?;
        conn.execute(
            "INSERT OR REPLACE INTO sessions (id_sha256, user, admin, login_time, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id_sha256, s.user, s.admin, s.login_time, s.expires],
        )?;
        Ok(())
    }

    /// The unexpired session with this id's sha256.
    pub fn session(&self, id_sha256: &str) -> Result<Option<SessionRow>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT user, admin, login_time, expires FROM sessions WHERE id_sha256 = ?1 AND expires >= ?2",
                params![id_sha256, now()],
                |r| {
                    Ok(SessionRow {
                        user: r.get(0)?,
                        admin: r.get(1)?,
                        login_time: r.get(2)?,
                        expires: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn delete_session(&self, id_sha256: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM sessions WHERE id_sha256 = ?1", [id_sha256])?;
        Ok(())
    }

    // --- LXC templates ---

    /// Record a template, replacing an older build of the same name; returns the blobs the replaced row held
    /// (the caller collects those nothing else needs).
    pub fn put_lxc_template(&self, t: &LxcTemplateRow) -> Result<Vec<Digest>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let old = lxc_template_blobs(&tx, &t.name)?;
        tx.execute(
            "INSERT OR REPLACE INTO lxc_templates (name, dist, release, arch, variant, build, source, rootfs_digest,
                rootfs_size, meta_digest, meta, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                t.name,
                t.dist,
                t.release,
                t.arch,
                t.variant,
                t.build,
                t.source,
                t.rootfs_digest.as_str(),
                t.rootfs_size as i64,
                t.meta_digest.as_ref().map(|d| d.as_str()),
                t.meta,
                t.created_at
            ],
        )?;
        tx.commit()?;
        Ok(old)
    }

    /// Every template, by name.
    pub fn lxc_templates(&self) -> Result<Vec<LxcTemplateRow>> {
        self.lxc_templates_where("1", params![])
    }

    pub fn lxc_template(&self, name: &str) -> Result<Option<LxcTemplateRow>> {
        Ok(self.lxc_templates_where("name = ?1", params![name])?.pop())
    }

    /// Forget a template; the blobs it held (to collect if nothing else needs them), `None` if there was none.
    /// Succeeds on a full volume, as [`Db::remove`] does.
    pub fn delete_lxc_template(&self, name: &str) -> Result<Option<Vec<Digest>>> {
        self.with_room(|conn| {
            let tx = conn.unchecked_transaction()?;
            let old = lxc_template_blobs(&tx, name)?;
            let n = tx.execute("DELETE FROM lxc_templates WHERE name = ?1", [name])?;
            tx.commit()?;
            Ok::<_, DbError>((n > 0).then_some(old))
        })
    }

    fn lxc_templates_where(&self, cond: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<LxcTemplateRow>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT name, dist, release, arch, variant, build, source, rootfs_digest, rootfs_size, meta_digest, meta,
                    created_at FROM lxc_templates WHERE {cond} ORDER BY name"
        );
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(p, |r| {
            Ok((
                [
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                ],
                r.get::<_, i64>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, String>(10)?,
                r.get::<_, i64>(11)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let ([name, dist, release, arch, variant, build, source, rootfs], size, meta_digest, meta, created_at) = r?;
            out.push(LxcTemplateRow {
                name,
                dist,
                release,
                arch,
                variant,
                build,
                source,
                rootfs_digest: digest_col(rootfs, "lxc_templates.rootfs_digest")?,
                rootfs_size: size as u64,
                meta_digest: opt_digest(meta_digest, "lxc_templates.meta_digest")?,
                meta,
                created_at,
            });
        }
        Ok(out)
    }

    // --- downloads ---

    /// A new download in state `queued`. `auth` (the registry credentials, sealed by the caller: see
    /// [`crate::store::Sealer`]) is kept only while the download is unfinished, so that a resumed pull of a
    /// private image can authenticate.
    pub fn create_download(&self, reference: &str, platform: Option<&str>, auth: Option<&str>) -> Result<i64> {
        self.create_download_of(DownloadKind::Image, reference, platform, auth)
    }

    /// A new download of `kind` in state `queued`.
    pub fn create_download_of(
        &self,
        kind: DownloadKind,
        reference: &str,
        platform: Option<&str>,
        auth: Option<&str>,
    ) -> Result<i64> {
        let conn = self.conn();
        let t = now();
        conn.execute(
            "INSERT INTO downloads (reference, platform, state, auth, created_at, updated_at, kind) VALUES (?1, ?2, 'queued', ?3, ?4, ?4, ?5)",
            params![reference, platform, auth, t, kind.as_str()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    pub fn download_auth(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT auth FROM downloads WHERE id = ?1", [id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// Replace a running download's (sealed) credentials.
    pub fn set_download_auth(&self, id: i64, auth: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE downloads SET auth = ?2 WHERE id = ?1 AND state NOT IN ('committed', 'failed')",
            params![id, auth],
        )?;
        Ok(())
    }

    /// Move a download along its lifecycle. Succeeds on a full volume (see [`Db::with_room`]): a client is never
    /// told an end the database does not record.
    pub fn set_download_state(&self, id: i64, state: DownloadState, error: Option<&str>) -> Result<()> {
        self.with_room(|c| set_state(c, id, state, error))
    }

    /// Record what the reference resolved to, so a resumed download fetches exactly the same image.
    pub fn set_download_resolved(&self, id: i64, resolved: &Digest, manifest: &Digest) -> Result<()> {
        self.conn().execute(
            "UPDATE downloads SET resolved_digest = ?2, manifest_digest = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, resolved.as_str(), manifest.as_str(), now()],
        )?;
        Ok(())
    }

    /// What an LXC download fetches (JSON), recorded at its creation.
    pub fn set_download_spec(&self, id: i64, spec: &str) -> Result<()> {
        self.conn()
            .execute("UPDATE downloads SET spec = ?2 WHERE id = ?1", params![id, spec])?;
        Ok(())
    }

    pub fn download_spec(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT spec FROM downloads WHERE id = ?1", [id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// A blob a download fetched under a key (its digest unknown until the end) is known by its digest now.
    pub fn rekey_download_blob(&self, id: i64, key: &Digest, digest: &Digest) -> Result<()> {
        self.conn().execute(
            "UPDATE OR REPLACE download_blobs SET digest = ?3 WHERE download_id = ?1 AND digest = ?2",
            params![id, key.as_str(), digest.as_str()],
        )?;
        Ok(())
    }

    pub fn set_download_blob(&self, id: i64, digest: &Digest, size: u64, done: u64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO download_blobs (download_id, digest, size, done) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(download_id, digest) DO UPDATE SET done = excluded.done",
            params![id, digest.as_str(), size as i64, done as i64],
        )?;
        Ok(())
    }

    pub fn download(&self, id: i64) -> Result<Option<DownloadRow>> {
        Ok(self.downloads_where("id = ?1", params![id])?.pop())
    }

    /// Downloads of `kind` that were running when the daemon stopped (paused ones too: the caller decides).
    pub fn unfinished_downloads(&self, kind: DownloadKind) -> Result<Vec<DownloadRow>> {
        self.downloads_where(
            "state NOT IN ('committed', 'failed') AND kind = ?1",
            params![kind.as_str()],
        )
    }

    /// The newest `limit` downloads, oldest first.
    pub fn recent_downloads(&self, limit: u32) -> Result<Vec<DownloadRow>> {
        self.downloads_where(
            "id IN (SELECT id FROM downloads ORDER BY id DESC LIMIT ?1)",
            params![limit],
        )
    }

    /// Hold or release an unfinished download; whether it is one.
    pub fn set_download_paused(&self, id: i64, paused: bool) -> Result<bool> {
        Ok(self.with_room(|c| {
            c.execute(
                "UPDATE downloads SET paused = ?2, updated_at = ?3 WHERE id = ?1 AND state NOT IN ('committed', 'failed')",
                params![id, paused, now()],
            )
        })? > 0)
    }

    /// Record every blob a download will fetch with its size, before the first byte, so that its total is known
    /// from the start; blobs already recorded keep their progress.
    pub fn plan_download_blobs(&self, id: i64, blobs: &[(Digest, u64)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (d, size) in blobs {
            tx.execute(
                "INSERT INTO download_blobs (download_id, digest, size, done) VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT(download_id, digest) DO NOTHING",
                params![id, d.as_str(), *size as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn downloads_where(&self, cond: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<DownloadRow>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT id, reference, platform, state, error, resolved_digest, manifest_digest, image_id, paused,
                    created_at, updated_at, kind FROM downloads WHERE {cond} ORDER BY id"
        );
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(p, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                (
                    r.get::<_, bool>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get::<_, String>(11)?,
                ),
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, reference, platform, state, error, res, man, img, (paused, created_at, updated_at, kind)) = r?;
            let kind = match kind.as_str() {
                "image" => DownloadKind::Image,
                "lxc" => DownloadKind::Lxc,
                _ => return Err(DbError::Corrupt("downloads.kind")),
            };
            out.push(DownloadRow {
                id,
                reference,
                platform,
                state: state.parse()?,
                error,
                resolved_digest: opt_digest(res, "downloads.resolved_digest")?,
                manifest_digest: opt_digest(man, "downloads.manifest_digest")?,
                image_id: opt_digest(img, "downloads.image_id")?,
                paused,
                created_at,
                updated_at,
                kind,
            });
        }
        Ok(out)
    }

    /// Blobs that unfinished downloads own: GC must not take them or their ingests.
    pub fn live_download_blobs(&self) -> Result<HashSet<Digest>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT b.digest FROM download_blobs b JOIN downloads d ON d.id = b.download_id
             WHERE d.state NOT IN ('committed', 'failed')
             UNION SELECT resolved_digest FROM downloads WHERE state NOT IN ('committed', 'failed') AND resolved_digest IS NOT NULL
             UNION SELECT manifest_digest FROM downloads WHERE state NOT IN ('committed', 'failed') AND manifest_digest IS NOT NULL",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest_col(r?, "download blob")).collect()
    }

    /// Digests whose ingests a download owns: unfinished ones, and those that failed after `failed_since` (unix
    /// seconds), whose bytes a new pull of the same image resumes from.
    pub fn owned_ingests(&self, failed_since: i64) -> Result<HashSet<Digest>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT b.digest FROM download_blobs b JOIN downloads d ON d.id = b.download_id
             WHERE d.state NOT IN ('committed', 'failed') OR (d.state = 'failed' AND d.updated_at >= ?1)",
        )?;
        let rows = st.query_map([failed_since], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest_col(r?, "download blob")).collect()
    }

    /// Forget ended downloads last updated before `before` (unix seconds); their blob rows go with them.
    pub fn prune_downloads(&self, before: i64) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM downloads WHERE state IN ('committed', 'failed') AND updated_at < ?1",
            [before],
        )?)
    }

    /// Bytes recorded as done per blob of a download (coarse: written at intervals, not per chunk).
    pub fn download_progress(&self, id: i64) -> Result<Vec<(Digest, u64, u64)>> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT digest, size, done FROM download_blobs WHERE download_id = ?1 ORDER BY digest")?;
        let rows = st.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })?;
        rows.map(|r| {
            let (d, s, done) = r?;
            Ok((digest_col(d, "download_blobs.digest")?, s as u64, done as u64))
        })
        .collect()
    }
}

/// The WAL folded into the database file and the journal mode back to DELETE: the file alone is the database.
fn checkpoint(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// See [`Db::freeze`].
pub struct Frozen<'a>(Conn<'a>);

impl Frozen<'_> {
    pub fn changes(&self) -> u64 {
        self.0.total_changes()
    }

    pub fn checkpoint(&self) -> Result<()> {
        checkpoint(&self.0)
    }
}

fn set_state(conn: &Connection, id: i64, state: DownloadState, error: Option<&str>) -> rusqlite::Result<()> {
    // Credentials outlive the download by not one transaction.
    conn.execute(
        "UPDATE downloads SET state = ?2, error = ?3, updated_at = ?4,
           auth = CASE WHEN ?2 IN ('committed', 'failed') THEN NULL ELSE auth END,
           paused = CASE WHEN ?2 IN ('committed', 'failed') THEN 0 ELSE paused END WHERE id = ?1",
        params![id, state.as_str(), error, now()],
    )?;
    Ok(())
}

/// Make the reserve file, unless it is there whole already: [`RESERVE_BYTES`], or as much of it as the volume
/// has room for, but not less than [`MIN_RESERVE_BYTES`] (else none). A part is worth keeping: one delete's
/// transaction needs a few pages, and a small image's delete frees less than the whole reserve. Its blocks are
/// really allocated: a sparse file would give nothing back.
fn make_reserve(path: &Path) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == RESERVE_BYTES) {
        return Ok(());
    }
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    let zeros = vec![0u8; 64 * 1024];
    let mut kept = 0;
    let mut full = None;
    while kept < RESERVE_BYTES {
        match f.write_all(&zeros) {
            Ok(()) => kept += zeros.len() as u64,
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let r = match full {
        Some(e) if kept < MIN_RESERVE_BYTES => Err(e),
        // what did not fit may be half a block: keep the whole chunks only
        _ => f.set_len(kept).and_then(|()| f.sync_all()),
    };
    if r.is_err() {
        let _ = std::fs::remove_file(path);
    }
    r
}

/// Apply the migrations past the database's `user_version`, each in its own transaction with the version bump,
/// so a crash mid-migration leaves the previous version intact.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = migrations.len() as i64;
    if current > known {
        return Err(DbError::TooNew { found: current, known });
    }
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        let tx: Transaction<'_> = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn image(cfg: &str, layers: &[&str]) -> NewImage {
        NewImage {
            id: d(cfg),
            manifest_digest: d(&format!("m-{cfg}")),
            manifests: vec![(
                d(&format!("m-{cfg}")),
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            created: Some(100),
            labels: None,
            layers: layers
                .iter()
                .map(|l| LayerRecord {
                    digest: d(l),
                    diff_id: d(&format!("diff-{l}")),
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    size: 10,
                    uncompressed_size: 30,
                })
                .collect(),
        }
    }

    #[test]
    fn token_ids_are_never_given_again() {
        let db = Db::open_in_memory().unwrap();
        let a = db.create_token("a", "aa").unwrap();
        let b = db.create_token("b", "bb").unwrap();
        assert!(db.delete_token(b.id).unwrap());
        assert!(db.delete_token(a.id).unwrap());
        let c = db.create_token("c", "cc").unwrap();
        assert!(c.id > b.id, "token {} after {} was revoked", c.id, b.id);
        // a database from before migration 8 keeps its ids and continues after the largest
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &MIGRATIONS[..7]).unwrap();
        conn.execute_batch("INSERT INTO tokens (id, name, token_sha256, created_at) VALUES (5, 'x', 'xx', 0);")
            .unwrap();
        migrate(&mut conn, MIGRATIONS).unwrap();
        conn.execute("DELETE FROM tokens WHERE id = 5", []).unwrap();
        conn.execute(
            "INSERT INTO tokens (name, token_sha256, created_at) VALUES ('y', 'yy', 0)",
            [],
        )
        .unwrap();
        let id: i64 = conn.query_row("SELECT id FROM tokens", [], |r| r.get(0)).unwrap();
        assert_eq!(id, 6);
    }

    #[test]
    fn migration_1_from_empty() {
        let db = Db::open_in_memory().unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let conn = db.conn();
        for t in [
            "blobs",
            "images",
            "image_layers",
            "image_manifests",
            "refs",
            "downloads",
            "download_blobs",
        ] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
                    [t],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "table {t}");
        }
    }

    #[test]
    fn migrations_are_incremental_and_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        conn.execute(
            "INSERT INTO downloads (reference, state, created_at, updated_at) VALUES ('x', 'queued', 1, 1)",
            [],
        )
        .unwrap();
        // a later migration list applies only what is new and keeps the data
        let extra = [MIGRATIONS[0], "CREATE TABLE later (x INTEGER);"];
        migrate(&mut conn, &extra).unwrap();
        migrate(&mut conn, &extra).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 2);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM downloads", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        // a failing migration leaves the previous version and schema untouched
        let broken = [MIGRATIONS[0], extra[1], "CREATE TABLE ok3 (x); THIS IS NOT SQL;"];
        assert!(migrate(&mut conn, &broken).is_err());
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 2);
        let ok3: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE name='ok3'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok3, 0);
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = crate::testutil::tempdir();
        let p = dir.join("depot.db");
        Db::open(&p).unwrap();
        Connection::open(&p)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(Db::open(&p), Err(DbError::TooNew { found: 99, .. })));
    }

    #[test]
    fn commit_list_resolve_remove() {
        let db = Db::open_in_memory().unwrap();
        let img = image("cfg1", &["l1", "l2"]);
        let dl = db
            .create_download("docker.io/library/busybox:latest", None, None)
            .unwrap();
        let refs = vec![
            (
                "docker.io/library/busybox:latest".to_string(),
                "docker.io/library/busybox".to_string(),
                RefKind::Tag,
            ),
            (
                format!("docker.io/library/busybox@{}", d("idx")),
                "docker.io/library/busybox".to_string(),
                RefKind::Digest,
            ),
        ];
        db.commit_image(&img, &refs, Some(dl)).unwrap();
        assert_eq!(db.download(dl).unwrap().unwrap().state, DownloadState::Committed);
        assert!(db.unfinished_downloads(DownloadKind::Image).unwrap().is_empty());
        let list = db.list_images().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].size, 60);
        assert_eq!(list[0].tags, vec!["docker.io/library/busybox:latest"]);
        assert_eq!(list[0].digests.len(), 1);
        assert_eq!(
            db.resolve_ref("docker.io/library/busybox:latest").unwrap(),
            Some(img.id.clone())
        );
        assert_eq!(db.images_by_prefix(&img.id.hex()[..6]).unwrap(), vec![img.id.clone()]);
        assert_eq!(db.image_layers(&img.id).unwrap().len(), 2);
        let blobs = db.referenced_blobs().unwrap();
        assert!(blobs.contains(&img.id) && blobs.contains(&d("l1")) && blobs.contains(&img.manifest_digest));
        // committing again (same image) is idempotent; the tag moves to a new image
        db.commit_image(&img, &refs[..1], None).unwrap();
        let img2 = image("cfg2", &["l1"]);
        db.commit_image(&img2, &refs[..1], None).unwrap();
        assert_eq!(
            db.resolve_ref("docker.io/library/busybox:latest").unwrap(),
            Some(img2.id.clone())
        );
        let names: Vec<String> = db.refs_of(&img.id).unwrap().into_iter().map(|r| r.0).collect();
        assert_eq!(names, vec![refs[1].0.clone()]);
        db.remove(&names, Some(&img.id)).unwrap();
        assert_eq!(db.list_images().unwrap().len(), 1);
        assert!(
            db.image_layers(&img.id).unwrap().is_empty(),
            "layers cascade with the image"
        );
    }

    #[test]
    fn downloads_lifecycle() {
        let db = Db::open_in_memory().unwrap();
        let a = db.create_download("r:a", Some("linux/arm64"), Some("secret")).unwrap();
        let b = db.create_download("r:b", None, Some("secret")).unwrap();
        db.set_download_state(a, DownloadState::Fetching, None).unwrap();
        db.set_download_resolved(a, &d("idx"), &d("man")).unwrap();
        db.set_download_blob(a, &d("l1"), 100, 10).unwrap();
        db.set_download_blob(a, &d("l1"), 100, 60).unwrap();
        db.set_download_state(b, DownloadState::Failed, Some("boom")).unwrap();
        let un = db.unfinished_downloads(DownloadKind::Image).unwrap();
        assert_eq!(un.len(), 1);
        assert_eq!(un[0].platform.as_deref(), Some("linux/arm64"));
        assert_eq!(un[0].manifest_digest, Some(d("man")));
        assert_eq!(db.download_progress(a).unwrap(), vec![(d("l1"), 100, 60)]);
        let live = db.live_download_blobs().unwrap();
        assert!(live.contains(&d("l1")) && live.contains(&d("idx")) && live.contains(&d("man")));
        assert_eq!(db.download(b).unwrap().unwrap().error.as_deref(), Some("boom"));
        assert_eq!(db.download_auth(a).unwrap().as_deref(), Some("secret"));
        assert_eq!(
            db.download_auth(b).unwrap(),
            None,
            "credentials are dropped when a download ends"
        );
    }

    #[test]
    fn every_write_to_the_downloads_wakes_its_followers_and_nothing_else_does() {
        let db = Db::open_in_memory().unwrap();
        let ch = db.downloads_changed();
        // notify() wakes at once, in the writer's thread: a listener is ready right after the write, or never
        let woken =
            |l: &mut event_listener::EventListener| smol::block_on(futures_lite::future::poll_once(l)).is_some();
        let mut l = ch.listen();
        db.put_blob_meta(&BlobMeta {
            digest: d("x"),
            size: 1,
            media_type: "application/octet-stream".into(),
            diff_id: None,
            uncompressed_size: None,
        })
        .unwrap();
        assert!(!woken(&mut l), "a blob's facts are not a download");
        let writes: [&dyn Fn(); 3] = [
            &|| {
                db.create_download("r:a", None, None).unwrap();
            },
            &|| db.set_download_blob(1, &d("l1"), 100, 10).unwrap(),
            &|| db.set_download_state(1, DownloadState::Failed, Some("boom")).unwrap(),
        ];
        for (i, w) in writes.iter().enumerate() {
            let mut l = ch.listen();
            w();
            assert!(woken(&mut l), "write {i} woke nobody");
        }
    }

    #[test]
    fn ended_downloads_are_pruned_running_ones_never() {
        let db = Db::open_in_memory().unwrap();
        let done = db.create_download("r:a", None, None).unwrap();
        let running = db.create_download("r:b", None, None).unwrap();
        db.set_download_blob(done, &d("l"), 1, 1).unwrap();
        db.set_download_state(done, DownloadState::Committed, None).unwrap();
        assert_eq!(db.prune_downloads(now() - 60).unwrap(), 0, "too recent");
        assert_eq!(db.prune_downloads(now() + 1).unwrap(), 1);
        assert!(db.download(done).unwrap().is_none());
        assert!(db.download_progress(done).unwrap().is_empty(), "blob rows cascade");
        assert!(db.download(running).unwrap().is_some());
    }

    #[test]
    fn blob_meta_roundtrip() {
        let db = Db::open_in_memory().unwrap();
        let m = BlobMeta {
            digest: d("x"),
            size: 5,
            media_type: "t".into(),
            diff_id: Some(d("y")),
            uncompressed_size: Some(9),
        };
        db.put_blob_meta(&m).unwrap();
        db.put_blob_meta(&BlobMeta {
            diff_id: None,
            uncompressed_size: None,
            ..m.clone()
        })
        .unwrap();
        assert_eq!(db.blob_meta(&d("x")).unwrap(), Some(m));
        assert_eq!(db.blob_meta(&d("z")).unwrap(), None);
    }
}
