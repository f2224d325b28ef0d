//! The records a rebuild cannot find in the layout, kept beside the database in `records.json`: users (password
//! hashes), API tokens (their sha256 and the last id given), private registries (credentials sealed, see
//! [`super::secrets`]), the station's private image records, LXC templates' records and the settings of the
//! `meta` table. When `depot.db` is lost or damaged, a start (or `depot fsck --repair`) puts them back, so
//! nobody finds out by a failed login.
//!
//! The database stays the truth; the file is its mirror, rewritten (crash-safe, mode 0600) after every change
//! of a mirrored table, when the connection is given back. A crash between a commit and that write leaves the
//! file one change behind. Rows only sessions, downloads and `last_used` times differ in are not mirrored:
//! they change on every request and are worth nothing after a loss.

use crate::sync::Locked;
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use serde_json::{json, Map};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The file's name in the data root.
pub const FILE: &str = "records.json";
const VERSION: u64 = 1;

/// A mirrored table: the columns kept and which rows. Parents before children (`private_images` names a
/// registry by id).
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    filter: &'static str,
}

const TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: &["name", "password_hash", "admin", "created_at"],
        filter: "",
    },
    Table {
        name: "tokens",
        columns: &["id", "name", "token_sha256", "created_at"],
        filter: "",
    },
    Table {
        name: "registries",
        columns: &[
            "id",
            "name",
            "url",
            "host",
            "username",
            "password_sealed",
            "insecure",
            "created_at",
        ],
        filter: "",
    },
    Table {
        name: "private_images",
        columns: &["id", "name", "description", "registry_id", "is_private", "created_at"],
        filter: "",
    },
    Table {
        name: "lxc_templates",
        columns: &[
            "name",
            "dist",
            "release",
            "arch",
            "variant",
            "build",
            "source",
            "rootfs_digest",
            "rootfs_size",
            "meta_digest",
            "meta",
            "created_at",
        ],
        filter: "",
    },
    // an installed app's images must stay kept after a lost database, as its pins say
    Table {
        name: "pins",
        columns: &["owner", "target", "created_at"],
        filter: "",
    },
    // `blob_gc` says whether this database saw every blob arrive: a rebuilt one did not, whatever the old said.
    Table {
        name: "meta",
        columns: &["key", "value"],
        filter: "WHERE key <> 'blob_gc'",
    },
];

/// Whether a write to `table` may change the mirror.
pub fn is_mirrored(table: &str) -> bool {
    TABLES.iter().any(|t| t.name == table)
}

/// The mirror of one database: marked dirty by the connection's update hook, written by [`Mirror::flush`].
pub struct Mirror {
    path: PathBuf,
    dirty: Arc<AtomicBool>,
    /// Off in a new database beside an existing file until [`restore`] ran: its first writes must not
    /// replace the file that holds what it is about to get back.
    armed: AtomicBool,
    /// What the file holds, so that a write that changed nothing mirrored (a token's `last_used`) costs no I/O.
    written: Mutex<Option<Vec<u8>>>,
}

impl Mirror {
    pub fn new(path: PathBuf, dirty: Arc<AtomicBool>, armed: bool) -> Mirror {
        Mirror {
            written: Mutex::new(std::fs::read(&path).ok()),
            path,
            dirty,
            armed: AtomicBool::new(armed),
        }
    }

    pub fn arm(&self) {
        self.armed.store(true, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the file if a mirrored table changed since the last flush. Never fails the caller: the database
    /// has the change; a failed write is logged and tried again at the next change.
    pub fn flush(&self, conn: &Connection) {
        if !self.armed.load(Ordering::Acquire) || !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut written = self.written.locked();
        let r = dump(conn).and_then(|bytes| {
            if written.as_deref() == Some(&bytes[..]) {
                return Ok(());
            }
            // survives a crash whole: the old file or the new one, never a mix
            crate::fsutil::write_atomic(&self.path, &bytes, 0o600)
                .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
            *written = Some(bytes);
            Ok(())
        });
        if let Err(e) = r {
            self.dirty.store(true, Ordering::Release);
            log::warn!("{e}: the database has the change; the file is written again at the next one");
        }
    }
}

fn to_json(v: ValueRef<'_>) -> Result<serde_json::Value, String> {
    Ok(match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => json!(std::str::from_utf8(t).map_err(|e| e.to_string())?),
        ValueRef::Blob(_) => return Err("a blob column in a mirrored table".into()),
    })
}

fn from_json(v: &serde_json::Value) -> Option<Value> {
    Some(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        _ => return None,
    })
}

