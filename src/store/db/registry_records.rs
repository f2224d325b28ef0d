//! Private registries (credentials sealed) and the station's private image records.

use super::*;

/// See the module; `Db::registry_records()` gives it.
pub struct RegistryRecords<'a> {
    pub(super) db: &'a Db,
}

impl RegistryRecords<'_> {
    fn registries_where(&self, cond: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<RegistryRow>> {
        let conn = self.db.conn();
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
        let conn = self.db.conn();
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
        let conn = self.db.conn();
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
        let conn = self.db.conn();
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
        let conn = self.db.conn();
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
        Ok(self
            .db
            .conn()
            .execute("DELETE FROM private_images WHERE id = ?1", [id])?
            > 0)
    }
}
