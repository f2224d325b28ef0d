//! What every download reports, whatever it fetches: bytes on disk per part (a layer, a file), the rate over
//! the last seconds, and why a user stopped it. Bounded: one number per part and a few seconds of samples.

use crate::sync::Locked;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

const RATE_SAMPLE: Duration = Duration::from_millis(250);
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Why a user stopped a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep the bytes and the download; it continues when resumed (also across restarts).
    Pause,
    /// End it as failed.
    Cancel,
}

/// A running download's byte count and rate, live.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Live {
    /// Per part bytes on disk, summed.
    pub done: u64,
    /// Bytes per second over the last few seconds.
    pub rate: u64,
}

/// Bytes on disk per part, and samples of their sum for the rate.
#[derive(Debug, Default)]
pub struct Meter {
    current: HashMap<String, u64>,
    /// (when, bytes on disk over all parts), one every [`RATE_SAMPLE`] at most, the last [`RATE_WINDOW`] kept.
    samples: VecDeque<(Instant, u64)>,
}

impl Meter {
    /// Part `id` has `current` bytes on disk now.
    pub fn set(&mut self, id: &str, current: u64) {
        let now = Instant::now();
        match self.current.get_mut(id) {
            Some(c) => *c = current,
            None => {
                self.current.insert(id.to_string(), current);
            }
        }
        if self
            .samples
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= RATE_SAMPLE)
        {
            let done = self.current.values().sum();
            self.samples.push_back((now, done));
            while self
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            {
                self.samples.pop_front();
            }
        }
    }

    /// Bytes on disk and the rate over the last seconds (0 when nothing moved lately).
    pub fn live(&self) -> Live {
        let done = self.current.values().sum();
        let rate = match (self.samples.front(), self.samples.back()) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 && Instant::now().duration_since(*t1) < RATE_WINDOW => {
                ((b1 - b0) as f64 / t1.duration_since(*t0).as_secs_f64()) as u64
            }
            _ => 0,
        };
        Live { done, rate }
    }
}

/// A download job running in this daemon, whatever it fetches.
pub trait Running: Send + Sync {
    fn live(&self) -> Live;
    /// Why a user stopped it, once they did.
    fn stopped(&self) -> Option<Stop>;
    /// Ask it to stop; the first reason given wins.
    fn stop(&self, why: Stop);
    /// Its outcome is known (it ended, or is about to leave the board).
    fn ended(&self) -> bool;
}

/// The download jobs running now, by `downloads` row: what status lists, pauses and cancels look up.
#[derive(Default)]
pub struct Board {
    jobs: std::sync::Mutex<HashMap<i64, std::sync::Arc<dyn Running>>>,
}

impl Board {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<i64, std::sync::Arc<dyn Running>>> {
        self.jobs.locked()
    }

    pub fn add(&self, download: i64, job: std::sync::Arc<dyn Running>) {
        self.jobs().insert(download, job);
    }

    /// Take `job` off the board, unless another job of the same download (resumed meanwhile) took its place.
    pub fn remove(&self, download: i64, job: &std::sync::Arc<dyn Running>) {
        let mut jobs = self.jobs();
        if jobs.get(&download).is_some_and(|j| std::sync::Arc::ptr_eq(j, job)) {
            jobs.remove(&download);
        }
    }

    pub fn get(&self, download: i64) -> Option<std::sync::Arc<dyn Running>> {
        self.jobs().get(&download).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_parts_and_measures_a_rate() {
        let mut m = Meter::default();
        m.set("a", 100);
        m.set("b", 50);
        assert_eq!(m.live().done, 150);
        std::thread::sleep(RATE_SAMPLE + Duration::from_millis(20));
        m.set("a", 1_000_000);
        let l = m.live();
        assert_eq!(l.done, 1_000_050);
        assert!(l.rate > 100_000, "{l:?}");
    }
}
