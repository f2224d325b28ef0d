//! The household's share of the link: one bandwidth limit across every download, and an optional time window
//! outside which downloads wait (a home link shared with the family).
//!
//! The limit is a virtual clock (GCRA): each byte taken moves the time at which the link is free again by
//! `1/rate` seconds, and a taker sleeps until that time, less a small burst allowance. Takers on any number of
//! threads share the one clock, so the sum of their rates is the limit.

use crate::sync::Locked;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes that may pass at once, unthrottled, after a pause (a quarter of a second at the limit, at least 64 KiB).
fn burst(rate: u64) -> Duration {
    let bytes = (rate / 4).max(64 * 1024);
    Duration::from_secs_f64(bytes as f64 / rate as f64)
}

/// Minutes of the day, local time, during which downloads run: `start..end`, across midnight when `end < start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: u16,
    pub end: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("download window {0:?}: expected HH:MM-HH:MM (local time), e.g. 01:00-07:00")]
pub struct WindowError(String);

impl std::str::FromStr for Window {
    type Err = WindowError;
    fn from_str(s: &str) -> Result<Window, WindowError> {
        let err = || WindowError(s.to_string());
        let minutes = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && !t.trim().starts_with('+')).then_some(h * 60 + m)
        };
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        let w = Window {
            start: minutes(a).ok_or_else(err)?,
            end: minutes(b).ok_or_else(err)?,
        };
        if w.start == w.end {
            return Err(err());
        }
        Ok(w)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl Window {
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

pub struct Throttle {
    /// Bytes per second; 0 is no limit.
    rate: AtomicU64,
    window: Mutex<Option<Window>>,
    /// When the link is free again, at the current rate.
    free_at: Mutex<Instant>,
    /// The local time's offset from UTC in seconds, found at start (it cannot be asked for safely once threads
    /// run).
    utc_offset: i32,
}

impl Default for Throttle {
    /// No limit, no window.
    fn default() -> Throttle {
        Throttle::new(0, None, 0)
    }
}

impl Throttle {
    pub fn new(rate: u64, window: Option<Window>, utc_offset: i32) -> Throttle {
        Throttle {
            rate: AtomicU64::new(rate),
            window: Mutex::new(window),
            free_at: Mutex::new(Instant::now()),
            utc_offset,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
        *self.free_at.locked() = Instant::now();
    }

    pub fn window(&self) -> Option<Window> {
        *self.window.locked()
    }

    pub fn set_window(&self, w: Option<Window>) {
        *self.window.locked() = w;
    }

    /// Minutes since local midnight now.
    pub fn local_minute(&self) -> u16 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        ((now + self.utc_offset as i64).rem_euclid(86_400) / 60) as u16
    }

    /// Outside the download window now (downloads wait).
    pub fn closed(&self) -> bool {
        self.window().is_some_and(|w| !w.contains(self.local_minute()))
    }

    /// Wait while the window is closed; false if cancelled meanwhile.
    pub fn wait_open(&self, cancel: &AtomicBool) -> bool {
        while self.closed() {
            if cancel.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        !cancel.load(Ordering::Relaxed)
    }

    /// Account for `n` bytes just read, sleeping as long as the limit asks (and while the window is closed);
    /// false if cancelled meanwhile.
    pub fn take(&self, n: usize, cancel: &AtomicBool) -> bool {
        if !self.wait_open(cancel) {
            return false;
        }
        let rate = self.rate();
        if rate == 0 {
            return true;
        }
        let wake = {
            let mut free_at = self.free_at.locked();
            let now = Instant::now();
            // idle time does not bank more than the burst
            let start = (*free_at).max(now.checked_sub(burst(rate)).unwrap_or(now));
            *free_at = start + Duration::from_secs_f64(n as f64 / rate as f64);
            free_at.checked_sub(burst(rate)).unwrap_or(*free_at)
        };
        let mut now = Instant::now();
        while now < wake {
            if cancel.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep((wake - now).min(Duration::from_millis(250)));
            now = Instant::now();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_span_midnight() {
        let w: Window = "01:00-07:30".parse().unwrap();
        assert_eq!((w.start, w.end), (60, 450));
        assert!(w.contains(60) && w.contains(449) && !w.contains(450) && !w.contains(0));
        let night: Window = "22:00-06:00".parse().unwrap();
        assert!(night.contains(23 * 60) && night.contains(0) && night.contains(359) && !night.contains(360));
        assert_eq!(night.to_string(), "22:00-06:00");
        for bad in [
            "",
            "1-2",
            "24:00-01:00",
            "01:60-02:00",
            "01:00",
            "01:00-01:00",
            "a:b-c:d",
            "+1:00-02:00",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_limit_holds_across_threads() {
        let t = std::sync::Arc::new(Throttle::new(8 << 20, None, 0));
        let start = Instant::now();
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    let cancel = AtomicBool::new(false);
                    for _ in 0..32 {
                        assert!(t.take(128 * 1024, &cancel));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        // 12 MiB at 8 MiB/s, less the burst of 2 MiB: at least 1.2 s
        let secs = start.elapsed().as_secs_f64();
        assert!(secs >= 1.2, "{secs}");
    }

    #[test]
    fn a_closed_window_holds_until_cancelled() {
        let now_min = {
            let t = Throttle::new(0, None, 0);
            t.local_minute()
        };
        let closed = Window {
            start: (now_min + 60) % 1440,
            end: (now_min + 120) % 1440,
        };
        let t = Throttle::new(0, Some(closed), 0);
        assert!(t.closed());
        let cancel = AtomicBool::new(true);
        assert!(!t.take(1, &cancel));
        t.set_window(None);
        assert!(t.take(1, &AtomicBool::new(false)));
    }
}
