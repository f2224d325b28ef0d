//! A pull in progress as seen from outside: an append-only log of events plus the outcome. Any number of
//! clients can follow one job, join late (they replay the log) or leave; the job never waits for them.
//!
//! Memory is bounded: byte progress is logged at most once per 1% of a layer (and at its end), not per chunk.

use super::error::ImageError;
use crate::digest::Digest;
use crate::sync::Locked;
use event_listener::Event;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    PullingFsLayer,
    AlreadyExists,
    Waiting,
    Retrying(u64),
    VerifyingChecksum,
    DownloadComplete,
    PullComplete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// `Pulling from <repository path>`, `id` the tag or digest.
    PullingFrom {
        path: String,
        id: String,
    },
    Layer {
        id: String,
        status: LayerStatus,
    },
    Progress {
        id: String,
        current: u64,
        total: u64,
    },
    /// The digest the reference resolved to.
    Digest(Digest),
    /// An explicitly asked platform differs from the image's own.
    PlatformMismatch {
        reference: String,
        found: String,
        wanted: String,
    },
    /// The pull is complete.
    Finished {
        reference: String,
        up_to_date: bool,
    },
    /// The container engine took the image (its own report, line by line) or refused it.
    HandedOff(Vec<String>),
    HandoffFailed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    pub image_id: Digest,
    pub up_to_date: bool,
}

pub type PullResult = Result<PullOutcome, Arc<ImageError>>;

#[derive(Default)]
struct State {
    log: Vec<PullEvent>,
    outcome: Option<PullResult>,
    /// Per layer: when progress was last logged and at what byte count.
    logged: HashMap<String, (Instant, u64)>,
    meter: Meter,
    stop: Option<Stop>,
}

use crate::transfer::progress::Meter;
pub use crate::transfer::progress::{Live, Stop};

pub struct PullJob {
    pub key: String,
    pub download: i64,
    state: Mutex<State>,
    changed: Event,
    /// Set to stop every layer of the job: a failed sibling, or a user's [`Stop`].
    pub cancel: AtomicBool,
}

/// What a follower gets: new events and, once the log is drained, the outcome.
pub struct Batch {
    pub events: Vec<PullEvent>,
    pub outcome: Option<PullResult>,
}

impl PullJob {
    pub fn new(key: String, download: i64) -> PullJob {
        PullJob {
            key,
            download,
            state: Mutex::default(),
            changed: Event::new(),
            cancel: AtomicBool::new(false),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
    }

    pub fn emit(&self, e: PullEvent) {
        self.state().log.push(e);
        self.changed.notify(usize::MAX);
    }

    pub fn layer(&self, id: &str, status: LayerStatus) {
        self.emit(PullEvent::Layer {
            id: id.to_string(),
            status,
        });
    }

    /// Record byte progress; logged only when it moved ≥ 1% (and ≥ 100 ms passed), or reached the total.
    pub fn progress(&self, id: &str, current: u64, total: u64) {
        let mut st = self.state();
        let now = Instant::now();
        st.meter.set(id, current);
        let step = (total / 100).max(1);
        let log_it = match st.logged.get(id) {
            None => true,
            Some(&(_, last)) if current == total => last != total,
            Some(&(at, last)) => current >= last + step && now.duration_since(at) >= Duration::from_millis(100),
        };
        if log_it {
            st.logged.insert(id.to_string(), (now, current));
            st.log.push(PullEvent::Progress {
                id: id.to_string(),
                current,
                total,
            });
            drop(st);
            self.changed.notify(usize::MAX);
        }
    }

    /// Bytes on disk and the rate over the last seconds (0 when nothing moved lately).
    pub fn live(&self) -> Live {
        self.state().meter.live()
    }

    /// Ask the job to stop; the first reason given wins.
    pub fn stop(&self, why: Stop) {
        self.state().stop.get_or_insert(why);
        self.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn stopped(&self) -> Option<Stop> {
        self.state().stop
    }

    pub fn finish(&self, r: PullResult) {
        self.state().outcome = Some(r);
        self.changed.notify(usize::MAX);
    }

    pub fn outcome(&self) -> Option<PullResult> {
        self.state().outcome.clone()
    }

    /// Events after `cursor` (advanced past them); waits until there is something new.
    pub async fn next(&self, cursor: &mut usize) -> Batch {
        loop {
            let listener = self.changed.listen();
            {
                let st = self.state();
                if *cursor < st.log.len() {
                    let events = st.log[*cursor..].to_vec();
                    *cursor = st.log.len();
                    return Batch { events, outcome: None };
                }
                if let Some(o) = &st.outcome {
                    return Batch {
                        events: Vec::new(),
                        outcome: Some(o.clone()),
                    };
                }
            }
            listener.await;
        }
    }
}

impl crate::transfer::progress::Running for PullJob {
    fn live(&self) -> Live {
        PullJob::live(self)
    }
    fn stopped(&self) -> Option<Stop> {
        PullJob::stopped(self)
    }
    fn stop(&self, why: Stop) {
        PullJob::stop(self, why)
    }
    fn ended(&self) -> bool {
        self.outcome().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_rate_limited_but_final_is_kept() {
        let j = PullJob::new("k".into(), 1);
        let t0 = Instant::now();
        for i in 0..=10_000u64 {
            j.progress("a", i, 10_000);
        }
        // at most one event per 100 ms and the final one: a burst under emulation (qemu) takes longer
        let allowed = 3 + t0.elapsed().as_millis() as usize / 100;
        let st = j.state();
        let n = st.log.len();
        assert!(
            n <= allowed,
            "{n} progress events logged for a burst (allowed {allowed})"
        );
        assert_eq!(
            st.log.last(),
            Some(&PullEvent::Progress {
                id: "a".into(),
                current: 10_000,
                total: 10_000
            })
        );
    }

    #[test]
    fn followers_replay_and_see_outcome() {
        let j = PullJob::new("k".into(), 1);
        j.layer("x", LayerStatus::PullingFsLayer);
        j.emit(PullEvent::Digest(Digest::of(b"m")));
        j.finish(Ok(PullOutcome {
            image_id: Digest::of(b"c"),
            up_to_date: false,
        }));
        smol::block_on(async {
            let mut cur = 0;
            let b = j.next(&mut cur).await;
            assert_eq!(b.events.len(), 2);
            assert!(b.outcome.is_none());
            let b = j.next(&mut cur).await;
            assert!(b.events.is_empty());
            assert!(b.outcome.unwrap().is_ok());
        });
    }
}
