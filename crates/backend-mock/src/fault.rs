//! Fault plans: which request fails how, decided up front and replayable from a seed.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use resume_core::SourceErrorKind;

use crate::rng::{SplitMix64, mix64};

/// One misbehaviour the mock injects into one request.
///
/// Exists so that every way a real object store (or the network in front of it) can fail a
/// ranged read can be provoked on purpose, one request at a time. Faults that "lie" (a wrong
/// range, a missing or extra byte, another etag) return `Ok` from the API: noticing them is
/// the engine's job.
///
/// For [`MockSource::stat`](crate::MockSource) only the faults that make sense before a
/// response are applied: `Status`, `Reset`, `Delay`, `ChangeObject`, `ReplaceObject` and
/// `WrongEtag` (stat reports another etag); the others are logged and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The request fails with this kind and protocol status before any body, e.g.
    /// `Status(Transient, 503)`. The server code is derived from the status
    /// (500 `InternalError`, 503 `SlowDown`, 408 `RequestTimeout`, 429 `TooManyRequests`,
    /// 403 `AccessDenied`, 404 `NoSuchKey`, 412 `PreconditionFailed`, 416 `InvalidRange`).
    /// [`Fault::http`] picks the kind from the status.
    Status(SourceErrorKind, u16),
    /// The connection is reset before the response: a `Transient` error "connection reset".
    Reset,
    /// The response is correct, but its body yields this many bytes (at most the range's
    /// length) and then a `Transient` error.
    ResetAfter(u64),
    /// The response is correct, but its body yields this many bytes (at most the range's
    /// length) and then ends *without* an error, like a connection closed early. The engine
    /// must notice the missing bytes.
    ShortBody(u64),
    /// The response declares and serves a shifted range of the same length (one byte later,
    /// or one byte earlier when the requested range ends at the end of the object; when the
    /// request covers the whole object, `1..size`).
    WrongRange,
    /// The response ignores the range, like an HTTP `200`: it declares `0..size` and streams
    /// the whole object.
    IgnoreRange,
    /// The response declares an etag other than the object's, while serving its bytes.
    WrongEtag,
    /// The body yields the requested range followed by this many more bytes (the object's
    /// bytes after the range, wrapping around to its start), while declaring the requested
    /// range.
    ExtraBytes(u64),
    /// The response declares and serves the requested range, but the body byte this many
    /// bytes into the response (if it has that many) is flipped (xor 0x01): corruption on
    /// the way that no length or range check can see. Only a checksum catches it.
    FlipByte(u64),
    /// The response is delayed by this long (`tokio::time::sleep`, so paused-time tests stay
    /// deterministic), then served normally.
    Delay(Duration),
    /// The body yields this many bytes (at most the range's length) and then never yields
    /// again (pends forever), to exercise idle-read timeouts.
    Stall(u64),
    /// Just before this request is served, the object is replaced by a new version: new
    /// pseudo-random content of the same length (derived from the old etag and the new
    /// generation), new etag, new generation. The request is then served against the new
    /// version, so an `If-Match` with the old etag fails with `Changed` (412). Both versions'
    /// bytes stay available through [`MockSource::history`](crate::MockSource::history).
    ChangeObject,
    /// Like [`Fault::ChangeObject`], with this exact new content (of any length).
    ReplaceObject(Bytes),
}

impl Fault {
    /// A `Status` fault with the kind an HTTP backend maps `status` to: 5xx, 408 and 429
    /// `Transient`, 401/403 `Denied`, 404 `NotFound`, 412 `Changed`, 416 `InvalidRange`,
    /// anything else `Other`.
    pub fn http(status: u16) -> Self {
        let kind = match status {
            408 | 429 | 500..=599 => SourceErrorKind::Transient,
            401 | 403 => SourceErrorKind::Denied,
            404 => SourceErrorKind::NotFound,
            412 => SourceErrorKind::Changed,
            416 => SourceErrorKind::InvalidRange,
            _ => SourceErrorKind::Other,
        };
        Fault::Status(kind, status)
    }
}

