//! The engine's side of `--jobs auto` ([`crate::tune`]) and of the per-request latency: a gate
//! that lets only the tuner's number of workers claim parts, the loop that feeds the tuner
//! the bytes received, and the hooks the fetch path calls (a throttling answer, a response's
//! latency).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Attempt, Failure, lock};
use crate::downloader::Downloader;
use crate::event::{Event, FirstByte, JobsUsed};
use crate::source::SourceError;
use crate::tune::{JobsChange, JobsTuner, is_throttling};

/// How often the tuner is fed while workers run.
const TICK: Duration = Duration::from_millis(100);

/// Connections of one download: fixed, or a [`JobsTuner`] and the gate it opens and closes.
pub(super) struct Tuning {
    tuner: Option<Mutex<JobsTuner>>,
    /// Workers with an index below this may claim a part (`usize::MAX`: all of them).
    gate: watch::Sender<usize>,
    /// The tuner's epoch when each part in flight was claimed.
    claims: Mutex<HashMap<u64, u32>>,
    /// The tuner's clock: the first time workers started.
    started: Mutex<Option<Instant>>,
    first_byte: Mutex<Option<FirstByteSum>>,
    fixed: usize,
}

#[derive(Debug, Clone, Copy)]
struct FirstByteSum {
    requests: u64,
    total: Duration,
    min: Duration,
    max: Duration,
}

impl Tuning {
    pub(super) fn new(dl: &Downloader) -> Self {
        let tuner = dl.auto_jobs.map(|cfg| {
            let cap = dl.connections.as_ref().map_or(usize::MAX, |l| l.max());
            JobsTuner::new(cfg.capped(cap))
        });
        let open = tuner.as_ref().map_or(usize::MAX, JobsTuner::target);
        Self {
            tuner: tuner.map(Mutex::new),
            gate: watch::Sender::new(open),
            claims: Mutex::new(HashMap::new()),
            started: Mutex::new(None),
            first_byte: Mutex::new(None),
            fixed: dl.concurrency,
        }
    }

    /// Workers to run for `parts` parts: every one the tuner may open, or the fixed number.
    pub(super) fn workers(&self, parts: usize) -> usize {
        let most = match &self.tuner {
            Some(t) => lock(t).cap(),
            None => self.fixed,
        };
        most.min(parts)
    }

    /// Workers are about to start on a queue: only the tuner's number may claim parts.
    pub(super) fn begin(&self) {
        if let Some(t) = &self.tuner {
            let target = lock(t).target();
            self.gate.send_replace(target);
        }
    }

    /// The tuner's clock.
    fn now(&self) -> Duration {
        let mut started = lock(&self.started);
        started.get_or_insert_with(Instant::now).elapsed()
    }

    /// Waits until worker `index` may claim a part.
    pub(super) async fn admit(
        &self,
        index: usize,
        halt: &CancellationToken,
    ) -> Result<(), Failure> {
        if self.tuner.is_none() {
            return Ok(());
        }
        let mut rx = self.gate.subscribe();
        tokio::select! {
            biased;
            _ = halt.cancelled() => Err(Failure::Stopped),
            // The sender lives as long as the workers (it is `self`'s).
            _ = rx.wait_for(|&open| index < open) => Ok(()),
        }
    }

    /// Whether worker `index` may take over part of another's once every part is claimed:
    /// only the tuner's number of connections (the gate is open to all by then).
    pub(super) fn may_help(&self, index: usize) -> bool {
        self.tuner.as_ref().is_none_or(|t| index < lock(t).target())
    }

    /// How many workers may fetch at once now: the tuner's target, or the fixed number.
    pub(super) fn connections(&self) -> usize {
        self.tuner.as_ref().map_or(self.fixed, |t| lock(t).target())
    }

    /// The mean time from a part request to its response so far.
    pub(super) fn mean_latency(&self) -> Option<Duration> {
        let s = (*lock(&self.first_byte))?;
        Some(s.total / u32::try_from(s.requests).unwrap_or(u32::MAX).max(1))
    }

