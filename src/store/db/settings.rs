//! Settings and markers of the `meta` table: a key and its value.

use super::*;

/// See the module; `Db::settings()` gives it.
pub struct Settings<'a> {
    pub(super) db: &'a Db,
}

impl Settings<'_> {
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.db.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}
