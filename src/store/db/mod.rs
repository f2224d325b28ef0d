//! Metadata in SQLite over one connection: the connection, its guard and the row types here; one small store per
//! entity beside it (`images`, `downloads`, `auth`, `registry_records`, `templates`, `settings`), each reached by
//! the method of that name; the schema and its migrations in `schema`.
//!
//! One connection behind a mutex (SQLite has one writer anyway); WAL so readers never block the writer; every
//! multi-row change is one transaction.

use crate::digest::Digest;
use crate::sync::Locked;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

mod auth;
mod downloads;
mod images;
mod pins;
mod registry_records;
mod schema;
mod settings;
mod templates;
pub use auth::Auth;
pub use downloads::Downloads;
pub use images::{Images, SignatureArtifact, Signed, SignerRow};
pub use pins::{PinRow, Pins};
pub use registry_records::RegistryRecords;
pub use schema::{migrate, MIGRATIONS};
pub use settings::Settings;
pub use templates::Templates;

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

impl LxcTemplateRow {
    /// Of `old` (what the build this row replaced held), the blobs this row does not hold itself: for a
    /// collection, which keeps any that something else still needs.
    pub fn released(&self, old: Vec<Digest>) -> Vec<Digest> {
        old.into_iter()
            .filter(|d| *d != self.rootfs_digest && Some(d) != self.meta_digest.as_ref())
            .collect()
    }
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
        let records = super::DataRoot::new(path.parent().unwrap_or(Path::new("."))).records();
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

