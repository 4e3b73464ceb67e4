//! Sharing the tail: once every part is claimed, a worker left without one takes the end of
//! the part in flight that will take longest to finish, so the last seconds of a download run
//! on every connection instead of on the few that drew the last parts.
//!
//! On a link shared by N connections each part moves at about 1/N of the link; when the queue
//! runs dry the workers that finish first go idle and the link empties while the last parts
//! crawl to their end (BENCHMARKS.md, WAN: ~1 s of a 12 s download under bbr, 4–5 s under cubic
//! at 1 % loss, where a connection carries ~3 Mbit/s). aria2c splits its largest remaining
//! segment the same way.
//!
//! A part in flight is a *flight*: contiguous *segments* from the owner's (the worker that
//! claimed the part; it hashes from the part's first byte) to the part's end. A helper takes
//! the end of a segment (at most [`MAX_SHARE`], at most half of what is left), which lowers
//! that segment's *limit*; the segment's worker accepts no byte at or past its limit (checked
//! under the same lock, so a byte is never fetched twice) and ends its request there.
//! Segments are split again while they are worth it (a helper's too).
//!
//! What is recorded does not change: only a part's beginning (from its first byte) and whole
//! parts. Helpers do not hash: when the last segment of a part is done, whoever finished it
//! re-reads the helpers' bytes from the temp file (page cache) through the owner's hasher, so
//! the part's BLAKE3, CRC-64 and the plan's CRCs cover every byte exactly as if one worker had
//! received them, and the part is recorded done. The owner, done with its segment first,
//! records its beginning up to its limit and waits for that record before it helps elsewhere.
//! So a `kill -9` still loses at most 1 MiB per worker: an owner's unrecorded bytes as before,
//! or a helper's segment (at most [`MAX_SHARE`]). Ctrl-C keeps every owner's bytes; a helper's
//! bytes beyond a gap the owner had not reached cannot be described by a beginning and are not
//! kept (at most [`MAX_SHARE`] per helper, and only during the shared tail): the interrupt's
//! count of saved bytes leaves them out ([`Tail::unsaved`]).
//!
//! A split is worth a request only where the link is slow for the bytes left: a segment whose
//! rate, measured since its response, leaves more than [`MIN_ETA`] and four requests' latency
//! to go. On loopback or a fast server a part ends in milliseconds and nothing is split.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::PROGRESS_STEP;
use super::lock;
use crate::digest::PartHasher;

/// The most one helper takes: its bytes are recorded only when the part completes, so this is
/// what a `kill -9` can lose per helper, the same as per owner (two progress steps).
pub(super) const MAX_SHARE: u64 = 2 * PROGRESS_STEP;
/// Nothing smaller is split off (a request costs a round trip); a segment is split only when
/// at least twice this is left.
pub(super) const MIN_SHARE: u64 = 64 << 10;
/// A segment's rate is read only after this long since its response.
const OBSERVE: Duration = Duration::from_millis(100);
/// A segment is split only if what it has left would take longer than this at its rate (and
/// longer than four requests' latency).
pub(super) const MIN_ETA: Duration = Duration::from_millis(200);
/// How often a worker without a part looks for one to share.
pub(super) const POLL: Duration = Duration::from_millis(50);

/// One segment of a part in flight, held by one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Share {
    pub(super) part: u64,
    /// 0: the owner's; helpers' in the order they were taken.
    segment: usize,
}

#[derive(Debug)]
struct Segment {
    start: u64,
    /// Bytes before this are accepted (object offset).
    pos: u64,
    /// The worker accepts no byte at or past this; lowered when a helper takes the rest.
    limit: u64,
    done: bool,
    /// When the current response arrived, and `pos` then: the segment's rate.
    since: Option<(Instant, u64)>,
}

struct Flight {
    /// The part's object range.
    range: Range<u64>,
    segments: Vec<Segment>,
    /// The owner's hasher once its segment is done and helpers' are not.
    parked: Option<Box<PartHasher>>,
}

/// What finishing a segment leaves to its worker.
pub(super) enum Finished {
    /// The part is complete: hash `reread` (the helpers' bytes, object offsets) from the temp
    /// file through `hasher`, then record the part.
    Part {
        // Boxed: a hasher holds a few KiB of state, `Pending` nothing.
        hasher: Box<PartHasher>,
        reread: Range<u64>,
    },
    /// Other segments are still being fetched; the last to finish completes the part.
    Pending,
}