/// The server error code the mock reports with `status`, as OSS / S3 would.
pub(crate) fn error_code(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "InvalidArgument",
        401 | 403 => "AccessDenied",
        404 => "NoSuchKey",
        408 => "RequestTimeout",
        409 => "OperationAborted",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        429 => "TooManyRequests",
        500 => "InternalError",
        501 => "NotImplemented",
        502 => "BadGateway",
        503 => "SlowDown",
        504 => "GatewayTimeout",
        _ => return None,
    })
}

/// Per-read-request probabilities of each fault in a random [`FaultPlan`].
///
/// Exists so a property test can say "about 10% of reads fail somehow" and let a seed decide
/// which ones and how. Each field is the probability that one read request gets that fault;
/// the remainder up to 1 is the probability of no fault (if the fields sum to more than 1
/// they are scaled down to sum to 1). Build with struct-update syntax:
/// `FaultRates { reset: 0.05, short_body: 0.05, ..FaultRates::default() }`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRates {
    /// A retryable status before the body: 500, 503, 408 or 429 (drawn uniformly).
    pub transient_status: f64,
    /// A fatal status before the body: 403 `Denied` or 404 `NotFound` (drawn uniformly).
    pub fatal_status: f64,
    /// [`Fault::Reset`].
    pub reset: f64,
    /// [`Fault::ResetAfter`] with a byte count drawn from `0..len`.
    pub reset_after: f64,
    /// [`Fault::ShortBody`] with a byte count drawn from `0..len` (always short).
    pub short_body: f64,
    /// [`Fault::WrongRange`].
    pub wrong_range: f64,
    /// [`Fault::IgnoreRange`].
    pub ignore_range: f64,
    /// [`Fault::WrongEtag`].
    pub wrong_etag: f64,
    /// [`Fault::ExtraBytes`] with a byte count drawn from `1..=16`.
    pub extra_bytes: f64,
    /// [`Fault::Delay`] with a duration drawn from `0..=max_delay` (nanosecond resolution).
    pub delay: f64,
    /// Upper bound of drawn delays.
    pub max_delay: Duration,
    /// [`Fault::Stall`] with a byte count drawn from `0..len`.
    pub stall: f64,
    /// [`Fault::ChangeObject`].
    pub change_object: f64,
    /// At most this many faults are drawn over the plan's life, so a download that retries
    /// always finishes eventually. Explicit faults (`on_request`) do not count and are not
    /// limited.
    pub max_faults: u32,
}

impl Default for FaultRates {
    /// No faults; `max_delay` 100 ms; `max_faults` 64.
    fn default() -> Self {
        Self {
            transient_status: 0.0,
            fatal_status: 0.0,
            reset: 0.0,
            reset_after: 0.0,
            short_body: 0.0,
            wrong_range: 0.0,
            ignore_range: 0.0,
            wrong_etag: 0.0,
            extra_bytes: 0.0,
            delay: 0.0,
            max_delay: Duration::from_millis(100),
            stall: 0.0,
            change_object: 0.0,
            max_faults: 64,
        }
    }
}

impl FaultRates {
    /// Probability `p` of a fault a correct engine recovers from by retrying, split evenly
    /// between `transient_status`, `reset`, `reset_after` and `short_body`.
    pub fn transient(p: f64) -> Self {
        let q = p / 4.0;
        Self {
            transient_status: q,
            reset: q,
            reset_after: q,
            short_body: q,
            ..Self::default()
        }
    }
}

/// The seeded part of a plan.
#[derive(Debug, Clone, PartialEq)]
struct RandomFaults {
    seed: u64,
    rates: FaultRates,
}

