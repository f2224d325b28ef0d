//! LXC templates' records (their files are blobs of the content store).

use super::*;

/// See the module; `Db::templates()` gives it.
pub struct Templates<'a> {
    pub(super) db: &'a Db,
}

impl Templates<'_> {
    /// Record a template, replacing an older build of the same name; returns the blobs the replaced row held
    /// (the caller collects those nothing else needs).
    pub fn put_lxc_template(&self, t: &LxcTemplateRow) -> Result<Vec<Digest>> {
        let mut conn = self.db.conn();
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
        self.db.with_room(|conn| {
            let tx = conn.unchecked_transaction()?;
            let old = lxc_template_blobs(&tx, name)?;
            let n = tx.execute("DELETE FROM lxc_templates WHERE name = ?1", [name])?;
            tx.commit()?;
            Ok::<_, DbError>((n > 0).then_some(old))
        })
    }

    fn lxc_templates_where(&self, cond: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<LxcTemplateRow>> {
        let conn = self.db.conn();
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
}
