//! One jobs layer for downloads of every kind (images, LXC templates, and whatever comes next).
//!
//! Two parts:
//! - [`JobMap`]: a kind's running jobs by key (what two downloads of the same thing share). A start joins the
//!   job running for its key, or makes one; a job that has its outcome is never joined (it only waits for its
//!   thread to leave the map, and its answer, a refusal of other credentials say, is not the new caller's).
//! - [`Downloads`]: what is done to a download by id whatever its kind: resume the unfinished at start, pause,
//!   resume, cancel, look up. It owns the lifecycle writes of the `downloads` table beyond a job's own run; the
//!   kinds plug in through [`Kind`], so no caller has to decide which service a download id belongs to.

mod status;

pub use status::{DownloadSettings, DownloadStatus};

use crate::store::db::{DownloadKind, DownloadRow};
use crate::store::{Db, DbError, DownloadState};
use crate::sync::Locked;
use crate::transfer::progress::{Board, Running, Stop};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No download with this id, or not one in a state the operation applies to.
    #[error("no {what} download {id}")]
    NoDownload { id: i64, what: &'static str },
    #[error(transparent)]
    Db(#[from] DbError),
    /// A kind could not start its job again; its own error, said.
    #[error("{0}")]
    Restart(String),
}

impl JobError {
    pub fn class(&self) -> crate::error::ErrorClass {
        match self {
            JobError::NoDownload { .. } => crate::error::ErrorClass::NotFound,
            JobError::Db(_) | JobError::Restart(_) => crate::error::ErrorClass::Internal,
        }
    }
}

/// How long a resume waits for a pause still winding down before it starts the job again.
const WIND_DOWN: Duration = Duration::from_secs(30);

/// A kind of download: how its job is started again from the record of an unfinished one.
pub trait Kind: Send + Sync {
    fn kind(&self) -> DownloadKind;

    /// Start the job of unfinished download `row` again from its bytes on disk (joining the one running for
    /// the same thing, if any). `Ok(false)` when its record cannot be run (unreadable, credentials that no
    /// longer open): the download is then marked failed, with why.
    fn restart(self: Arc<Self>, row: DownloadRow) -> Result<bool, JobError>;
}

/// A job being started: its download id, the job, and the work its thread runs.
pub struct Start<J> {
    pub id: i64,
    pub job: Arc<J>,
    /// The thread's name (`pull-7`, `lxc-3`): what a stack dump shows.
    pub thread: String,
    pub run: Box<dyn FnOnce() + Send>,
}

/// One kind's running jobs by key, each on a thread of its own and on the board while it runs.
pub struct JobMap<J> {
    map: Mutex<HashMap<String, Arc<J>>>,
    board: Arc<Board>,
}

impl<J: Running + 'static> JobMap<J> {
    pub fn new(board: Arc<Board>) -> JobMap<J> {
        JobMap {
            map: Mutex::default(),
            board,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<J>>> {
        self.map.locked()
    }

    /// The job running under `key` without an outcome yet.
    pub fn running(&self, key: &str) -> Option<Arc<J>> {
        self.map().get(key).filter(|j| !j.ended()).cloned()
    }

    /// Join the job running under `key`, or start the one `make` returns. The map is held across `make` (which
    /// records the download), so two starts of one thing make one job and one record.
    pub fn join_or_start<E>(
        self: &Arc<Self>,
        key: &str,
        make: impl FnOnce() -> Result<Start<J>, E>,
    ) -> Result<Arc<J>, E> {
        let mut map = self.map();
        if let Some(j) = map.get(key).filter(|j| !j.ended()) {
            return Ok(j.clone());
        }
        let start = make()?;
        map.insert(key.to_string(), start.job.clone());
        drop(map);
        let job = start.job.clone();
        self.spawn(key.to_string(), start);
        Ok(job)
    }

    fn spawn(self: &Arc<Self>, key: String, s: Start<J>) {
        let on_board: Arc<dyn Running> = s.job.clone();
        self.board.add(s.id, on_board.clone());
        let (jobs, k, b) = (self.clone(), key.clone(), on_board.clone());
        let (id, job, run) = (s.id, s.job, s.run);
        let spawned = std::thread::Builder::new().name(s.thread).spawn(move || {
            run();
            let mut map = jobs.map();
            // a job started again meanwhile has the same key: leave it
            if map.get(&k).is_some_and(|j| Arc::ptr_eq(j, &job)) {
                map.remove(&k);
            }
            drop(map);
            jobs.board.remove(id, &b);
        });
        if let Err(e) = spawned {
            // the job never runs: it leaves the map and the board, and the record stays unfinished for the
            // next start to resume
            log::error!("cannot start the thread of download {id}: {e}");
            self.map().remove(&key);
            self.board.remove(id, &on_board);
        }
    }
}

/// Every download by id, whatever its kind.
pub struct Downloads {
    db: Arc<Db>,
    board: Arc<Board>,
    /// Where a download's bytes are, for its progress on disk.
    store: crate::store::BlobStore,
    /// The bandwidth limit and download window every download shares.
    throttle: Arc<crate::transfer::throttle::Throttle>,
    kinds: Mutex<Vec<Arc<dyn Kind>>>,
}

impl Downloads {
    pub fn new(db: Arc<Db>, transfers: &crate::transfer::Transfers) -> Downloads {
        Downloads {
            db,
            board: transfers.running.clone(),
            store: transfers.store.clone(),
            throttle: transfers.throttle.clone(),
            kinds: Mutex::default(),
        }
    }

    /// Plug a kind in: its unfinished downloads are resumed by [`Downloads::resume_unfinished`] and
    /// [`Downloads::resume`].
    pub fn add(&self, kind: Arc<dyn Kind>) {
        self.kinds.locked().push(kind);
    }

    fn kind_of(&self, k: DownloadKind) -> Option<Arc<dyn Kind>> {
        let kinds = self.kinds.locked();
        kinds.iter().find(|x| x.kind() == k).cloned()
    }

    /// The download's record, of any kind.
    pub fn get(&self, id: i64) -> Result<Option<DownloadRow>, JobError> {
        Ok(self.db.downloads().download(id)?)
    }

    /// The running job of download `id`, of any kind.
    pub fn job(&self, id: i64) -> Option<Arc<dyn Running>> {
        self.board.get(id)
    }

    /// Start again every download that was running when the daemon stopped, except those a user paused: they
    /// continue from the bytes on disk. The number started, by kind.
    pub fn resume_unfinished(&self) -> Result<Vec<(DownloadKind, usize)>, JobError> {
        let kinds: Vec<_> = self.kinds.locked().clone();
        let mut out = Vec::new();
        for k in kinds {
            let mut n = 0;
            for row in self.db.downloads().unfinished_downloads(k.kind())? {
                if !row.paused && k.clone().restart(row)? {
                    n += 1;
                }
            }
            out.push((k.kind(), n));
        }
        Ok(out)
    }

    /// Hold an unfinished download: its job stops, its bytes stay, and it is not resumed (not even by a
    /// restart) until [`Downloads::resume`].
    pub fn pause(&self, id: i64) -> Result<(), JobError> {
        if !self.db.downloads().set_download_paused(id, true)? {
            return Err(JobError::NoDownload { id, what: "unfinished" });
        }
        if let Some(j) = self.board.get(id) {
            j.stop(Stop::Pause);
        }
        Ok(())
    }

    /// Continue a paused download (or one whose job is not running) from its bytes on disk.
    pub fn resume(&self, id: i64) -> Result<(), JobError> {
        if let Some(j) = self.board.get(id) {
            if j.stopped().is_none() {
                return Ok(());
            }
            // a pause still winding down: wait for its end, so that the resumed job does not join the stopping one
            let deadline = Instant::now() + WIND_DOWN;
            while !j.ended() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let row = self.unfinished(id)?;
        let kind = self
            .kind_of(row.kind)
            .ok_or(JobError::NoDownload { id, what: "resumable" })?;
        self.db.downloads().set_download_paused(id, false)?;
        kind.restart(row)?;
        Ok(())
    }

    fn unfinished(&self, id: i64) -> Result<DownloadRow, JobError> {
        self.db
            .downloads()
            .download(id)?
            .filter(|r| !r.state.is_terminal())
            .ok_or(JobError::NoDownload { id, what: "unfinished" })
    }

    /// End an unfinished download as failed ("cancelled"); its bytes go with the next collection.
    pub fn cancel(&self, id: i64) -> Result<(), JobError> {
        let row = self.unfinished(id)?;
        match self.board.get(id) {
            Some(j) => j.stop(Stop::Cancel),
            None => {
                let msg = format!("download of {} cancelled", row.reference);
                self.db
                    .downloads()
                    .set_download_state(id, DownloadState::Failed, Some(&msg))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::progress::Live;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Default)]
    struct Fake {
        ended: AtomicBool,
    }

    impl Running for Fake {
        fn live(&self) -> Live {
            Live::default()
        }
        fn stopped(&self) -> Option<Stop> {
            None
        }
        fn stop(&self, _: Stop) {}
        fn ended(&self) -> bool {
            self.ended.load(Ordering::SeqCst)
        }
    }

    /// The race of a join with a job that has its outcome but has not left the map yet: a new start makes a
    /// job of its own; one without an outcome is joined; each thread's end removes its own job only.
    #[test]
    fn a_job_with_its_outcome_is_never_joined() {
        let board = Arc::new(Board::default());
        let jobs = Arc::new(JobMap::<Fake>::new(board.clone()));
        // each job's thread runs until its own gate opens
        let gates: Arc<Mutex<HashMap<i64, std::sync::mpsc::Receiver<()>>>> = Arc::default();
        let mut releases = HashMap::new();
        for id in [1, 2, 3] {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            gates.lock().unwrap().insert(id, rx);
            releases.insert(id, tx);
        }
        let start = |id: i64| {
            let gates = gates.clone();
            move || -> Result<Start<Fake>, ()> {
                let rx = gates.lock().unwrap().remove(&id).unwrap();
                Ok(Start {
                    id,
                    job: Arc::new(Fake::default()),
                    thread: format!("test-{id}"),
                    run: Box::new(move || {
                        let _ = rx.recv();
                    }),
                })
            }
        };
        let first = jobs.join_or_start("k", start(1)).unwrap();
        let joined = jobs.join_or_start("k", start(2)).unwrap();
        assert!(Arc::ptr_eq(&first, &joined), "a running job is joined");
        assert!(board.get(1).is_some() && board.get(2).is_none());
        // the first has its outcome; its thread has not left the map yet
        first.ended.store(true, Ordering::SeqCst);
        assert!(jobs.running("k").is_none());
        let second = jobs.join_or_start("k", start(3)).unwrap();
        assert!(!Arc::ptr_eq(&first, &second), "an ended job was joined");
        // the first thread's end leaves the second in the map and on the board
        releases[&1].send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while board.get(1).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(board.get(1).is_none(), "the ended job is still on the board");
        assert!(jobs.running("k").is_some_and(|j| Arc::ptr_eq(&j, &second)));
        assert!(board.get(3).is_some());
        releases[&3].send(()).unwrap();
    }
}
