//! Sharing the tail (issue 15, `engine/share.rs`), against the mock source on a paused clock:
//! once every part is claimed, workers without a part take over the end of a part that
//! crawls (here: stalls mid-body), the part is recorded with the digests of all its bytes,
//! the file is exact, no byte is accepted twice, and a crash or an interrupt during the
//! shared tail keeps the promises of progress below the part.

mod common;

use std::ops::Range;
use std::time::Duration;

use backend_mock::{Fault, FaultPlan};
use common::{Fixture, KEY, cancel_when, last_progress, parts_done, paused_runtime};
use resume_core::{CancellationToken, PROGRESS_STEP};

const MIB: u64 = 1 << 20;
const PART: u64 = 8 * MIB;
const LEN: usize = 24 << 20;
const JOBS: usize = 3;
/// Where the stalled request's body stops, into its part.
const STALL_AT: u64 = MIB + 4096;

/// A fixture whose second read request (of 3, one per part, all claimed at once) stalls
/// after `STALL_AT` bytes until the idle timeout.
fn stalled(seed: u64) -> Fixture {
    let fx = Fixture::new(LEN, seed);
    fx.source
        .set_fault_plan(FaultPlan::new().on_request(1, Fault::Stall(STALL_AT)));
    fx
}

fn downloader(fx: &Fixture) -> resume_core::Downloader {
    fx.downloader()
        .part_size(PART)
        .concurrency(JOBS)
        .idle_timeout(Duration::from_secs(20))
}

/// The part the stalled request was for, and the ranges asked for within it afterwards.
fn stalled_part(fx: &Fixture) -> (Range<u64>, Vec<Range<u64>>) {
    let log = fx.source.log();
    let stalled = log[1].range.clone();
    let later = log[2..]
        .iter()
        .map(|r| r.range.clone())
        .filter(|r| r.start >= stalled.start && r.end <= stalled.end)
        .collect();
    (stalled, later)
}

#[test]
fn a_stalled_part_is_finished_by_the_idle_workers_and_recorded_with_all_its_bytes() {
    let fx = stalled(21);
    let rt = paused_runtime();
    let report = rt
        .block_on(downloader(&fx).download(KEY, &fx.dest))
        .unwrap();
    assert_eq!(fx.dest_bytes(), fx.content);
    assert_eq!(report.fetched_bytes, LEN as u64, "no byte accepted twice");
    assert!(
        report.crc64_verified,
        "the whole-object CRC-64 covers the shared part"
    );
    let (part, later) = stalled_part(&fx);
    let helpers: Vec<_> = later
        .iter()
        .filter(|r| r.start > part.start + STALL_AT)
        .collect();
    for r in &helpers {
        assert!(
            r.end - r.start <= 2 * PROGRESS_STEP,
            "a helper took more than 1 MiB: {r:?}"
        );
    }
    // The helpers' bytes are recorded only when the part completes, and the stalled owner
    // holds it open: they took the part's last MiB per connection not owning a part (2 of
    // the 3), then waited.
    let shared: u64 = helpers.iter().map(|r| r.end - r.start).sum();
    assert_eq!(shared, (JOBS as u64 - 1) * 2 * PROGRESS_STEP, "{later:?}");
    // The stalled owner resumed at its byte after its idle timeout, up to the helpers'.
    let resumed: Vec<_> = later
        .iter()
        .filter(|r| r.start == part.start + STALL_AT)
        .collect();
    assert_eq!(
        resumed,
        vec![&(part.start + STALL_AT..part.end - shared)],
        "{later:?}"
    );
    // Together the requests after the stall cover the rest of the part exactly once.
    let mut covered: Vec<_> = later.clone();
    covered.sort_by_key(|r| r.start);
    let mut at = part.start + STALL_AT;
    for r in covered {
        assert_eq!(r.start, at, "a gap or an overlap in {later:?}");
        at = r.end;
    }
    assert_eq!(at, part.end);
    // Each part recorded once, with the digest of its bytes (the checkpoint is gone at the
    // end; the part events say each part was done once).
    let done = parts_done(&fx.events());
    let mut sorted = done.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1, 2], "{done:?}");
}

#[test]
fn without_sharing_the_stalled_part_waits_for_its_idle_timeout_alone() {
    let fx = stalled(22);
    let rt = paused_runtime();
    rt.block_on(downloader(&fx).share_tail(false).download(KEY, &fx.dest))
        .unwrap();
    assert_eq!(fx.dest_bytes(), fx.content);
    let (part, later) = stalled_part(&fx);
    assert_eq!(later, vec![part.start + STALL_AT..part.end]);
}

#[test]
fn a_crash_during_the_shared_tail_loses_at_most_one_mib_per_worker() {
    // Served before the stall: two whole parts and the stalled part's first MiB; then the
    // helpers' ranges. Crash at several points among them.
    for extra in [100_000u64, 700_000, 1_900_000, 3_300_000] {
        let fx = stalled(23);
        let rt = paused_runtime();
        let crash_at = 2 * PART + STALL_AT + extra;
        rt.block_on(fx.crash_after(downloader(&fx), crash_at));
        let served = fx.source.bytes_served();
        let saved = fx.saved_checkpoint();
        fx.source.set_fault_plan(FaultPlan::new());
        let report = rt
            .block_on(downloader(&fx).download(KEY, &fx.dest))
            .unwrap();
        assert_eq!(fx.dest_bytes(), fx.content, "crash after {crash_at}");
        assert_eq!(report.reused_bytes, saved.saved_bytes());
        let lost = served - report.reused_bytes;
        assert!(
            lost <= JOBS as u64 * 2 * PROGRESS_STEP,
            "crash after {crash_at}: served {served}, reused {}: lost {lost}",
            report.reused_bytes
        );
    }
}

#[test]
fn an_interrupt_during_the_shared_tail_counts_only_what_it_keeps() {
    let fx = stalled(24);
    let rt = paused_runtime();
    let token = CancellationToken::new();
    let dl = downloader(&fx).cancel_token(token.clone());
    let trigger = fx
        .source
        .crash_trigger_after_bytes(2 * PART + STALL_AT + 1_500_000);
    let err = rt.block_on(async {
        cancel_when(trigger, &token);
        dl.download(KEY, &fx.dest).await.unwrap_err()
    });
    assert!(matches!(err, resume_core::Error::Cancelled { .. }), "{err}");
    let last_done = last_progress(&fx.take_events()).unwrap();
    let saved = fx.saved_checkpoint();
    assert_eq!(saved.saved_bytes(), last_done, "the count is what is kept");
    let served = fx.source.bytes_served();
    let helpers = (JOBS - 1) as u64;
    assert!(
        served - last_done <= helpers * 2 * PROGRESS_STEP,
        "served {served}, kept {last_done}: only helpers' bytes may be dropped"
    );
    fx.source.set_fault_plan(FaultPlan::new());
    let report = rt
        .block_on(downloader(&fx).download(KEY, &fx.dest))
        .unwrap();
    assert_eq!(fx.dest_bytes(), fx.content);
    assert_eq!(report.reused_bytes, last_done);
    assert_eq!(report.fetched_bytes + report.reused_bytes, LEN as u64);
}
