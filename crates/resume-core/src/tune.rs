//! `--jobs auto`: how many connections a download uses, chosen while it runs.
//!
//! [`JobsTuner`] is a pure state machine: the engine feeds it the time since the transfer
//! began, the bytes done so far and the throttling answers the server gave, and it answers
//! with the number of connections to use ([`JobsTuner::target`]). It reads no clock and
//! spawns nothing, so every decision is reproduced exactly by a unit test.
//!
//! The policy:
//! - **Start moderate** ([`AutoJobs::start`] connections) and measure the aggregate rate
//!   over [`AutoJobs::window`], after [`AutoJobs::settle`] for new connections to leave slow
//!   start.
//! - **Add connections while the rate still grows**: double them (up to the cap) as long as
//!   each step raised the rate by at least [`AutoJobs::min_gain`]; at the first step that did
//!   not, or at the cap, hold. Past [`AutoJobs::wide`] connections a step is taken only when
//!   the last one raised the rate by at least [`AutoJobs::wide_gain`] (every added connection
//!   still brought about half a connection's rate: flows each bound by loss, as cubic's are at
//!   1 % loss, not a full link). The cap is [`AutoJobs::max`], lowered to a shared
//!   [`ConnectionLimit`](crate::ConnectionLimit) when the download has one.
//! - **Probe again when the rate falls**: while holding (below [`AutoJobs::wide`], not after
//!   throttling), the rate is still measured over the last two windows; one that falls
//!   [`AutoJobs::reprobe_drop`] below the rate the level was held at means the level no
//!   longer fills what it filled (cubic flows leave slow start's overshoot for their
//!   loss-bound rate seconds after the first measurement: at 0.1 % loss on the WAN lab 16
//!   connections first measured the full link, then carried 80 % of it), so it doubles
//!   and probes as at the start.
//! - **Back off on throttling** (503 SlowDown, 429, a refused connection): halve the
//!   connections (at least [`AutoJobs::min`]) and never grow past that again. Throttling
//!   answers to requests of parts claimed before the last cut are ignored: they were sent at
//!   the old level and say nothing about the new one, so one burst of 503s cuts once; so are
//!   answers while more parts are in flight than the target (connections above a lowered
//!   target finishing their part).

use std::collections::VecDeque;
use std::time::Duration;

use crate::source::SourceError;

/// Settings of `--jobs auto` ([`Downloader::auto_jobs`](crate::Downloader::auto_jobs)).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct AutoJobs {
    /// Connections at the start.
    pub start: usize,
    /// Connections never exceeded (nor the download's shared connection limit).
    pub max: usize,
    /// Connections never gone below when backing off.
    pub min: usize,
    /// After a change, how long new connections get before the rate is measured.
    pub settle: Duration,
    /// How long the rate is measured at each level.
    pub window: Duration,
    /// A step up is kept growing only if it raised the rate by at least this fraction.
    pub min_gain: f64,
    /// Connections past which growing needs [`AutoJobs::wide_gain`] instead of `min_gain`.
    pub wide: usize,
    /// The gain the last step must have brought to grow past [`AutoJobs::wide`].
    pub wide_gain: f64,
    /// A held level below [`AutoJobs::wide`] is probed again when its rate over two windows
    /// falls this fraction below the rate it was held at.
    pub reprobe_drop: f64,
}

/// Connections a download starts with under `--jobs auto` (today's fixed default).
pub const AUTO_JOBS_START: usize = 8;
/// The most connections `--jobs auto` opens for one download; past [`AUTO_JOBS_WIDE`] only
/// while each step still raises the rate by half (loss-bound flows: cubic at 1 % loss on the
/// WAN lab took 31.4 s for 256 MiB with 32 connections, 18.2 s with 64; BENCHMARKS.md).
pub const AUTO_JOBS_MAX: usize = 64;
/// Connections `--jobs auto` reaches with the ordinary growth rule ([`AutoJobs::min_gain`]).
pub const AUTO_JOBS_WIDE: usize = 32;

impl Default for AutoJobs {
    fn default() -> Self {
        Self {
            start: AUTO_JOBS_START,
            max: AUTO_JOBS_MAX,
            min: 1,
            settle: Duration::from_millis(750),
            window: Duration::from_millis(1500),
            min_gain: 0.10,
            wide: AUTO_JOBS_WIDE,
            wide_gain: 0.50,
            // Above the noise of two windows (bbr's ProbeRTT idles each flow 200 ms in 10 s).
            reprobe_drop: 0.15,
        }
    }
}

