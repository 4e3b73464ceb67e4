//! One token bucket shared by every worker of a download, so `--limit-rate` caps the total,
//! not each connection; [`RateLimit`] shares one bucket across downloads (a batch job's
//! `--limit-rate` caps the whole job).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Caps throughput at `rate` bytes/s with bursts of at most `burst` bytes.
///
/// A worker reserves a received chunk before accepting it: the reservation may put the
/// bucket in debt, and the worker sleeps until its share of the debt is repaid, so reserved
/// bytes never run ahead of `burst + rate × t`, however many workers share the bucket. While
/// a worker sleeps it reads nothing more, and TCP flow control slows the sender. Over any
/// window of `w` seconds the bytes accepted are at most `rate × w + burst + one chunk`.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Option<Instant>)>,
}

impl RateLimiter {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        // A twentieth of a second of traffic: small enough that a 2 s window stays within
        // 10 % of the limit even with one large chunk in it, large enough not to wake workers
        // for every small chunk.
        let burst = (rate / 20.0).max(1.0);
        Self {
            rate,
            burst,
            // Start empty: workers starting together must not add a burst to their first chunks.
            state: Mutex::new((0.0, None)),
        }
    }

    /// Reserves `n` bytes, waiting until the bucket has paid for them.
    pub(crate) async fn take(&self, n: u64) {
        let wait = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let (tokens, last) = &mut *st;
            if let Some(l) = *last {
                *tokens = (*tokens + (now - l).as_secs_f64() * self.rate).min(self.burst);
            }
            *last = Some(now);
            *tokens -= n as f64;
            if *tokens < 0.0 {
                Duration::from_secs_f64(-*tokens / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// One `--limit-rate` shared by several downloads
/// ([`Downloader::shared_rate_limit`](crate::Downloader::shared_rate_limit)): every worker of
/// every download given a clone of it draws from the same token bucket, so together they
/// never receive more than `bytes_per_sec × t` plus one small burst. Cloning gives another
/// handle to the same bucket.
#[derive(Clone)]
pub struct RateLimit {
    pub(crate) bucket: Arc<RateLimiter>,
    bytes_per_sec: u64,
}

impl RateLimit {
    /// A cap of `bytes_per_sec` (at least 1) across every download sharing it.
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bucket: Arc::new(RateLimiter::new(bytes_per_sec)),
            bytes_per_sec: bytes_per_sec.max(1),
        }
    }

    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("bytes_per_sec", &self.bytes_per_sec)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shared_bucket_caps_the_total_of_concurrent_takers() {
        let limiter = RateLimiter::new(100_000);
        let start = Instant::now();
        let taken = std::sync::atomic::AtomicU64::new(0);
        let worker = || async {
            for _ in 0..50 {
                limiter.take(4096).await;
                taken.fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
            }
        };
        futures::join!(worker(), worker(), worker(), worker());
        let secs = start.elapsed().as_secs_f64();
        let total = taken.load(std::sync::atomic::Ordering::Relaxed) as f64;
        // 819 200 bytes at 100 kB/s: a take returns only once the bucket has paid for it, so
        // the last one returns no earlier than 8.19 s.
        assert!(
            secs >= total / 100_000.0 - 0.001,
            "{secs} s for {total} bytes"
        );
        assert!(
            secs <= total / 100_000.0 + 0.2,
            "{secs} s: the limiter is too strict"
        );
    }
}
