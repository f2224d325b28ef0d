//! Pins: which owner keeps which image reference or template. The image and LXC services refuse to delete a
//! pinned target unless forced; a prune passes it by.

use super::*;

/// One pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRow {
    pub owner: String,
    pub target: String,
    pub created_at: i64,
}

/// See the module; `Db::pins()` gives it.
pub struct Pins<'a> {
    pub(super) db: &'a Db,
}

impl Pins<'_> {
    /// Pin each of `targets` for `owner` (a pin already there stays as it was).
    pub fn add(&self, owner: &str, targets: &[String]) -> Result<()> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        for t in targets {
            tx.execute(
                "INSERT OR IGNORE INTO pins (owner, target, created_at) VALUES (?1, ?2, ?3)",
                params![owner, t, now()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every pin, or `owner`'s, by owner then target.
    pub fn list(&self, owner: Option<&str>) -> Result<Vec<PinRow>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT owner, target, created_at FROM pins WHERE ?1 IS NULL OR owner = ?1 ORDER BY owner, target",
        )?;
        let rows = st.query_map([owner], |r| {
            Ok(PinRow {
                owner: r.get(0)?,
                target: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The pins on any of `targets`.
    pub fn on(&self, targets: &[String]) -> Result<Vec<PinRow>> {
        let mut out = Vec::new();
        for t in targets {
            let conn = self.db.conn();
            let mut st = conn.prepare_cached("SELECT owner, target, created_at FROM pins WHERE target = ?1")?;
            let rows = st.query_map([t], |r| {
                Ok(PinRow {
                    owner: r.get(0)?,
                    target: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?;
            for r in rows {
                out.push(r?);
            }
        }
        Ok(out)
    }

    /// Remove `owner`'s pins on `targets`, or all of `owner`'s; how many went.
    pub fn remove(&self, owner: &str, targets: Option<&[String]>) -> Result<usize> {
        self.db.with_room(|conn| {
            let tx = conn.unchecked_transaction()?;
            let n = match targets {
                None => tx.execute("DELETE FROM pins WHERE owner = ?1", [owner])?,
                Some(ts) => {
                    let mut n = 0;
                    for t in ts {
                        n += tx.execute("DELETE FROM pins WHERE owner = ?1 AND target = ?2", [owner, t])?;
                    }
                    n
                }
            };
            tx.commit()?;
            Ok::<_, DbError>(n)
        })
    }

    /// Remove every owner's pins on `targets` (a forced delete); how many went. Succeeds on a full volume.
    pub fn release(&self, targets: &[String]) -> Result<usize> {
        self.db.with_room(|conn| {
            let tx = conn.unchecked_transaction()?;
            let mut n = 0;
            for t in targets {
                n += tx.execute("DELETE FROM pins WHERE target = ?1", [t])?;
            }
            tx.commit()?;
            Ok::<_, DbError>(n)
        })
    }
}
