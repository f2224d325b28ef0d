//! The schema: numbered migrations tracked in `PRAGMA user_version`. Append to [`MIGRATIONS`], never edit a
//! shipped one.

use super::{DbError, Result};
use rusqlite::{Connection, Transaction};

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
    // 9: pins: an owner (an installed app) keeps images and templates until it lets them go. A target is a
    // normalised image reference (by tag, or by digest: a pull that moves the tag does not move it) or
    // `lxc:DIST/RELEASE/ARCH/VARIANT`.
    r#"
    CREATE TABLE pins (
        owner TEXT NOT NULL,
        target TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (owner, target)
    );
    CREATE INDEX pins_by_target ON pins (target);
    "#,
    // 10: who vouched for an image a signature policy admitted, and the blobs of the signature manifests
    // (`sha256-<hex>.sig`) they came in, kept with the image so a bundle or a registry can pass them on.
    r#"
    CREATE TABLE image_signers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        identity TEXT NOT NULL,
        signed TEXT NOT NULL,
        PRIMARY KEY (image_id, scope, key, identity)
    );
    CREATE TABLE image_signature_blobs (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('manifest', 'blob')),
        signs TEXT NOT NULL,
        PRIMARY KEY (image_id, digest)
    );
    "#,
    // 11: a signature manifest belongs to the repository it was fetched for (its payload names that repository):
    // the same image under two names keeps each name's own, served and bundled under that name alone. Rows of
    // before have no repository: kept (their blobs stay referenced), served nowhere.
    r#"
    CREATE TABLE image_signature_blobs_new (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        repo TEXT NOT NULL,
        digest TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('manifest', 'blob')),
        signs TEXT NOT NULL,
        PRIMARY KEY (image_id, repo, digest)
    );
    INSERT INTO image_signature_blobs_new (image_id, repo, digest, role, signs)
        SELECT image_id, '', digest, role, signs FROM image_signature_blobs;
    DROP TABLE image_signature_blobs;
    ALTER TABLE image_signature_blobs_new RENAME TO image_signature_blobs;
    "#,
];

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