impl AutoJobs {
    /// These settings with the cap lowered to `cap` (a shared connection limit, or the parts
    /// left), keeping `min ≤ start ≤ max`.
    pub fn capped(mut self, cap: usize) -> Self {
        self.max = self.max.min(cap).max(1);
        self.min = self.min.clamp(1, self.max);
        self.start = self.start.clamp(self.min, self.max);
        self
    }
}

/// Why the number of connections changed (or stopped changing).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum JobsReason {
    /// The rate at the last level grew enough over the one before: more connections.
    RateGrew {
        /// Bytes per second at the level before, if measured.
        before: Option<u64>,
        /// Bytes per second at the level just measured.
        after: u64,
    },
    /// The last step did not raise the rate enough: this level is kept.
    RateFlat { before: u64, after: u64 },
    /// The cap is reached (while the rate still grew): this level is kept.
    Cap { after: u64 },
    /// The server throttled (503 SlowDown, 429, refused connections): fewer connections,
    /// and never more than that again.
    Throttled,
    /// While holding, the rate fell well below the one the level was held at: more
    /// connections, probing again.
    RateFell {
        /// Bytes per second when the level was held.
        held: u64,
        /// Bytes per second over the last window.
        after: u64,
    },
}

/// A decision of the tuner: from `from` connections to `to` (equal when it stops growing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobsChange {
    pub from: usize,
    pub to: usize,
    pub reason: JobsReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Measuring the current level, ready to add connections.
    Probing,
    /// Holding the current level (the rate stopped growing, the cap, or throttling); probed
    /// again if its rate falls ([`JobsTuner::held_rate`]).
    Holding,
}

/// The controller of `--jobs auto`: see the module documentation.
#[derive(Debug, Clone)]
pub struct JobsTuner {
    cfg: AutoJobs,
    target: usize,
    peak: usize,
    phase: Phase,
    /// Never grow past this (lowered by throttling).
    ceiling: usize,
    /// When the current level began.
    since: Duration,
    /// Start of the measurement at the current level: (time, bytes done).
    mark: Option<(Duration, u64)>,
    /// Rate measured at the previous level, bytes per second.
    last_rate: Option<f64>,
    /// While holding a level that may be probed again: the rate it was held at, and the
    /// (time, bytes done) samples of the last window.
    held_rate: Option<f64>,
    held_samples: VecDeque<(Duration, u64)>,
    /// Cuts so far; a claim made at an older epoch says nothing about the current level.
    epoch: u32,
}

impl JobsTuner {
    /// A tuner at `cfg.start` connections, its clock at zero.
    pub fn new(cfg: AutoJobs) -> Self {
        let cfg = cfg.capped(cfg.max);
        Self {
            cfg,
            target: cfg.start,
            peak: cfg.start,
            phase: Phase::Probing,
            ceiling: cfg.max,
            since: Duration::ZERO,
            mark: None,
            last_rate: None,
            held_rate: None,
            held_samples: VecDeque::new(),
            epoch: 0,
        }
    }

    /// Connections to use now.
    pub fn target(&self) -> usize {
        self.target
    }

    /// The most connections used so far.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// The most connections it may ever ask for.
    pub fn cap(&self) -> usize {
        self.cfg.max
    }

    /// The connections it started with.
    pub fn start(&self) -> usize {
        self.cfg.start
    }

    /// Throttling cuts so far: tag each claimed part with it, and pass it back with a
    /// throttling answer to that part's requests ([`JobsTuner::on_throttled`]).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Whether it may still add connections: probing, or holding a level it would probe
    /// again if the rate fell.
    pub fn probing(&self) -> bool {
        self.phase == Phase::Probing || self.held_rate.is_some()
    }