/// The parts in flight of one attempt.
pub(super) struct Tail {
    enabled: bool,
    /// The attempt's workers (fewer than its connections when there are fewer parts).
    workers: AtomicUsize,
    flights: Mutex<BTreeMap<u64, Flight>>,
}

impl Tail {
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            workers: AtomicUsize::new(usize::MAX),
            flights: Mutex::new(BTreeMap::new()),
        }
    }

    /// The attempt runs `n` workers.
    pub(super) fn set_workers(&self, n: usize) {
        self.workers.store(n, Ordering::Relaxed);
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// `part` (object range `range`) was claimed: its owner's segment is the whole part.
    pub(super) fn own(&self, part: u64, range: Range<u64>) -> Share {
        let segment = Segment {
            start: range.start,
            pos: range.start,
            limit: range.end,
            done: false,
            since: None,
        };
        lock(&self.flights).insert(
            part,
            Flight {
                range,
                segments: vec![segment],
                parked: None,
            },
        );
        Share { part, segment: 0 }
    }

    fn with<R>(&self, share: Share, f: impl FnOnce(&mut Segment) -> R) -> Option<R> {
        let mut flights = lock(&self.flights);
        let segment = flights
            .get_mut(&share.part)?
            .segments
            .get_mut(share.segment)?;
        Some(f(segment))
    }

    /// Where the segment's bytes end now (`fallback` once its part is complete).
    pub(super) fn limit(&self, share: Share, fallback: u64) -> u64 {
        self.with(share, |s| s.limit).unwrap_or(fallback)
    }

    /// The segment's worker is at `pos` (a saved beginning, or a response that started over).
    pub(super) fn set_pos(&self, share: Share, pos: u64) {
        self.with(share, |s| {
            s.pos = pos;
            s.since = None;
        });
    }

    /// A response arrived: the segment's rate is measured from now.
    pub(super) fn responded(&self, share: Share) {
        self.with(share, |s| s.since = Some((Instant::now(), s.pos)));
    }

    /// The worker at `cur` received `n` bytes: how many of them it may accept (fewer when a
    /// helper took the rest of its segment meanwhile).
    pub(super) fn accept(&self, share: Share, cur: u64, n: u64) -> u64 {
        self.with(share, |s| {
            let n = n.min(s.limit.saturating_sub(cur));
            s.pos = cur + n;
            n
        })
        .unwrap_or(n)
    }

    /// Takes the end of the segment that will take longest to finish, if one is worth it:
    /// its share and its object range. `latency` is the requests' mean time to a response;
    /// `connections` how many workers may fetch at once.
    ///
    /// Helpers' bytes are recorded only when their part completes, and a helper may finish
    /// several shares of a part whose owner is still going; so all helpers' shares of parts
    /// not complete stay within [`MAX_SHARE`] per connection that is not an owner fetching its
    /// part. With each such owner's unrecorded bytes (at most 1 MiB), a `kill -9` loses at
    /// most `connections × 1 MiB`.
    pub(super) fn take(
        &self,
        latency: Option<Duration>,
        connections: usize,
    ) -> Option<(Share, Range<u64>)> {
        if !self.enabled {
            return None;
        }
        let now = Instant::now();
        let floor = MIN_ETA.max(latency.unwrap_or_default() * 4);
        let mut flights = lock(&self.flights);
        let connections = connections.min(self.workers.load(Ordering::Relaxed));
        let owners = flights.values().filter(|f| !f.segments[0].done).count();
        let shared: u64 = flights
            .values()
            .flat_map(|f| &f.segments[1..])
            .map(|s| s.limit - s.start)
            .sum();
        let budget = (connections.saturating_sub(owners) as u64 * MAX_SHARE).saturating_sub(shared);
        if budget < MIN_SHARE {
            return None;
        }
        // The best candidate: (eta, bytes left, part, segment).
        let mut best: Option<(Duration, u64, u64, usize)> = None;
        for (&part, flight) in flights.iter() {
            for (i, s) in flight.segments.iter().enumerate() {
                let left = s.limit.saturating_sub(s.pos);
                let Some((at, from)) = s.since else { continue };
                let elapsed = now.saturating_duration_since(at);
                if s.done || left < 2 * MIN_SHARE || elapsed < OBSERVE {
                    continue;
                }
                let got = s.pos.saturating_sub(from);
                let eta = if got == 0 {
                    Duration::MAX
                } else {
                    elapsed.mul_f64(left as f64 / got as f64)
                };
                if eta < floor {
                    continue;
                }
                if best.is_none_or(|(e, l, _, _)| (eta, left) > (e, l)) {
                    best = Some((eta, left, part, i));
                }
            }
        }
        let (_, left, part, i) = best?;
        let flight = flights.get_mut(&part)?;
        let victim = &mut flight.segments[i];
        let end = victim.limit;
        let start = end - (left / 2).min(MAX_SHARE).min(budget);
        victim.limit = start;
        flight.segments.push(Segment {
            start,
            pos: start,
            limit: end,
            done: false,
            since: None,
        });
        let share = Share {
            part,
            segment: flight.segments.len() - 1,
        };
        Some((share, start..end))
    }

    /// Whether any segment is still being fetched (a worker without a part may yet help).
    pub(super) fn busy(&self) -> bool {
        lock(&self.flights)
            .values()
            .any(|f| f.segments.iter().any(|s| !s.done))
    }

    /// The segment's bytes are all written. The owner hands over its hasher.
    pub(super) fn finish(&self, share: Share, hasher: Option<PartHasher>) -> Finished {
        let mut flights = lock(&self.flights);
        let Some(flight) = flights.get_mut(&share.part) else {
            return Finished::Pending;
        };
        flight.segments[share.segment].done = true;
        if let Some(h) = hasher {
            flight.parked = Some(Box::new(h));
        }
        if flight.parked.is_none() || flight.segments.iter().any(|s| !s.done) {
            return Finished::Pending;
        }
        let flight = flights.remove(&share.part).expect("looked up above");
        Finished::Part {
            hasher: flight.parked.expect("checked above"),
            reread: flight.segments[0].limit..flight.range.end,
        }
    }

    /// Bytes helpers received for parts not complete: no record can describe them, so an
    /// interrupted attempt does not keep them.
    pub(super) fn unsaved(&self) -> u64 {
        lock(&self.flights).values().map(helpers_received).sum()
    }
}