/// Which requests fail how: a replayable schedule of [`Fault`]s.
///
/// Exists so that a failing engine test can be replayed exactly: the plan is plain data,
/// decided by request number, not by timing.
///
/// **Numbering.** `read_range` and `stat` calls are numbered separately, each from 0 at the
/// creation of the [`MockSource`](crate::MockSource), counting every call (including ones
/// that fail). Installing another plan does not reset the numbering, so to fault "the 3rd
/// read from now" use `source.read_requests() + 2`.
///
/// **Explicit faults** (`on_request`, `on_stat`, `change_object_after`): one fault per
/// request number; a later call for the same number replaces the earlier one.
///
/// **Random faults** (`random`): for read request `n` the decision is drawn from a
/// [`SplitMix64`] seeded with a mix of the seed and `n`, so it depends on nothing but the seed,
/// `n` and the requested range's length; the same seed and the same request sequence give the
/// same faults. Draws stop once `max_faults` random faults have been injected. Explicit faults
/// take precedence over random ones. Stat requests never get random faults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    reads: BTreeMap<u64, Fault>,
    stats: BTreeMap<u64, Fault>,
    random: Option<RandomFaults>,
}

impl FaultPlan {
    /// A plan with no faults; add some with [`FaultPlan::on_request`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A plan drawing faults for read requests from `seed` with the given rates.
    pub fn random(seed: u64, rates: FaultRates) -> Self {
        Self {
            random: Some(RandomFaults { seed, rates }),
            ..Self::default()
        }
    }

    /// Injects `fault` into read request `n` (0-based, counting every `read_range` call).
    pub fn on_request(mut self, n: u64, fault: Fault) -> Self {
        self.reads.insert(n, fault);
        self
    }

    /// Injects `fault` into stat request `n` (0-based, counting every `stat` call).
    pub fn on_stat(mut self, n: u64, fault: Fault) -> Self {
        self.stats.insert(n, fault);
        self
    }

    /// Changes the object just before read request `m` is served, i.e. after `m` read
    /// requests have been made: shorthand for `on_request(m, Fault::ChangeObject)`.
    pub fn change_object_after(self, m: u64) -> Self {
        self.on_request(m, Fault::ChangeObject)
    }

    /// The seed of the random part, if any: print it when a property test fails.
    pub fn seed(&self) -> Option<u64> {
        self.random.as_ref().map(|r| r.seed)
    }

    /// The bound on random faults, if the plan has a random part.
    pub fn max_faults(&self) -> Option<u32> {
        self.random.as_ref().map(|r| r.rates.max_faults)
    }

    /// The explicit fault for read request `n`.
    pub(crate) fn explicit_read(&self, n: u64) -> Option<&Fault> {
        self.reads.get(&n)
    }

    /// The explicit fault for stat request `n`.
    pub(crate) fn explicit_stat(&self, n: u64) -> Option<&Fault> {
        self.stats.get(&n)
    }

    /// Whether a random part may still inject faults after `injected` random faults.
    pub(crate) fn random_budget_left(&self, injected: u32) -> bool {
        self.random
            .as_ref()
            .is_some_and(|r| injected < r.rates.max_faults)
    }

