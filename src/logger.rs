//! A tiny `log` backend: one line per record with a UTC timestamp, on stderr or appended to a file (rotated once
//! at start when over 1 MiB, so a NAS's small log volume never fills). env_logger would cost ~0.7 MB.

use crate::sync::Locked;
use log::{Level, LevelFilter, Metadata, Record};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

struct Logger {
    level: LevelFilter,
    file: Option<Mutex<std::fs::File>>,
}

impl log::Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level && (m.target().starts_with("depot") || m.level() <= Level::Warn)
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now = time::OffsetDateTime::now_utc();
        let ts = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = format!("{ts} {:<5} {}\n", r.level(), r.args());
        match &self.file {
            Some(f) => {
                let _ = f.locked().write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

const ROTATE_AT: u64 = 1024 * 1024;

/// Install the logger; `level` is `error|warn|info|debug|trace`. With `file`, log there (append); a file that
/// cannot be opened falls back to stderr with a warning.
pub fn init(level: &str, file: Option<&Path>) {
    let level = level.parse().unwrap_or(LevelFilter::Info);
    let mut warn = None;
    let file = file.and_then(|p| {
        if std::fs::metadata(p).is_ok_and(|m| m.len() > ROTATE_AT) {
            let _ = std::fs::rename(p, p.with_extension("log.1"));
        }
        match std::fs::OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Some(Mutex::new(f)),
            Err(e) => {
                warn = Some(format!("cannot open log file {}: {e}; logging to stderr", p.display()));
                None
            }
        }
    });
    if log::set_logger(Box::leak(Box::new(Logger { level, file }))).is_ok() {
        log::set_max_level(level);
    }
    if let Some(w) = warn {
        log::warn!("{w}");
    }
}