    /// `done` bytes of the download are done at `now` (both only ever grow). Returns a
    /// decision when the level changes or stops changing.
    pub fn on_progress(&mut self, now: Duration, done: u64) -> Option<JobsChange> {
        if self.phase == Phase::Holding {
            return self.watch_held(now, done);
        }
        if now < self.since + self.cfg.settle {
            return None;
        }
        let Some((t0, b0)) = self.mark else {
            self.mark = Some((now, done));
            return None;
        };
        let span = now.saturating_sub(t0);
        if span < self.cfg.window || span.is_zero() {
            return None;
        }
        let rate = done.saturating_sub(b0) as f64 / span.as_secs_f64();
        let from = self.target;
        let to = from.saturating_mul(2).min(self.ceiling);
        let gain = if to > self.cfg.wide {
            self.cfg.wide_gain
        } else {
            self.cfg.min_gain
        };
        let grew = match self.last_rate {
            None => true,
            Some(before) => rate >= before * (1.0 + gain),
        };
        let before = self.last_rate.map(|r| r as u64);
        let after = rate as u64;
        if !grew {
            // Both levels measured the same plateau: the lower reading is the one a noisy
            // window is least likely to have inflated.
            self.hold(now, done, rate.min(self.last_rate.unwrap_or(rate)));
            return Some(JobsChange {
                from,
                to: from,
                reason: JobsReason::RateFlat {
                    before: before.unwrap_or(0),
                    after,
                },
            });
        }
        if to <= from {
            self.hold(now, done, rate);
            return Some(JobsChange {
                from,
                to: from,
                reason: JobsReason::Cap { after },
            });
        }
        self.last_rate = Some(rate);
        self.set(now, to);
        Some(JobsChange {
            from,
            to,
            reason: JobsReason::RateGrew { before, after },
        })
    }

    /// Holds the current level, measured at `rate` bytes per second; below
    /// [`AutoJobs::wide`] its rate is watched from `(now, done)` on.
    fn hold(&mut self, now: Duration, done: u64, rate: f64) {
        self.phase = Phase::Holding;
        let may_grow = self.target < self.cfg.wide && self.target < self.ceiling;
        self.held_rate = may_grow.then_some(rate);
        self.held_samples.clear();
        self.held_samples.push_back((now, done));
    }

    /// A held level's rate over the last two windows, read at every call (sliding, so a fall
    /// is seen about two windows after it began): probes again (doubling) when it falls well
    /// below the rate the level was held at. Two windows, because one can miss a sixth of a
    /// full link's bytes without anything having changed: on the WAN lab 16 bbr flows idle
    /// together for ProbeRTT (200 ms every 10 s), and their 1.5 s windows read 14-17 % low.
    fn watch_held(&mut self, now: Duration, done: u64) -> Option<JobsChange> {
        let held = self.held_rate?;
        let watch = self.cfg.window * 2;
        self.held_samples.push_back((now, done));
        // Keep the newest sample at least `watch` old as the start.
        while self
            .held_samples
            .get(1)
            .is_some_and(|&(t, _)| now.saturating_sub(t) >= watch)
        {
            self.held_samples.pop_front();
        }
        let (t0, b0) = *self.held_samples.front()?;
        let span = now.saturating_sub(t0);
        if span < watch || span.is_zero() {
            return None;
        }
        let rate = done.saturating_sub(b0) as f64 / span.as_secs_f64();
        if rate >= held * (1.0 - self.cfg.reprobe_drop) {
            return None;
        }
        // The two windows still hold some of the rate before the fall: the last window is
        // nearer what this level carries now, the rate the next level must beat.
        let recent = self
            .held_samples
            .iter()
            .find(|&&(t, _)| now.saturating_sub(t) <= self.cfg.window)
            .filter(|&&(t, _)| t < now)
            .map(|&(t, b)| done.saturating_sub(b) as f64 / (now - t).as_secs_f64());
        let now_rate = recent.map_or(rate, |r| r.min(rate));
        self.held_samples.clear();
        let from = self.target;
        let to = from.saturating_mul(2).min(self.ceiling);
        self.phase = Phase::Probing;
        self.held_rate = None;
        self.last_rate = Some(now_rate);
        self.set(now, to);
        Some(JobsChange {
            from,
            to,
            reason: JobsReason::RateFell {
                held: held as u64,
                after: rate as u64,
            },
        })
    }

    /// The server throttled a request of a part claimed at `claimed_epoch`
    /// ([`JobsTuner::epoch`] then) while `in_flight` parts were being fetched. Halves the
    /// connections, once per epoch, and only when the current level is to blame: a throttling
    /// answer while more parts are in flight than the target (connections above a lowered
    /// target finishing their part) says nothing about the target itself.
    pub fn on_throttled(
        &mut self,
        now: Duration,
        claimed_epoch: u32,
        in_flight: usize,
    ) -> Option<JobsChange> {
        if claimed_epoch < self.epoch || in_flight > self.target {
            return None;
        }
        let from = self.target;
        let to = (from / 2).max(self.cfg.min);
        self.phase = Phase::Holding;
        self.held_rate = None;
        self.ceiling = to;
        if to == from {
            return None;
        }
        self.epoch += 1;
        self.set(now, to);
        Some(JobsChange {
            from,
            to,
            reason: JobsReason::Throttled,
        })
    }

