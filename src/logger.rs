//! A tiny `log` backend: one line per record on stderr, with a UTC timestamp. (env_logger costs ~0.7 MB.)

use log::{Level, LevelFilter, Metadata, Record};
use std::io::Write;

struct Logger {
    level: LevelFilter,
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
        let _ = writeln!(std::io::stderr().lock(), "{ts} {:<5} {}", r.level(), r.args());
    }

    fn flush(&self) {}
}

/// Install the logger; `level` is `error|warn|info|debug|trace` (anything else: info).
pub fn init(level: &str) {
    let level = level.parse().unwrap_or(LevelFilter::Info);
    if log::set_logger(Box::leak(Box::new(Logger { level }))).is_ok() {
        log::set_max_level(level);
    }
}