/// The mirrored rows as the file's bytes.
fn dump(conn: &Connection) -> Result<Vec<u8>, String> {
    let mut tables = Map::new();
    for t in TABLES {
        let sql = format!(
            "SELECT {} FROM {} {} ORDER BY rowid",
            t.columns.join(", "),
            t.name,
            t.filter
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| e.to_string())?;
        let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let mut values = Vec::with_capacity(t.columns.len());
            for i in 0..t.columns.len() {
                values.push(to_json(row.get_ref(i).map_err(|e| e.to_string())?)?);
            }
            out.push(serde_json::Value::Array(values));
        }
        tables.insert(t.name.into(), json!({ "columns": t.columns, "rows": out }));
    }
    // the last token id given: a rebuilt database never gives one again
    let token_seq: i64 = conn
        .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'tokens'", [], |r| {
            r.get(0)
        })
        .unwrap_or(0);
    let doc = json!({ "version": VERSION, "token_seq": token_seq, "tables": tables });
    serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())
}

/// What a restore put back, table by table, and what it left out.
#[derive(Debug, Default)]
pub struct Restored {
    pub rows: Vec<(&'static str, usize)>,
    /// Rows left out, with why (a template whose files are gone).
    pub skipped: Vec<String>,
}

impl Restored {
    pub fn total(&self) -> usize {
        self.rows.iter().map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .rows
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The rows of one table from its copy in the file: the columns this version knows, by name, whatever the
/// order the file has them in; a row that names a blob the store lacks is skipped (and said). The rows added.
fn restore_table(
    tx: &rusqlite::Transaction<'_>,
    t: &Table,
    table: &serde_json::Value,
    present: &dyn Fn(&str) -> bool,
    skipped: &mut Vec<String>,
) -> Result<usize, String> {
    let columns: Vec<&str> = table["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default();
    let keep: Vec<(usize, &str)> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| t.columns.contains(c))
        .map(|(i, c)| (i, *c))
        .collect();
    let names: Vec<&str> = keep.iter().map(|(_, c)| *c).collect();
    let sql = format!(
        "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
        t.name,
        names.join(", "),
        vec!["?"; names.len()].join(", ")
    );
    let mut stmt = tx.prepare(&sql).map_err(|e| e.to_string())?;
    let mut n = 0;
    for row in table["rows"].as_array().into_iter().flatten() {
        let Some(values) = keep
            .iter()
            .map(|(i, _)| row.get(*i).and_then(from_json))
            .collect::<Option<Vec<Value>>>()
        else {
            skipped.push(format!("{}: a malformed row", t.name));
            continue;
        };
        let missing = keep.iter().zip(&values).find_map(|((_, c), v)| match v {
            Value::Text(d) if c.ends_with("_digest") && !present(d) => Some(d.clone()),
            _ => None,
        });
        if let Some(d) = missing {
            skipped.push(format!("{} {:?}: blob {d} is not in the store", t.name, row.get(0)));
            continue;
        }
        n += stmt
            .execute(rusqlite::params_from_iter(values))
            .map_err(|e| format!("{}: {e}", t.name))?;
    }
    Ok(n)
}

/// Token ids are never given twice: the counter goes back at least to where the file had it.
fn keep_token_seq(tx: &rusqlite::Transaction<'_>, seq: i64) -> Result<(), String> {
    let known: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'tokens'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if seq > known {
        tx.execute("DELETE FROM sqlite_sequence WHERE name = 'tokens'", [])
            .and_then(|_| tx.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('tokens', ?1)", [seq]))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Put the rows of `file` back into a database that lacks them (a row whose key it has is left as it is). A
/// `*_digest` value naming a blob `present` denies leaves its row out: a template record without its files
/// would list what cannot be unpacked. `Ok(None)` when there is no file.
pub fn restore(conn: &mut Connection, file: &Path, present: &dyn Fn(&str) -> bool) -> Result<Option<Restored>, String> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", file.display())),
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    if doc["version"].as_u64() != Some(VERSION) {
        return Err(format!(
            "{}: version {} is not {VERSION}",
            file.display(),
            doc["version"]
        ));
    }
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let mut restored = Restored::default();
    for t in TABLES {
        let n = match doc["tables"].get(t.name) {
            Some(table) => restore_table(&tx, t, table, present, &mut restored.skipped)?,
            None => 0,
        };
        restored.rows.push((t.name, n));
    }
    if let Some(seq) = doc["token_seq"].as_i64().filter(|s| *s > 0) {
        keep_token_seq(&tx, seq)?;
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(Some(restored))
}

#[cfg(test)]
mod tests {
    use crate::digest::Digest;
    use crate::store::db::{Db, LxcTemplateRow, UserRow};

    fn template(name: &str, rootfs: &Digest) -> LxcTemplateRow {
        LxcTemplateRow {
            name: name.into(),
            dist: "debian".into(),
            release: "bookworm".into(),
            arch: "amd64".into(),
            variant: "default".into(),
            build: "1".into(),
            source: "test".into(),
            rootfs_digest: rootfs.clone(),
            rootfs_size: 1,
            meta_digest: None,
            meta: "{}".into(),
            created_at: 1,
        }
    }

    /// A new database gets back the rows the lost one had, a template whose rootfs is gone excepted; a revoked
    /// token stays revoked and its id is not given again.
    #[test]
    fn a_new_database_gets_the_records_back() {
        let dir = crate::testutil::tempdir();
        let path = dir.join("depot.db");
        let here = Digest::of(b"here");
        let gone = Digest::of(b"gone");
        let db = Db::open(&path).unwrap();
        db.auth()
            .put_user(&UserRow {
                name: "admin".into(),
                password_hash: "$argon2id$x".into(),
                admin: true,
            })
            .unwrap();
        let kept = db.auth().create_token("kept", "aa").unwrap();
        let revoked = db.auth().create_token("revoked", "bb").unwrap();
        assert!(db.auth().delete_token(revoked.id).unwrap());
        db.templates().put_lxc_template(&template("a/b/c/d", &here)).unwrap();
        db.templates().put_lxc_template(&template("e/f/g/h", &gone)).unwrap();
        db.settings().set_meta("bandwidth_limit", "1000").unwrap();
        db.settings().set_meta("blob_gc", "on").unwrap();
        drop(db);
        for f in ["depot.db", "depot.db-wal", "depot.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let db = Db::open(&path).unwrap();
        let r = db
            .restore_records(&|d| d == here.as_str())
            .unwrap()
            .expect("a records file");
        assert_eq!(r.to_string(), "1 users, 1 tokens, 1 lxc_templates, 1 meta", "{r:?}");
        assert_eq!(r.skipped.len(), 1, "{r:?}");
        assert_eq!(db.auth().user("admin").unwrap().unwrap().password_hash, "$argon2id$x");
        assert!(db.auth().use_token("aa").unwrap().is_some_and(|t| t.id == kept.id));
        assert!(db.auth().use_token("bb").unwrap().is_none());
        assert!(db.auth().create_token("next", "cc").unwrap().id > revoked.id);
        assert_eq!(db.settings().meta("bandwidth_limit").unwrap().as_deref(), Some("1000"));
        assert_eq!(
            db.settings().meta("blob_gc").unwrap(),
            None,
            "a rebuilt database never collects at once"
        );
        assert_eq!(db.templates().lxc_templates().unwrap().len(), 1);
    }

    /// A file that does not read back is put aside, not overwritten by the new database's first write.
    #[test]
    fn an_unreadable_file_is_kept_aside() {
        let dir = crate::testutil::tempdir();
        std::fs::write(dir.join(super::FILE), b"{ not json").unwrap();
        let db = Db::open(&dir.join("depot.db")).unwrap();
        let e = db.restore_records(&|_| true).unwrap_err().to_string();
        assert!(e.contains("not JSON") && e.contains("kept as"), "{e}");
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("records.json.unreadable-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(dir.join(&aside[0])).unwrap(), b"{ not json");
        db.settings().set_meta("x", "1").unwrap();
        assert!(std::fs::read_to_string(dir.join(super::FILE))
            .unwrap()
            .contains("\"x\""));
    }
}