fn helpers_received(f: &Flight) -> u64 {
    f.segments[1..].iter().map(|s| s.pos - s.start).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::CrcSet;

    fn responded_long_ago(tail: &Tail, share: Share) {
        tail.with(share, |s| {
            s.since = Some((Instant::now() - Duration::from_secs(1), s.pos));
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_segment_gives_its_end_to_a_helper_and_the_last_finisher_completes_the_part() {
        let tail = Tail::new(true);
        let owner = tail.own(3, 100..100 + (4 << 20));
        assert_eq!(
            tail.take(None, 8),
            None,
            "no response yet: nothing to measure"
        );
        tail.responded(owner);
        tokio::time::advance(Duration::from_secs(1)).await;
        // 256 KiB in a second: 3.75 MiB left takes 15 s.
        assert_eq!(tail.accept(owner, 100, 256 << 10), 256 << 10);
        let (helper, range) = tail.take(None, 8).expect("a slow part is shared");
        assert_ne!(helper.segment, 0);
        assert_eq!(range, 100 + (4 << 20) - MAX_SHARE..100 + (4 << 20));
        assert_eq!(tail.limit(owner, 0), range.start);
        // The owner may not accept a byte of the helper's.
        let at = range.start - 10;
        assert_eq!(tail.accept(owner, at, 4096), 10);
        assert!(matches!(tail.finish(helper, None), Finished::Pending,));
        match tail.finish(owner, Some(PartHasher::new(CrcSet::default()))) {
            Finished::Part { reread, .. } => assert_eq!(reread, range),
            Finished::Pending => panic!("every segment is done"),
        }
        assert!(!tail.busy());
    }

    #[tokio::test(start_paused = true)]
    async fn an_owner_done_first_parks_its_hasher_and_a_helper_is_split_again() {
        let tail = Tail::new(true);
        let end = 1u64 << 20;
        let owner = tail.own(0, 0..end);
        tail.responded(owner);
        tokio::time::advance(Duration::from_secs(1)).await;
        tail.accept(owner, 0, 1000);
        let (a, ra) = tail.take(None, 8).expect("shared");
        let half = (end - 1000) / 2;
        assert_eq!(
            ra,
            end - half..end,
            "half of what is left (under MAX_SHARE)"
        );
        // The helper's response came a second ago and nothing since: it is the slowest.
        responded_long_ago(&tail, a);
        let (b, rb) = tail
            .take(None, 8)
            .expect("the helper's segment is split again");
        assert_eq!(rb, end - half / 2..end);
        assert_eq!(tail.limit(a, 0), rb.start);
        assert!(matches!(
            tail.finish(owner, Some(PartHasher::new(CrcSet::default()))),
            Finished::Pending
        ));
        assert!(matches!(tail.finish(a, None), Finished::Pending));
        assert!(tail.busy());
        match tail.finish(b, None) {
            Finished::Part { reread, .. } => assert_eq!(reread, ra.start..end),
            Finished::Pending => panic!("every segment is done"),
        }
        assert!(!tail.busy());
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_shared_when_it_would_end_soon_or_is_small_or_sharing_is_off() {
        let tail = Tail::new(true);
        let owner = tail.own(0, 0..8 << 20);
        tail.responded(owner);
        tokio::time::advance(Duration::from_millis(150)).await;
        // 7.9 MiB in 150 ms: the remaining 100 KiB take 2 ms.
        tail.accept(owner, 0, (8 << 20) - 100_000);
        assert_eq!(tail.take(None, 8), None, "ends in 2 ms");
        let slow = tail.own(1, 0..(2 * MIN_SHARE - 1));
        tail.responded(slow);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(tail.take(None, 8), None, "under two shares left");
        // A fast segment is still worth sharing when requests are even slower: not here.
        let fast = tail.own(2, 0..4 << 20);
        tail.responded(fast);
        tokio::time::advance(Duration::from_secs(1)).await;
        tail.accept(fast, 0, 3 << 20);
        assert_eq!(
            tail.take(Some(Duration::from_millis(200)), 8),
            None,
            "1 MiB left at 3 MiB/s: 0.33 s, under four requests of 0.2 s"
        );
        assert!(tail.take(Some(Duration::from_millis(50)), 8).is_some());
        let off = Tail::new(false);
        let o = off.own(0, 0..64 << 20);
        off.responded(o);
        tokio::time::advance(Duration::from_secs(1)).await;
        off.accept(o, 0, 1);
        assert_eq!(off.take(None, 8), None);
    }

    #[tokio::test(start_paused = true)]
    async fn helpers_shares_of_incomplete_parts_stay_within_a_mib_per_connection_not_owning() {
        let tail = Tail::new(true);
        let owner = tail.own(0, 0..64 << 20);
        tail.responded(owner);
        tokio::time::advance(Duration::from_secs(1)).await;
        tail.accept(owner, 0, 1000);
        // Three connections, one of them the owner's: two MiB for helpers, however many
        // shares they finish.
        let mut taken = 0;
        while let Some((share, range)) = tail.take(None, 3) {
            taken += range.end - range.start;
            tail.accept(share, range.start, range.end - range.start);
            assert!(matches!(tail.finish(share, None), Finished::Pending));
        }
        assert_eq!(taken, 2 * MAX_SHARE);
        assert_eq!(tail.unsaved(), 2 * MAX_SHARE);
        let lone = Tail::new(true);
        let owner = lone.own(0, 0..64 << 20);
        lone.responded(owner);
        tokio::time::advance(Duration::from_secs(1)).await;
        lone.accept(owner, 0, 1000);
        assert_eq!(lone.take(None, 1), None, "one connection: the owner's");
        lone.set_workers(1);
        assert_eq!(lone.take(None, 3), None, "one worker: the owner");
        lone.set_workers(2);
        assert!(lone.take(None, 3).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn helpers_bytes_of_an_incomplete_part_are_unsaved() {
        let tail = Tail::new(true);
        let owner = tail.own(0, 0..4 << 20);
        tail.responded(owner);
        tokio::time::advance(Duration::from_secs(1)).await;
        tail.accept(owner, 0, 1 << 20);
        let (helper, range) = tail.take(None, 8).expect("shared");
        tail.accept(helper, range.start, 300);
        assert_eq!(tail.unsaved(), 300);
        tail.accept(helper, range.start + 300, range.end - range.start - 300);
        assert!(matches!(tail.finish(helper, None), Finished::Pending));
        assert_eq!(
            tail.unsaved(),
            (range.end - range.start),
            "done, yet not recorded"
        );
        match tail.finish(owner, Some(PartHasher::new(CrcSet::default()))) {
            Finished::Part { .. } => {}
            Finished::Pending => panic!("every segment is done"),
        }
        assert_eq!(tail.unsaved(), 0, "the part is complete");
    }
}
