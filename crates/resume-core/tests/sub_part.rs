//! Progress below the part (issue 15, part 2), against the mock source: parts far larger than
//! what a crash may lose, a crash (the download future dropped) or a cancellation inside a
//! part, then a resume that asks for the rest of the part only, and a saved beginning damaged
//! on disk that is caught and fetched again.

mod common;

use std::time::Duration;

use backend_mock::{Fault, FaultPlan};
use checkpoint::{CheckpointStore, FileCheckpointStore};
use common::{Fixture, KEY, cancel_when, last_progress, paused_runtime};
use resume_core::{CancellationToken, Event, PROGRESS_STEP};

const MIB: u64 = 1 << 20;

/// The ranges read since the log had `from` entries.
fn ranges_since(fx: &Fixture, from: usize) -> Vec<std::ops::Range<u64>> {
    fx.source.log()[from..]
        .iter()
        .map(|r| r.range.clone())
        .collect()
}

/// The one checkpoint the fixture's store holds.
#[test]
fn a_crash_inside_large_parts_loses_at_most_two_steps_per_part_in_flight() {
    for (sync, jobs, crash_at) in [
        (Some(Duration::from_secs(1)), 3u64, 5 * MIB + 12_345),
        (None, 3, 7 * MIB + 1),
        (Some(Duration::ZERO), 2, 3 * MIB),
    ] {
        let fx = Fixture::new(24 << 20, 15);
        let rt = paused_runtime();
        let dl = || {
            fx.downloader()
                .part_size(8 * MIB)
                .concurrency(jobs as usize)
                .sync_interval(sync)
        };
        rt.block_on(fx.crash_after(dl(), crash_at));
        let served = fx.source.bytes_served();
        let saved = fx.saved_checkpoint();
        assert!(saved.done.is_empty(), "no 8 MiB part can be done yet");
        assert!(
            !saved.partial.is_empty(),
            "{sync:?}: nothing below the part saved"
        );
        let from = fx.source.log().len();
        let report = rt.block_on(dl().download(KEY, &fx.dest)).unwrap();
        assert_eq!(fx.dest_bytes(), fx.content);
        assert_eq!(report.reused_bytes, saved.saved_bytes());
        let lost = served - report.reused_bytes;
        assert!(
            lost <= jobs * 2 * PROGRESS_STEP,
            "{sync:?}: served {served}, reused {}: lost {lost}",
            report.reused_bytes
        );
        // Each partial part resumes at its saved byte, pinned like any request.
        for (&i, p) in &saved.partial {
            let at = i * 8 * MIB + p.received;
            assert!(
                ranges_since(&fx, from).iter().any(|r| r.start == at),
                "part {i} not resumed at {at}: {:?}",
                ranges_since(&fx, from)
            );
        }
    }
}

#[test]
fn cancellation_inside_large_parts_keeps_every_byte_received() {
    let fx = Fixture::new(20 << 20, 16);
    let rt = paused_runtime();
    let token = CancellationToken::new();
    let dl = fx
        .downloader()
        .part_size(16 * MIB)
        .concurrency(2)
        .cancel_token(token.clone());
    let trigger = fx.source.crash_trigger_after_bytes(3 * MIB + 777);
    let err = rt.block_on(async {
        cancel_when(trigger, &token);
        dl.download(KEY, &fx.dest).await.unwrap_err()
    });
    assert!(matches!(err, resume_core::Error::Cancelled { .. }), "{err}");
    let last_done = last_progress(&fx.take_events()).unwrap();
    let served = fx.source.bytes_served();
    let saved = fx.saved_checkpoint();
    assert_eq!(
        saved.saved_bytes(),
        last_done,
        "every byte received is saved"
    );
    assert_eq!(served, last_done, "and nothing served was dropped");
    let report = rt
        .block_on(
            fx.downloader()
                .part_size(16 * MIB)
                .concurrency(2)
                .download(KEY, &fx.dest),
        )
        .unwrap();
    assert_eq!(fx.dest_bytes(), fx.content);
    assert_eq!(report.fetched_bytes + report.reused_bytes, 20 << 20);
    assert_eq!(report.reused_bytes, last_done);
}

