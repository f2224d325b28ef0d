//! The one retry policy of every outgoing request: a total attempt budget, exponential backoff with jitter, and
//! `Retry-After` honoured up to a cap. Callers own a [`Budget`] per unit of work (a blob, a manifest), so layers
//! of retries never multiply: whoever loops spends the one budget.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (≥ 1).
    pub attempts: u32,
    /// Backoff before the second attempt; it doubles for each later one, up to `max_delay`.
    pub base: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for; a server that asks for more fails the request at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    pub fn budget(&self) -> Budget<'_> {
        Budget { policy: self, used: 0 }
    }
}

/// How a failed attempt may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Not at all: the answer is final (a 404, a digest mismatch, a 429 without `Retry-After`).
    Never,
    /// After the policy's backoff.
    Backoff,
    /// After what the server asked for.
    After(Duration),
}

/// The attempts left for one unit of work.
#[derive(Debug)]
pub struct Budget<'a> {
    policy: &'a RetryPolicy,
    used: u32,
}

impl Budget<'_> {
    /// Record a failed attempt; the delay before the next one, or `None` when there is to be none.
    pub fn failed(&mut self, how: Retry) -> Option<Duration> {
        self.used += 1;
        if self.used >= self.policy.attempts.max(1) {
            return None;
        }
        match how {
            Retry::Never => None,
            Retry::After(d) if d > self.policy.max_retry_after => None,
            Retry::After(d) => Some(d),
            Retry::Backoff => Some(self.backoff()),
        }
    }

    /// Attempts made so far.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// "Equal jitter": half the exponential step, plus a random part of the other half, so that clients that
    /// failed together do not come back together.
    fn backoff(&self) -> Duration {
        let step = self
            .policy
            .base
            .saturating_mul(1u32 << (self.used - 1).min(20))
            .min(self.policy.max_delay);
        let half = step / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in [0, 1) that differs between calls and processes; not for cryptography.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        b = t.subsec_nanos().to_le_bytes();
    }
    u32::from_le_bytes(b) as f64 / (u32::MAX as f64 + 1.0)
}

/// `Retry-After` as seconds or an HTTP date, relative to now.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = time::PrimitiveDateTime::parse(v, crate::http::HTTP_DATE)
        .ok()?
        .assume_utc();
    let secs = at.unix_timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    Some(Duration::from_secs(secs.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_every_attempt_once() {
        let p = RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_retry_after: Duration::from_secs(10),
        };
        let mut b = p.budget();
        let delays: Vec<Duration> = std::iter::from_fn(|| b.failed(Retry::Backoff)).collect();
        assert_eq!(delays.len(), 4, "5 attempts: 4 waits between them");
        assert_eq!(b.used(), 5);
        for (i, d) in delays.iter().enumerate() {
            let step = (Duration::from_millis(100) * (1 << i)).min(Duration::from_millis(350));
            assert!(
                *d >= step / 2 && *d <= step,
                "attempt {i}: {d:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
        let mut b = p.budget();
        assert_eq!(b.failed(Retry::Never), None);
        let mut b = p.budget();
        assert_eq!(
            b.failed(Retry::After(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            b.failed(Retry::After(Duration::from_secs(11))),
            None,
            "over the cap: fail now"
        );
        let one = RetryPolicy { attempts: 1, ..p };
        assert_eq!(one.budget().failed(Retry::Backoff), None);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "in the past"
        );
        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let d = parse_retry_after(&later.format(crate::http::HTTP_DATE).unwrap()).unwrap();
        assert!(d >= Duration::from_secs(118) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }
}
