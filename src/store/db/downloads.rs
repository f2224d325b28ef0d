//! Downloads of every kind: their lifecycle, their blobs (planned, live, owned ingests) and their history.

use super::*;

/// See the module; `Db::downloads()` gives it.
pub struct Downloads<'a> {
    pub(super) db: &'a Db,
}

impl Downloads<'_> {
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
        let conn = self.db.conn();
        let t = now();
        conn.execute(
            "INSERT INTO downloads (reference, platform, state, auth, created_at, updated_at, kind) VALUES (?1, ?2, 'queued', ?3, ?4, ?4, ?5)",
            params![reference, platform, auth, t, kind.as_str()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    pub fn download_auth(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT auth FROM downloads WHERE id = ?1", [id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// Replace a running download's (sealed) credentials.
    pub fn set_download_auth(&self, id: i64, auth: &str) -> Result<()> {
        self.db.conn().execute(
            "UPDATE downloads SET auth = ?2 WHERE id = ?1 AND state NOT IN ('committed', 'failed')",
            params![id, auth],
        )?;
        Ok(())
    }

    /// Move a download along its lifecycle. Succeeds on a full volume (see [`Db::with_room`]): a client is never
    /// told an end the database does not record.
    pub fn set_download_state(&self, id: i64, state: DownloadState, error: Option<&str>) -> Result<()> {
        self.db.with_room(|c| set_state(c, id, state, error))
    }

    /// Record what the reference resolved to, so a resumed download fetches exactly the same image.
    pub fn set_download_resolved(&self, id: i64, resolved: &Digest, manifest: &Digest) -> Result<()> {
        self.db.conn().execute(
            "UPDATE downloads SET resolved_digest = ?2, manifest_digest = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, resolved.as_str(), manifest.as_str(), now()],
        )?;
        Ok(())
    }

    /// What an LXC download fetches (JSON), recorded at its creation.
    pub fn set_download_spec(&self, id: i64, spec: &str) -> Result<()> {
        self.db
            .conn()
            .execute("UPDATE downloads SET spec = ?2 WHERE id = ?1", params![id, spec])?;
        Ok(())
    }

    pub fn download_spec(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT spec FROM downloads WHERE id = ?1", [id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// A blob a download fetched under a key (its digest unknown until the end) is known by its digest now.
    pub fn rekey_download_blob(&self, id: i64, key: &Digest, digest: &Digest) -> Result<()> {
        self.db.conn().execute(
            "UPDATE OR REPLACE download_blobs SET digest = ?3 WHERE download_id = ?1 AND digest = ?2",
            params![id, key.as_str(), digest.as_str()],
        )?;
        Ok(())
    }

    pub fn set_download_blob(&self, id: i64, digest: &Digest, size: u64, done: u64) -> Result<()> {
        self.db.conn().execute(
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
        Ok(self.db.with_room(|c| {
            c.execute(
                "UPDATE downloads SET paused = ?2, updated_at = ?3 WHERE id = ?1 AND state NOT IN ('committed', 'failed')",
                params![id, paused, now()],
            )
        })? > 0)
    }

    /// Record every blob a download will fetch with its size, before the first byte, so that its total is known
    /// from the start; blobs already recorded keep their progress.
    pub fn plan_download_blobs(&self, id: i64, blobs: &[(Digest, u64)]) -> Result<()> {
        let mut conn = self.db.conn();
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
        let conn = self.db.conn();
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

    /// The unfinished download of an image of repository `repo` (`docker.io/library/alpine`) that owns blob `d`
    /// (a manifest, the config or a layer), and the blob's size: what the LAN registry serves while the pull runs.
    pub fn in_flight_blob(&self, repo: &str, d: &Digest) -> Result<Option<(i64, u64)>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT d.id, b.size FROM download_blobs b JOIN downloads d ON d.id = b.download_id
             WHERE b.digest = ?1 AND d.kind = 'image' AND d.state NOT IN ('committed', 'failed')
               AND substr(d.reference, 1, length(?2) + 1) IN (?2 || ':', ?2 || '@')
             ORDER BY d.id DESC LIMIT 1",
        )?;
        Ok(st
            .query_row(params![d.as_str(), repo], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .optional()?)
    }

    /// Blobs that unfinished downloads own: GC must not take them or their ingests.
    pub fn live_download_blobs(&self) -> Result<HashSet<Digest>> {
        let conn = self.db.conn();
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
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT b.digest FROM download_blobs b JOIN downloads d ON d.id = b.download_id
             WHERE d.state NOT IN ('committed', 'failed') OR (d.state = 'failed' AND d.updated_at >= ?1)",
        )?;
        let rows = st.query_map([failed_since], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest_col(r?, "download blob")).collect()
    }

    /// Forget ended downloads last updated before `before` (unix seconds); their blob rows go with them.
    pub fn prune_downloads(&self, before: i64) -> Result<usize> {
        Ok(self.db.conn().execute(
            "DELETE FROM downloads WHERE state IN ('committed', 'failed') AND updated_at < ?1",
            [before],
        )?)
    }

    /// Bytes recorded as done per blob of a download (coarse: written at intervals, not per chunk).
    pub fn download_progress(&self, id: i64) -> Result<Vec<(Digest, u64, u64)>> {
        let conn = self.db.conn();
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