    // One store per entity over the one connection.
    pub fn images(&self) -> images::Images<'_> {
        images::Images { db: self }
    }

    pub fn pins(&self) -> pins::Pins<'_> {
        pins::Pins { db: self }
    }

    pub fn settings(&self) -> settings::Settings<'_> {
        settings::Settings { db: self }
    }

    pub fn auth(&self) -> auth::Auth<'_> {
        auth::Auth { db: self }
    }

    pub fn registry_records(&self) -> registry_records::RegistryRecords<'_> {
        registry_records::RegistryRecords { db: self }
    }

    pub fn templates(&self) -> templates::Templates<'_> {
        templates::Templates { db: self }
    }

    pub fn downloads(&self) -> downloads::Downloads<'_> {
        downloads::Downloads { db: self }
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
        let a = db.auth().create_token("a", "aa").unwrap();
        let b = db.auth().create_token("b", "bb").unwrap();
        assert!(db.auth().delete_token(b.id).unwrap());
        assert!(db.auth().delete_token(a.id).unwrap());
        let c = db.auth().create_token("c", "cc").unwrap();
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
            .downloads()
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
        db.images().commit_image(&img, &refs, Some(dl)).unwrap();
        assert_eq!(
            db.downloads().download(dl).unwrap().unwrap().state,
            DownloadState::Committed
        );
        assert!(db
            .downloads()
            .unfinished_downloads(DownloadKind::Image)
            .unwrap()
            .is_empty());
        let list = db.images().list_images().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].size, 60);
        assert_eq!(list[0].tags, vec!["docker.io/library/busybox:latest"]);
        assert_eq!(list[0].digests.len(), 1);
        assert_eq!(
            db.images().resolve_ref("docker.io/library/busybox:latest").unwrap(),
            Some(img.id.clone())
        );
        assert_eq!(
            db.images().images_by_prefix(&img.id.hex()[..6]).unwrap(),
            vec![img.id.clone()]
        );
        assert_eq!(db.images().image_layers(&img.id).unwrap().len(), 2);
        let blobs = db.images().referenced_blobs().unwrap();
        assert!(blobs.contains(&img.id) && blobs.contains(&d("l1")) && blobs.contains(&img.manifest_digest));
        // committing again (same image) is idempotent; the tag moves to a new image
        db.images().commit_image(&img, &refs[..1], None).unwrap();
        let img2 = image("cfg2", &["l1"]);
        db.images().commit_image(&img2, &refs[..1], None).unwrap();
        assert_eq!(
            db.images().resolve_ref("docker.io/library/busybox:latest").unwrap(),
            Some(img2.id.clone())
        );
        let names: Vec<String> = db.images().refs_of(&img.id).unwrap().into_iter().map(|r| r.0).collect();
        assert_eq!(names, vec![refs[1].0.clone()]);
        db.images().remove(&names, Some(&img.id)).unwrap();
        assert_eq!(db.images().list_images().unwrap().len(), 1);
        assert!(
            db.images().image_layers(&img.id).unwrap().is_empty(),
            "layers cascade with the image"
        );
    }

    #[test]
    fn downloads_lifecycle() {
        let db = Db::open_in_memory().unwrap();
        let a = db
            .downloads()
            .create_download("r:a", Some("linux/arm64"), Some("secret"))
            .unwrap();
        let b = db.downloads().create_download("r:b", None, Some("secret")).unwrap();
        db.downloads()
            .set_download_state(a, DownloadState::Fetching, None)
            .unwrap();
        db.downloads().set_download_resolved(a, &d("idx"), &d("man")).unwrap();
        db.downloads().set_download_blob(a, &d("l1"), 100, 10).unwrap();
        db.downloads().set_download_blob(a, &d("l1"), 100, 60).unwrap();
        db.downloads()
            .set_download_state(b, DownloadState::Failed, Some("boom"))
            .unwrap();
        let un = db.downloads().unfinished_downloads(DownloadKind::Image).unwrap();
        assert_eq!(un.len(), 1);
        assert_eq!(un[0].platform.as_deref(), Some("linux/arm64"));
        assert_eq!(un[0].manifest_digest, Some(d("man")));
        assert_eq!(db.downloads().download_progress(a).unwrap(), vec![(d("l1"), 100, 60)]);
        let live = db.downloads().live_download_blobs().unwrap();
        assert!(live.contains(&d("l1")) && live.contains(&d("idx")) && live.contains(&d("man")));
        assert_eq!(
            db.downloads().download(b).unwrap().unwrap().error.as_deref(),
            Some("boom")
        );
        assert_eq!(db.downloads().download_auth(a).unwrap().as_deref(), Some("secret"));
        assert_eq!(
            db.downloads().download_auth(b).unwrap(),
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
        db.images()
            .put_blob_meta(&BlobMeta {
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
                db.downloads().create_download("r:a", None, None).unwrap();
            },
            &|| db.downloads().set_download_blob(1, &d("l1"), 100, 10).unwrap(),
            &|| {
                db.downloads()
                    .set_download_state(1, DownloadState::Failed, Some("boom"))
                    .unwrap()
            },
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
        let done = db.downloads().create_download("r:a", None, None).unwrap();
        let running = db.downloads().create_download("r:b", None, None).unwrap();
        db.downloads().set_download_blob(done, &d("l"), 1, 1).unwrap();
        db.downloads()
            .set_download_state(done, DownloadState::Committed, None)
            .unwrap();
        assert_eq!(db.downloads().prune_downloads(now() - 60).unwrap(), 0, "too recent");
        assert_eq!(db.downloads().prune_downloads(now() + 1).unwrap(), 1);
        assert!(db.downloads().download(done).unwrap().is_none());
        assert!(
            db.downloads().download_progress(done).unwrap().is_empty(),
            "blob rows cascade"
        );
        assert!(db.downloads().download(running).unwrap().is_some());
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
        db.images().put_blob_meta(&m).unwrap();
        db.images()
            .put_blob_meta(&BlobMeta {
                diff_id: None,
                uncompressed_size: None,
                ..m.clone()
            })
            .unwrap();
        assert_eq!(db.images().blob_meta(&d("x")).unwrap(), Some(m));
        assert_eq!(db.images().blob_meta(&d("z")).unwrap(), None);
    }
}