    /// The random fault for read request `n` of a range of `len` bytes, ignoring the budget.
    /// A pure function of the seed, `n` and `len`.
    pub(crate) fn draw_read(&self, n: u64, len: u64) -> Option<Fault> {
        let RandomFaults { seed, rates } = self.random.as_ref()?;
        let mut rng = SplitMix64::new(mix64(seed ^ mix64(n.wrapping_add(0xA076_1D64_78BD_642F))));
        let table: [(f64, u8); 12] = [
            (rates.transient_status, 0),
            (rates.fatal_status, 1),
            (rates.reset, 2),
            (rates.reset_after, 3),
            (rates.short_body, 4),
            (rates.wrong_range, 5),
            (rates.ignore_range, 6),
            (rates.wrong_etag, 7),
            (rates.extra_bytes, 8),
            (rates.delay, 9),
            (rates.stall, 10),
            (rates.change_object, 11),
        ];
        let clean = |p: f64| if p.is_finite() && p > 0.0 { p } else { 0.0 };
        let total: f64 = table.iter().map(|&(p, _)| clean(p)).sum();
        let scale = if total > 1.0 { total } else { 1.0 };
        let u = rng.unit_f64() * scale;
        let mut acc = 0.0;
        let mut chosen = None;
        for &(p, which) in &table {
            let p = clean(p);
            if p == 0.0 {
                continue;
            }
            acc += p;
            if u < acc {
                chosen = Some(which);
                break;
            }
        }
        Some(match chosen? {
            0 => {
                let status = [500, 503, 408, 429][rng.below(4) as usize];
                Fault::Status(SourceErrorKind::Transient, status)
            }
            1 => Fault::http([403, 404][rng.below(2) as usize]),
            2 => Fault::Reset,
            3 => Fault::ResetAfter(rng.below(len)),
            4 => Fault::ShortBody(rng.below(len)),
            5 => Fault::WrongRange,
            6 => Fault::IgnoreRange,
            7 => Fault::WrongEtag,
            8 => Fault::ExtraBytes(1 + rng.below(16)),
            9 => {
                let max = u64::try_from(rates.max_delay.as_nanos()).unwrap_or(u64::MAX);
                Fault::Delay(Duration::from_nanos(rng.below(max.saturating_add(1))))
            }
            10 => Fault::Stall(rng.below(len)),
            _ => Fault::ChangeObject,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_maps_status_to_kind() {
        assert_eq!(
            Fault::http(503),
            Fault::Status(SourceErrorKind::Transient, 503)
        );
        assert_eq!(
            Fault::http(403),
            Fault::Status(SourceErrorKind::Denied, 403)
        );
        assert_eq!(
            Fault::http(404),
            Fault::Status(SourceErrorKind::NotFound, 404)
        );
        assert_eq!(
            Fault::http(429),
            Fault::Status(SourceErrorKind::Transient, 429)
        );
        assert_eq!(error_code(503), Some("SlowDown"));
        assert_eq!(error_code(500), Some("InternalError"));
    }

    #[test]
    fn draws_are_pure_functions_of_seed_and_request() {
        let plan = FaultPlan::random(42, FaultRates::transient(0.5));
        let a: Vec<_> = (0..200).map(|n| plan.draw_read(n, 1000)).collect();
        let b: Vec<_> = (0..200).map(|n| plan.draw_read(n, 1000)).collect();
        assert_eq!(a, b);
        // Drawing out of order gives the same answers.
        assert_eq!(plan.draw_read(150, 1000), a[150]);
        let faults = a.iter().filter(|f| f.is_some()).count();
        assert!((60..140).contains(&faults), "{faults} faults out of 200");
        let other = FaultPlan::random(43, FaultRates::transient(0.5));
        let c: Vec<_> = (0..200).map(|n| other.draw_read(n, 1000)).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn rates_above_one_are_scaled_and_never_panic() {
        let rates = FaultRates {
            reset: 3.0,
            short_body: f64::NAN,
            stall: -1.0,
            ..FaultRates::default()
        };
        let plan = FaultPlan::random(1, rates);
        for n in 0..50 {
            assert_eq!(plan.draw_read(n, 0), Some(Fault::Reset));
        }
        assert_eq!(
            FaultPlan::random(1, FaultRates::default()).draw_read(0, 10),
            None
        );
        assert_eq!(FaultPlan::new().draw_read(0, 10), None);
    }

    #[test]
    fn explicit_entries_replace_each_other() {
        let plan = FaultPlan::new()
            .on_request(3, Fault::Reset)
            .on_request(3, Fault::WrongEtag)
            .change_object_after(5);
        assert_eq!(plan.explicit_read(3), Some(&Fault::WrongEtag));
        assert_eq!(plan.explicit_read(5), Some(&Fault::ChangeObject));
        assert_eq!(plan.explicit_read(4), None);
        assert!(!plan.random_budget_left(0));
    }
}
