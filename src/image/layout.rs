//! The OCI layout's `index.json`, rewritten from the database after every change to what is tagged, so that
//! other tools (skopeo, umoci, containerd's importer) read the data root as a layout. The database is the truth:
//! a write that fails is logged, and the next change or start writes it again.

use crate::store::{BlobStore, Db};
use crate::sync::Locked;
use std::sync::{Arc, Mutex};

pub struct Layout {
    db: Arc<Db>,
    store: BlobStore,
    /// Serialises rewrites: each reads the database after its own change, so the last one written reflects
    /// every change before it.
    lock: Mutex<()>,
}

impl Layout {
    pub fn new(db: Arc<Db>, store: BlobStore) -> Layout {
        Layout {
            db,
            store,
            lock: Mutex::new(()),
        }
    }

    /// Rewrite the OCI layout's `index.json` from the database; whether it was written. A failure is logged, not
    /// returned as an error: the database is the truth, and every start rewrites the file.
    pub fn sync(&self) -> bool {
        let _one = self.lock.locked();
        self.write()
    }

    /// A tidy stop's last act: `index.json` in step with the database and the WAL folded in, then every later
    /// write held off while the returned guards live (the process exits holding them). A change that lands
    /// while the layout is written makes it go round again, so the two agree when this returns.
    pub fn final_sync(&self) -> (std::sync::MutexGuard<'_, ()>, crate::store::db::Frozen<'_>) {
        let layout = self.lock.locked();
        loop {
            let before = self.db.changes();
            self.write();
            let frozen = self.db.freeze();
            if frozen.changes() == before {
                if let Err(e) = frozen.checkpoint() {
                    log::warn!("checkpointing the database: {e}");
                }
                return (layout, frozen);
            }
        }
    }

    /// Rewrite `index.json` from the database (the caller holds `lock`); whether it was written.
    fn write(&self) -> bool {
        let r = self
            .db
            .images()
            .layout_entries()
            .map_err(super::ImageError::from)
            .and_then(|rows| {
                let text = crate::store::layout::render(&rows, |d| self.store.size(d));
                crate::store::layout::write_index(self.store.root(), &text).map_err(|source| super::ImageError::Io {
                    context: "writing index.json".into(),
                    source,
                })
            });
        if let Err(e) = &r {
            log::error!("the OCI layout's index.json is out of step until the next change or start: {e}");
        }
        r.is_ok()
    }
}