    fn set(&mut self, now: Duration, to: usize) {
        self.target = to;
        self.peak = self.peak.max(to);
        self.since = now;
        self.mark = None;
    }
}

/// Whether a failed request is the server asking for fewer requests: 503 (OSS and S3 say
/// `SlowDown`), 429, a throttling error code, or a refused connection.
pub fn is_throttling(e: &SourceError) -> bool {
    const CODES: [&str; 6] = [
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "ServerBusy",
    ];
    if matches!(e.status, Some(429 | 503)) {
        return true;
    }
    if e.code.as_deref().is_some_and(|c| CODES.contains(&c)) {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e
        .source
        .as_deref()
        .map(|s| s as &(dyn std::error::Error + 'static));
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceErrorKind;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn cfg() -> AutoJobs {
        AutoJobs {
            start: 4,
            max: 32,
            min: 1,
            settle: Duration::from_secs(1),
            window: Duration::from_secs(2),
            min_gain: 0.10,
            wide: 32,
            wide_gain: 0.50,
            reprobe_drop: 0.15,
        }
    }

    /// Drives `t` with a link whose rate is `rate(connections)` bytes per second, in steps of
    /// 100 ms, for `secs` seconds; returns the decisions.
    fn drive(t: &mut JobsTuner, secs: u64, rate: impl Fn(usize) -> f64) -> Vec<JobsChange> {
        let mut done = 0f64;
        let mut out = Vec::new();
        for step in 1..=secs * 10 {
            done += rate(t.target()) / 10.0;
            if let Some(c) = t.on_progress(100 * MS * step as u32, done as u64) {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn grows_while_each_connection_adds_rate_and_stops_at_the_cap() {
        // Each connection is capped at 1 MB/s (a per-connection limit), the link at 100 MB/s.
        let mut t = JobsTuner::new(cfg());
        let changes = drive(&mut t, 30, |n| (n as f64 * 1e6).min(100e6));
        let levels: Vec<(usize, usize)> = changes.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(levels, [(4, 8), (8, 16), (16, 32), (32, 32)]);
        assert!(matches!(changes[3].reason, JobsReason::Cap { .. }));
        assert_eq!((t.target(), t.peak(), t.start()), (32, 32, 4));
        assert!(!t.probing());
    }

    #[test]
    fn grows_past_wide_only_while_each_step_still_raises_the_rate_by_half() {
        let levels = |rate: &dyn Fn(usize) -> f64| {
            let mut t = JobsTuner::new(AutoJobs {
                max: 128,
                wide: 16,
                ..cfg()
            });
            drive(&mut t, 60, rate)
                .iter()
                .map(|c| (c.from, c.to))
                .collect::<Vec<_>>()
        };
        // Loss-bound flows (each 1 MB/s, the link far away): doubled up to the cap.
        assert_eq!(
            levels(&|n| n as f64 * 1e6),
            [(4, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 128)]
        );
        // 8 → 16 raised the rate by 30 %: enough below `wide`, not to go past it.
        assert_eq!(
            levels(&|n| match n {
                ..=4 => 4e6,
                5..=8 => 8e6,
                _ => 10.4e6,
            }),
            [(4, 8), (8, 16), (16, 16)]
        );
        // 16 → 32 raised it by 60 %, 32 → 64 by 20 %: 64 is kept, 128 never opened.
        assert_eq!(
            levels(&|n| match n {
                ..=16 => n as f64 * 1e6,
                17..=32 => 25.6e6,
                _ => 30.7e6,
            }),
            [(4, 8), (8, 16), (16, 32), (32, 64), (64, 64)]
        );
    }

    /// [`drive`] with a link whose rate also depends on the time (seconds since the start).
    fn drive_in_time(
        t: &mut JobsTuner,
        secs: u64,
        rate: impl Fn(f64, usize) -> f64,
    ) -> Vec<JobsChange> {
        let mut done = 0f64;
        let mut out = Vec::new();
        for step in 1..=secs * 10 {
            done += rate(step as f64 / 10.0, t.target()) / 10.0;
            if let Some(c) = t.on_progress(100 * MS * step as u32, done as u64) {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn a_held_level_whose_rate_falls_is_probed_again() {
        // Flows that first overshoot (6 MB/s each, the 24 MB/s link full at 4) and settle at
        // their loss-bound 1.2 MB/s after 8 s, as cubic's do under loss.
        let mut t = JobsTuner::new(AutoJobs { max: 64, ..cfg() });
        let rate = |secs: f64, n: usize| {
            let per_flow = if secs < 8.0 { 6e6 } else { 1.2e6 };
            (n as f64 * per_flow).min(24e6)
        };
        let changes = drive_in_time(&mut t, 40, rate);
        let levels: Vec<(usize, usize)> = changes.iter().map(|c| (c.from, c.to)).collect();
        // 4 → 8 (always), 8 flat (full link), the fall below 85 % of 24 MB/s → 16, 16 → 32
        // (+100 %), 32 → 64 would need +50 % past `wide`: +25 %, so 32 is held, for good.
        assert_eq!(levels, [(4, 8), (8, 8), (8, 16), (16, 32), (32, 32)]);
        // Seen while the window still holds some of the rate before the fall (sliding windows).
        match changes[2].reason {
            JobsReason::RateFell { held, after } => {
                assert_eq!(held, 24_000_000);
                assert!(after < 20_400_000, "{after}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(changes[4].reason, JobsReason::RateFlat { .. }));
        assert!(!t.probing(), "held at `wide`: never probed again");
    }

    #[test]
    fn a_held_level_within_the_noise_is_kept() {
        // A full link that reads 12.5 % lower every other second (bbr's ProbeRTT, a window
        // that catches a loss): never taken for a fall.
        let mut t = JobsTuner::new(cfg());
        let changes = drive_in_time(&mut t, 60, |secs, n| {
            let full = if (secs as u64).is_multiple_of(2) {
                24e6
            } else {
                21e6
            };
            (n as f64 * 6e6).min(full)
        });
        let levels: Vec<(usize, usize)> = changes.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(levels, [(4, 8), (8, 8)]);
        assert!(t.probing(), "still watching the held level");

        // Every flow idle ~350 ms in 10 s at the same time (bbr's ProbeRTT), first after the
        // level is held: one 2 s window reads ~18 % low (a fall), two windows ~9 %.
        let mut t = JobsTuner::new(cfg());
        let changes = drive_in_time(&mut t, 60, |secs, n| {
            let idle = (8.0..8.35).contains(&(secs % 10.0));
            if idle {
                0.0
            } else {
                (n as f64 * 6e6).min(24e6)
            }
        });
        let levels: Vec<(usize, usize)> = changes.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(levels, [(4, 8), (8, 8)]);
    }

    #[test]
    fn stops_at_the_first_step_that_does_not_raise_the_rate() {
        // A 10 MB/s bottleneck that 4 connections already fill at 3 MB/s each... 12 > 10.
        let mut t = JobsTuner::new(cfg());
        let changes = drive(&mut t, 30, |n| (n as f64 * 3e6).min(10e6));
        let levels: Vec<(usize, usize)> = changes.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(levels, [(4, 8), (8, 8)]);
        assert_eq!(
            changes[1].reason,
            JobsReason::RateFlat {
                before: 10_000_000,
                after: 10_000_000
            }
        );
        assert_eq!(t.target(), 8);
    }

    #[test]
    fn nothing_is_decided_before_settling_and_a_full_window() {
        let mut t = JobsTuner::new(cfg());
        // Settling: no mark yet.
        assert_eq!(t.on_progress(999 * MS, 1_000), None);
        // The mark, then less than a window.
        assert_eq!(t.on_progress(1_000 * MS, 1_000), None);
        assert_eq!(t.on_progress(2_999 * MS, 5_000_000), None);
        let c = t.on_progress(3_000 * MS, 2_001_000).unwrap();
        assert_eq!(
            c,
            JobsChange {
                from: 4,
                to: 8,
                reason: JobsReason::RateGrew {
                    before: None,
                    after: 1_000_000
                }
            }
        );
        // The new level settles again from the change.
        assert_eq!(t.on_progress(3_500 * MS, 3_000_000), None);
    }

    #[test]
    fn throttling_halves_once_per_burst_and_caps_growth() {
        let mut t = JobsTuner::new(cfg());
        let _ = drive(&mut t, 4, |n| n as f64 * 1e6); // 4 → 8
        assert_eq!(t.target(), 8);
        let e = t.epoch();
        let c = t.on_throttled(5_000 * MS, e, 8).unwrap();
        assert_eq!((c.from, c.to, c.reason), (8, 4, JobsReason::Throttled));
        // More 503s to requests of parts claimed before the cut: ignored.
        for _ in 0..10 {
            assert_eq!(t.on_throttled(5_001 * MS, e, 8), None);
        }
        assert_eq!(t.target(), 4);
        // A 503 to a part claimed after the cut, while connections above the new target
        // still finish their parts (6 in flight for a target of 4): not the target's fault.
        assert_eq!(t.on_throttled(5_500 * MS, t.epoch(), 6), None);
        assert_eq!(t.target(), 4);
        // Once at most the target is in flight, a 503 cuts again.
        let c = t.on_throttled(6_000 * MS, t.epoch(), 4).unwrap();
        assert_eq!((c.from, c.to), (4, 2));
        // And it never grows again, however fast the link, nor when its rate falls.
        let changes = drive(&mut t, 30, |n| n as f64 * 1e9);
        assert!(changes.is_empty(), "{changes:?}");
        let changes = drive(&mut t, 30, |n| n as f64);
        assert!(changes.is_empty(), "{changes:?}");
        assert!(!t.probing());
        assert_eq!((t.target(), t.peak()), (2, 8));
        // Down to the minimum, not below.
        let _ = t.on_throttled(7_000 * MS, t.epoch(), 2);
        assert_eq!(t.target(), 1);
        assert_eq!(t.on_throttled(8_000 * MS, t.epoch(), 1), None);
        assert_eq!(t.target(), 1);
    }

    #[test]
    fn a_shared_limit_lowers_the_cap_and_the_start() {
        let c = AutoJobs::default().capped(3);
        assert_eq!((c.start, c.max, c.min), (3, 3, 1));
        let c = AutoJobs::default().capped(0);
        assert_eq!((c.start, c.max), (1, 1));
        let mut t = JobsTuner::new(cfg().capped(6));
        let changes = drive(&mut t, 30, |n| n as f64 * 1e6);
        let levels: Vec<(usize, usize)> = changes.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(levels, [(4, 6), (6, 6)]);
    }

    #[test]
    fn throttling_answers_are_recognised() {
        let e = |status: Option<u16>, code: Option<&str>| {
            let mut e = SourceError::new(SourceErrorKind::Transient, "x");
            e.status = status;
            e.code = code.map(str::to_owned);
            e
        };
        assert!(is_throttling(&e(Some(503), Some("SlowDown"))));
        assert!(is_throttling(&e(Some(429), None)));
        assert!(is_throttling(&e(None, Some("RequestLimitExceeded"))));
        assert!(!is_throttling(&e(Some(500), Some("InternalError"))));
        assert!(!is_throttling(&e(None, None)));
        let refused = SourceError::transient("connect")
            .with_source(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_throttling(&refused));
        let reset = SourceError::transient("reset")
            .with_source(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!is_throttling(&reset));
    }

    proptest! {
        /// Whatever the link and the throttling, the target stays within [min, cap], never
        /// grows after a throttling cut, and only changes by doubling or halving.
        #[test]
        fn target_stays_within_bounds(
            start in 1usize..40,
            max in 1usize..64,
            steps in proptest::collection::vec((0u64..400, 0u64..50_000_000, any::<bool>(), 0usize..64), 1..300),
        ) {
            let cfg = AutoJobs { start, max, ..cfg() };
            let mut t = JobsTuner::new(cfg);
            let cap = max.max(1);
            let (mut now, mut done) = (Duration::ZERO, 0u64);
            let mut throttled_at: Option<usize> = None;
            for (dt, bytes, throttle, in_flight) in steps {
                now += Duration::from_millis(dt);
                done += bytes;
                let before = t.target();
                let c = if throttle {
                    t.on_throttled(now, t.epoch(), in_flight)
                } else {
                    t.on_progress(now, done)
                };
                let after = t.target();
                prop_assert!((1..=cap).contains(&after), "{after} outside 1..={cap}");
                if let Some(c) = c {
                    prop_assert_eq!((c.from, c.to), (before, after));
                    prop_assert!(
                        after == before || after == (before * 2).min(cap) || after == (before / 2).max(1),
                        "{} → {}", before, after
                    );
                }
                if throttle && in_flight <= before {
                    throttled_at = Some(throttled_at.map_or(after, |m: usize| m.min(after)));
                }
                if throttle && in_flight > before {
                    prop_assert_eq!(after, before, "cut for connections above the target");
                }
                if let Some(m) = throttled_at {
                    prop_assert!(after <= m, "grew to {} after a cut to {}", after, m);
                }
                prop_assert!(t.peak() >= after);
            }
        }
    }
}
