//! What downloads of every kind show and share: their progress as the station lists it (the recorded bytes,
//! what is on disk, and a running job's fresher count) and the bandwidth limit and download window.

use super::{Downloads, JobError};
use crate::store::db::DownloadRow;

/// `meta` keys of the download settings changed through the API.
const META_BANDWIDTH_LIMIT: &str = "bandwidth_limit";
const META_DOWNLOAD_WINDOW: &str = "download_window";

/// What every download shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadSettings {
    pub bandwidth_limit: u64,
    pub window: Option<crate::transfer::throttle::Window>,
    /// Outside the window now: downloads wait.
    pub closed: bool,
    /// The NAS's local time, minutes since midnight (what the window is read against).
    pub local_minute: u16,
}

/// One download as `downloadstatus` shows it.
#[derive(Debug, Clone)]
pub struct DownloadStatus {
    pub row: DownloadRow,
    /// Bytes of every blob it fetches, once its manifest is resolved.
    pub total: Option<u64>,
    pub done: u64,
    /// Bytes per second lately (0 when not running).
    pub rate: u64,
    /// A job of this daemon is working on it now.
    pub running: bool,
}

impl Downloads {
    /// The bandwidth limit (bytes/s, 0 none) and the download window all downloads share.
    pub fn settings(&self) -> DownloadSettings {
        DownloadSettings {
            bandwidth_limit: self.throttle.rate(),
            window: self.throttle.window(),
            closed: self.throttle.closed(),
            local_minute: self.throttle.local_minute(),
        }
    }

    /// Change the limit and the window, at once for running downloads, and keep them across restarts.
    pub fn set_settings(
        &self,
        bandwidth_limit: Option<u64>,
        window: Option<Option<crate::transfer::throttle::Window>>,
    ) -> Result<DownloadSettings, JobError> {
        if let Some(rate) = bandwidth_limit {
            self.db.settings().set_meta(META_BANDWIDTH_LIMIT, &rate.to_string())?;
            self.throttle.set_rate(rate);
        }
        if let Some(w) = window {
            self.db
                .settings()
                .set_meta(META_DOWNLOAD_WINDOW, &w.map(|w| w.to_string()).unwrap_or_default())?;
            self.throttle.set_window(w);
        }
        Ok(self.settings())
    }

    /// Apply the settings an API call stored (they win over the config's).
    pub fn restore_settings(&self) -> Result<(), JobError> {
        if let Some(r) = self
            .db
            .settings()
            .meta(META_BANDWIDTH_LIMIT)?
            .and_then(|v| v.parse().ok())
        {
            self.throttle.set_rate(r);
        }
        if let Some(w) = self.db.settings().meta(META_DOWNLOAD_WINDOW)? {
            self.throttle.set_window(w.parse().ok());
        }
        Ok(())
    }

    /// Wakes at every change to a download's recorded state or progress; what follows [`Self::status`]
    /// waits on it while nothing runs.
    pub fn changed(&self) -> &crate::store::db::Changes {
        self.db.downloads_changed()
    }

    /// The newest downloads with their progress: what `downloadstatus` shows.
    pub fn status(&self, limit: u32) -> Result<Vec<DownloadStatus>, JobError> {
        let rows = self.db.downloads().recent_downloads(limit)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let blobs = self.db.downloads().download_progress(row.id)?;
            let total: u64 = blobs.iter().map(|b| b.1).sum();
            let recorded: u64 = match row.state {
                crate::store::DownloadState::Committed => total,
                crate::store::DownloadState::Failed => blobs.iter().map(|b| b.2.min(b.1)).sum(),
                // what is on disk, whatever was last recorded: a blob in the store is done (a config is stored
                // whole), a partial one has its ingest (a paused download records nothing when it stops)
                _ => blobs
                    .iter()
                    .map(|(d, size, done)| {
                        // the ingest before the store: a commit renames one into the other, so a blob looked
                        // for in that order is seen in one of them (the other order could see neither, and the
                        // progress would step back to what was last recorded)
                        let ingest = self.store.ingest_len(d);
                        if self.store.contains(d) {
                            *size
                        } else {
                            (*done).max(ingest).min(*size)
                        }
                    })
                    .sum(),
            };
            let live = self.job(row.id).map(|j| (j.live(), j.stopped()));
            // the job's count is fresher, but only covers layers it touched: a layer recorded as done that this
            // job found in the store never shows in it
            let done = live
                .map_or(recorded, |(l, _)| recorded.max(l.done))
                .min(total.max(recorded));
            out.push(DownloadStatus {
                total: (!blobs.is_empty()).then_some(total),
                done,
                rate: live.map_or(0, |(l, _)| l.rate),
                running: live.is_some_and(|(_, stop)| stop.is_none()),
                row,
            });
        }
        Ok(out)
    }

    /// Forget downloads that ended before `before` (unix seconds).
    pub fn forget(&self, before: i64) -> Result<usize, JobError> {
        Ok(self.db.downloads().prune_downloads(before)?)
    }
}