    /// Worker claimed `part`: remembered with the tuner's epoch.
    pub(super) fn claimed(&self, part: u64) {
        if let Some(t) = &self.tuner {
            let epoch = lock(t).epoch();
            lock(&self.claims).insert(part, epoch);
        }
    }

    /// `part` is done (or abandoned).
    pub(super) fn released(&self, part: u64) {
        if self.tuner.is_some() {
            lock(&self.claims).remove(&part);
        }
    }

    /// A request of `part` failed with `cause`: a throttling answer may cut the connections.
    pub(super) fn failed(&self, dl: &Downloader, part: Option<u64>, cause: &SourceError) {
        let (Some(t), Some(part)) = (&self.tuner, part) else {
            return;
        };
        if !is_throttling(cause) {
            return;
        }
        let now = self.now();
        let (epoch, in_flight) = {
            let claims = lock(&self.claims);
            let Some(&epoch) = claims.get(&part) else {
                return;
            };
            (epoch, claims.len())
        };
        let change = lock(t).on_throttled(now, epoch, in_flight);
        if let Some(c) = change {
            self.apply(dl, c);
        }
    }

    /// A part request got its response after `latency`.
    pub(super) fn responded(&self, latency: Duration) {
        let mut s = lock(&self.first_byte);
        let s = s.get_or_insert(FirstByteSum {
            requests: 0,
            total: Duration::ZERO,
            min: latency,
            max: latency,
        });
        s.requests += 1;
        s.total += latency;
        s.min = s.min.min(latency);
        s.max = s.max.max(latency);
    }

    fn apply(&self, dl: &Downloader, c: JobsChange) {
        if c.to != c.from {
            // Only while parts are left to claim: once the gate is open for good, it stays so.
            self.gate.send_if_modified(|open| {
                let change = *open != usize::MAX;
                if change {
                    *open = c.to;
                }
                change
            });
        }
        tracing::info!(from = c.from, to = c.to, reason = ?c.reason, "connections");
        dl.emit(&Event::JobsChanged {
            from: c.from,
            to: c.to,
            reason: c.reason,
        });
    }

    /// Feeds the tuner the bytes received until `stop`; opens the gate to every worker once
    /// no part is left to claim, so that waiting workers see the queue empty and end.
    pub(super) async fn drive(
        &self,
        attempt: &Attempt<'_>,
        next: &AtomicUsize,
        parts: usize,
        stop: &CancellationToken,
    ) {
        let Some(t) = &self.tuner else {
            return;
        };
        let fetched = || attempt.counters.fetched_bytes.load(Ordering::Relaxed);
        loop {
            // Once every part is claimed a decision changes nothing (and the rate falls as
            // the last parts end, which is no reason to probe again).
            let all_claimed = next.load(Ordering::Relaxed) >= parts;
            if all_claimed {
                self.gate.send_replace(usize::MAX);
            }
            let probing = lock(t).probing();
            if probing && !all_claimed {
                let now = self.now();
                let change = lock(t).on_progress(now, fetched());
                if let Some(c) = change {
                    self.apply(attempt.dl, c);
                }
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// What the report says about the connections.
    pub(super) fn used(&self) -> JobsUsed {
        match &self.tuner {
            Some(t) => {
                let t = lock(t);
                JobsUsed {
                    auto: true,
                    start: t.start(),
                    peak: t.peak(),
                    last: t.target(),
                }
            }
            None => JobsUsed {
                auto: false,
                start: self.fixed,
                peak: self.fixed,
                last: self.fixed,
            },
        }
    }

    pub(super) fn first_byte(&self) -> Option<FirstByte> {
        lock(&self.first_byte).map(|s| FirstByte {
            requests: s.requests,
            min: s.min,
            mean: s.total / u32::try_from(s.requests).unwrap_or(u32::MAX).max(1),
            max: s.max,
        })
    }
}
