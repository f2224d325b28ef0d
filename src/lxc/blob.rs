//! A template's blob read and verified at once by two threads: the decoder's, which reads it, and the caller's,
//! which judges it once the decoder is done or failed.

use super::LxcError;
use crate::digest::{Corrupt, Digest, Verified};
use crate::store::BlobStore;
use crate::sync::Locked;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// A blob read through [`Verified`] by the decoder's thread, judged by the thread that asked for it: the
/// verdict is kept once reached, and judging reads what the decoder left.
#[derive(Clone)]
pub(super) struct SharedBlob(Arc<Mutex<(Verified<std::fs::File>, Option<Corrupt>)>>);

impl SharedBlob {
    pub(super) fn open(store: &BlobStore, d: &Digest) -> Result<SharedBlob, LxcError> {
        let f = store.open_blob(d)?;
        Ok(SharedBlob(Arc::new(Mutex::new((Verified::new(f, d.clone()), None)))))
    }

    /// The damage found, reading the rest of the blob to judge it whole.
    pub(super) fn verdict(&self) -> Option<Corrupt> {
        let mut g = self.0.locked();
        if g.1.is_none() {
            if let Err(e) = g.0.finish() {
                g.1 = Corrupt::of(&e).cloned();
            }
        }
        g.1.clone()
    }
}

impl Read for SharedBlob {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut g = self.0.locked();
        let r = g.0.read(buf);
        if let Err(e) = &r {
            if let Some(c) = Corrupt::of(e) {
                g.1 = Some(c.clone());
            }
        }
        r
    }
}
