//! Who may use the TCP listener: users (password hashes), API tokens (their sha256) and sessions (the sha256 of their ids).

use super::*;

/// See the module; `Db::auth()` gives it.
pub struct Auth<'a> {
    pub(super) db: &'a Db,
}

impl Auth<'_> {
    pub fn user_count(&self) -> Result<i64> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(self
            .db
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
        self.db.conn().execute(
            "INSERT INTO users (name, password_hash, admin, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, admin = excluded.admin",
            params![u.name, u.password_hash, u.admin, now()],
        )?;
        Ok(())
    }

    pub fn create_token(&self, name: &str, token_sha256: &str) -> Result<TokenRow> {
        let conn = self.db.conn();
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
        let conn = self.db.conn();
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
        let conn = self.db.conn();
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
        Ok(self.db.conn().execute("DELETE FROM tokens WHERE id = ?1", [id])? > 0)
    }

    pub fn put_session(&self, id_sha256: &str, s: &SessionRow) -> Result<()> {
        let conn = self.db.conn();
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
            .db
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
        self.db
            .conn()
            .execute("DELETE FROM sessions WHERE id_sha256 = ?1", [id_sha256])?;
        Ok(())
    }
}