/// A stop that lands after a part's last byte and before its body ends (the server has not
/// closed the response yet) keeps the part: it is recorded done, not dropped. Found by the crash
/// suite under load: a SIGINT lost exactly one part that progress had already counted.
#[test]
fn cancellation_between_a_parts_last_byte_and_the_end_of_its_body_keeps_the_part() {
    let fx = Fixture::new(8 << 20, 17);
    // The first request delivers all of part 0 and then never ends its body.
    fx.source
        .set_fault_plan(FaultPlan::new().on_request(0, Fault::Stall(4 * MIB)));
    let rt = paused_runtime();
    let token = CancellationToken::new();
    let dl = || fx.downloader().part_size(4 * MIB).concurrency(1);
    let trigger = fx.source.crash_trigger_after_bytes(4 * MIB);
    let err = rt.block_on(async {
        cancel_when(trigger, &token);
        dl().cancel_token(token.clone())
            .download(KEY, &fx.dest)
            .await
            .unwrap_err()
    });
    assert!(matches!(err, resume_core::Error::Cancelled { .. }), "{err}");
    let saved = fx.saved_checkpoint();
    assert_eq!(
        saved.saved_bytes(),
        4 * MIB,
        "part 0 arrived whole and is kept"
    );
    assert!(
        saved.done.contains_key(&0),
        "recorded done: {:?}",
        saved.done
    );
    fx.source.set_fault_plan(FaultPlan::new());
    let from = fx.source.log().len();
    let report = rt.block_on(dl().download(KEY, &fx.dest)).unwrap();
    assert_eq!(fx.dest_bytes(), fx.content);
    assert_eq!(report.reused_bytes, 4 * MIB);
    assert_eq!(ranges_since(&fx, from), vec![4 * MIB..8 * MIB]);
}

#[test]
fn a_saved_beginning_damaged_on_disk_is_fetched_again_and_the_file_is_exact() {
    let fx = Fixture::new(12 << 20, 17);
    let rt = paused_runtime();
    let store = FileCheckpointStore::beside(&fx.dest);
    let dl = || {
        fx.downloader()
            .checkpoint(FileCheckpointStore::beside(&fx.dest))
            .part_size(12 * MIB)
            .concurrency(1)
    };
    rt.block_on(fx.crash_after(dl(), 5 * MIB));
    let id = resume_core::checkpoint::CheckpointId {
        source: resume_core::RangeSource::identity(&fx.source),
        key: KEY.into(),
        version_id: None,
        range: Default::default(),
        destination: fx.dest.to_string_lossy().into_owned(),
    };
    let saved = store.load(&id).unwrap().unwrap().checkpoint;
    let p = saved.partial[&0];
    assert!(p.received >= 4 * MIB, "{p:?}");
    // Flip a byte inside the saved beginning.
    let part = fx.part_path();
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[(p.received / 2) as usize] ^= 0x40;
    std::fs::write(&part, bytes).unwrap();
    let from = fx.source.log().len();
    fx.take_events();
    let report = rt.block_on(dl().download(KEY, &fx.dest)).unwrap();
    assert_eq!(fx.dest_bytes(), fx.content);
    assert_eq!(
        report.fetched_bytes,
        12 << 20,
        "the part is fetched from its first byte"
    );
    assert_eq!(ranges_since(&fx, from)[0].start, 0);
    assert!(fx.take_events().iter().any(|e| matches!(
        e,
        Event::PartsDamaged { parts, .. } if parts == &[0]
    )));
}

/// On a multi-thread runtime (as `resume-get` runs) commits run on the blocking pool, back to
/// back, while the workers go on: crashes at many points, each resumed, never lose more than
/// two steps per part in flight and always end with the exact bytes.
#[test]
fn background_commits_on_a_multi_thread_runtime_bound_the_loss_at_every_crash() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (i, crash_at) in [MIB / 3, 2 * MIB + 5, 5 * MIB, 9 * MIB + 77, 13 * MIB]
        .into_iter()
        .enumerate()
    {
        let fx = Fixture::new(16 << 20, 20 + i as u64);
        let dl = || fx.downloader().part_size(8 * MIB).concurrency(2);
        let crashed = rt.block_on(async {
            let trigger = fx.source.crash_trigger_after_bytes(crash_at);
            let first = dl();
            tokio::time::timeout(Duration::from_secs(60), async {
                tokio::select! {
                    r = first.download(KEY, &fx.dest) => { r.unwrap(); false }
                    _ = trigger.fired() => true,
                }
            })
            .await
            .expect("the first run neither finished nor crashed within 60 s")
        });
        let served = fx.source.bytes_served();
        let second = dl();
        let report = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(60), second.download(KEY, &fx.dest)).await
            })
            .expect("the resume did not finish within 60 s")
            .unwrap();
        assert_eq!(fx.dest_bytes(), fx.content, "crash {i}");
        if crashed {
            let lost = served - report.reused_bytes;
            // The trigger fires after `crash_at` bytes; a worker may take a chunk or two more
            // before the drop lands on another thread.
            assert!(
                lost <= 2 * 2 * PROGRESS_STEP + 2 * 2 * 4096,
                "crash {i}: served {served}, reused {}: lost {lost}",
                report.reused_bytes
            );
        }
    }
}
