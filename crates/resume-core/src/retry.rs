//! Bounded retries with exponential backoff and full jitter from an injectable RNG.

use std::time::Duration;

use crate::rng::SplitMix64;

/// How hard the engine tries before giving up on a request.
///
/// A request that made progress (received at least one byte) resets the count of consecutive
/// failures, so a long part on a flaky link keeps moving; `max_requests_per_part` still bounds
/// the total so a server that sends one byte and resets forever cannot loop forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Consecutive failed requests without progress before giving up (≥ 1; 1 = no retry).
    pub max_attempts: u32,
    /// Upper bound on all requests for one part, progressing or not.
    pub max_requests_per_part: u32,
    /// Backoff before the first retry; doubles per consecutive failure.
    pub initial_backoff: Duration,
    /// Cap on a single backoff.
    pub max_backoff: Duration,
    /// Seed for the jitter RNG; `None` seeds from the clock. Set it for reproducible runs.
    pub jitter_seed: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            max_requests_per_part: 1_000,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            jitter_seed: None,
        }
    }
}

impl RetryPolicy {
    /// No retries at all: the first failure is final.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            max_requests_per_part: 1,
            ..Self::default()
        }
    }

    /// Full-jitter backoff before retry number `failures` (1-based): uniform in
    /// `[0, min(max_backoff, initial_backoff * 2^(failures-1))]`.
    pub(crate) fn backoff(&self, failures: u32, rng: &mut JitterRng) -> Duration {
        let exp = failures.saturating_sub(1).min(32);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32 << exp.min(31))
            .min(self.max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.next_u64() % (nanos + 1))
    }
}

/// The lowest speed a connection may keep (aria2c's `--lowest-speed-limit`, curl's
/// `--speed-limit` / `--speed-time`): a request whose body arrives slower than
/// `bytes_per_sec` on average over `window` is abandoned and the part retried, from the byte
/// where it stopped, on a new connection. Each such abandonment counts as a failed attempt
/// even though bytes arrived, so a trickle ends after the policy's `max_attempts` instead of
/// running for ever. Time spent waiting for the download's own rate limit is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowestSpeed {
    /// Bytes per second (≥ 1).
    pub bytes_per_sec: u64,
    /// Over how long the speed is measured (> 0); a new measurement starts after each.
    pub window: Duration,
}

impl LowestSpeed {
    /// Whether `bytes` received in `elapsed` (at least the window) is slower than the limit.
    pub(crate) fn too_slow(&self, bytes: u64, elapsed: Duration) -> bool {
        u128::from(bytes) * 1_000_000_000
            < u128::from(self.bytes_per_sec).saturating_mul(elapsed.as_nanos())
    }
}

/// Jitter for backoff delays: seeded when the policy says so, from the clock otherwise.
#[derive(Debug, Clone)]
pub(crate) struct JitterRng(SplitMix64);

impl JitterRng {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
        });
        Self(SplitMix64::new(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_by_the_exponential_ceiling_and_the_cap() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let mut rng = JitterRng::new(Some(7));
        for failures in 1..40 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << (failures - 1).min(31))
                .min(Duration::from_secs(1));
            for _ in 0..50 {
                assert!(p.backoff(failures, &mut rng) <= ceiling);
            }
        }
    }

    #[test]
    fn too_slow_compares_the_average_over_the_elapsed_time() {
        let s = LowestSpeed {
            bytes_per_sec: 1000,
            window: Duration::from_secs(2),
        };
        assert!(s.too_slow(1999, Duration::from_secs(2)));
        assert!(!s.too_slow(2000, Duration::from_secs(2)));
        assert!(s.too_slow(2000, Duration::from_millis(2001)));
        assert!(s.too_slow(0, Duration::from_secs(2)));
        let huge = LowestSpeed {
            bytes_per_sec: u64::MAX,
            window: Duration::MAX,
        };
        assert!(huge.too_slow(u64::MAX, Duration::MAX));
    }

    #[test]
    fn same_seed_gives_same_delays_and_jitter_actually_varies() {
        let p = RetryPolicy::default();
        let run = |seed| {
            let mut rng = JitterRng::new(Some(seed));
            (1..20).map(|f| p.backoff(f, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        let distinct: std::collections::HashSet<_> = run(42).into_iter().collect();
        assert!(
            distinct.len() > 10,
            "jitter should spread delays: {distinct:?}"
        );
    }
}
