//! One token bucket shared by every worker of a download, so `--limit-rate` caps the total,
//! not each connection.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Caps throughput at `rate` bytes/s with bursts of at most `burst` bytes.
///
/// Received bytes are paid for after they arrive: a worker that overdraws the bucket sleeps
/// until the debt is repaid before reading more, and TCP flow control slows the sender. Over
/// any window of `w` seconds the bytes taken are at most `rate × w + burst + one chunk per
/// worker` (each worker pays for a chunk after receiving it).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Option<Instant>)>,
}

impl RateLimiter {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        // A tenth of a second of traffic: smooth enough for a 2 s window to stay within 10 %
        // of the limit, large enough not to wake workers for every small chunk.
        let burst = (rate / 10.0).max(1.0);
        Self {
            rate,
            burst,
            // Start empty: workers starting together must not add a burst to their first chunks.
            state: Mutex::new((0.0, None)),
        }
    }

    /// Takes `n` bytes from the bucket, waiting as long as the bucket is in debt.
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
        // 819 200 bytes at 100 kB/s with a 10 kB burst: at least 8.09 s.
        assert!(
            secs >= (total - 10_000.0) / 100_000.0 - 0.001,
            "{secs} s for {total} bytes"
        );
        assert!(
            secs <= total / 100_000.0 + 0.2,
            "{secs} s: the limiter is too strict"
        );
    }
}
