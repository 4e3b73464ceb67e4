//! One scenario per behaviour the engine promises; names say what each proves. The property
//! tests in `engine_props.rs` explore the same behaviours at random.

mod common;

use std::time::Duration;

use backend_mock::{Fault, FaultPlan, FaultyCheckpointStore, MockObject, StoreFaultPlan};
use checkpoint::{FileCheckpointStore, RangeSpec};
use common::{Fixture, KEY, parts_done, quick_retry};
use resume_core::{
    CancellationToken, Downloader, ErrorKind, Event, OnChange, PartSizeReason, RetryPolicy,
};

fn count<F: Fn(&Event) -> bool>(events: &[Event], f: F) -> usize {
    events.iter().filter(|e| f(e)).count()
}

#[tokio::test(start_paused = true)]
async fn downloads_exact_bytes_for_assorted_part_sizes_and_concurrency() {
    for (len, part, jobs) in [
        (100_000, 100 * 1024, 3), // one part, larger than the object
        (100_000, 7_777, 4),      // size not a multiple of the part size
        (65_536, 4096, 16),       // exact multiple
        (300, 1, 8),              // one-byte parts
        (1, 1, 1),                // one-byte object
    ] {
        let f = Fixture::new(len, len as u64);
        let r = f
            .downloader()
            .part_size(part)
            .concurrency(jobs)
            .download(KEY, &f.dest)
            .await
            .unwrap();
        assert_eq!(
            f.dest_bytes(),
            f.content,
            "len {len} part {part} jobs {jobs}"
        );
        assert!(r.crc64_verified);
        assert_eq!(r.parts, (len as u64).div_ceil(part));
        assert_eq!(f.files(), vec!["out.bin"], "only DEST may remain");
        assert!(f.store.ids().is_empty(), "checkpoint deleted after success");
    }
}

#[tokio::test(start_paused = true)]
async fn zero_byte_object_with_checkpoint_succeeds() {
    // Regression: an SDK errored on a zero-byte object with checkpointing on.
    let f = Fixture::new(0, 1);
    let r = f.downloader().download(KEY, &f.dest).await.unwrap();
    assert_eq!(f.dest_bytes(), Vec::<u8>::new());
    assert_eq!((r.parts, r.crc64), (0, 0));
    assert!(r.crc64_verified);
}

#[tokio::test(start_paused = true)]
async fn suffix_range_downloads_the_last_n_bytes() {
    // Regression: `bytes=-N` downloaded the first N+1 bytes.
    let f = Fixture::new(10_000, 2);
    let r = f
        .downloader()
        .part_size(1000)
        .range(RangeSpec::Suffix { len: 2500 })
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), &f.content[7500..]);
    assert_eq!(r.range, 7500..10_000);
    assert!(
        !r.crc64_verified,
        "a range cannot be checked against the whole-object CRC"
    );
}

#[tokio::test(start_paused = true)]
async fn range_progress_total_is_the_range_length_not_the_object_size() {
    // Regression: progress totals used the object size for a ranged download.
    let f = Fixture::new(10_000, 3);
    f.downloader()
        .part_size(999)
        .range(RangeSpec::Inclusive {
            first: 100,
            last: 1099,
        })
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), &f.content[100..1100]);
    let events = f.events();
    let started = events.iter().find_map(|e| match e {
        Event::Started { total_bytes, .. } => Some(*total_bytes),
        _ => None,
    });
    assert_eq!(started, Some(1000));
    let last_progress = events.iter().rev().find_map(|e| match e {
        Event::Progress {
            done_bytes,
            total_bytes,
        } => Some((*done_bytes, *total_bytes)),
        _ => None,
    });
    assert_eq!(last_progress, Some((1000, 1000)));
}

#[tokio::test(start_paused = true)]
async fn transient_faults_are_retried_and_broken_bodies_resume_where_they_broke() {
    let f = Fixture::new(40_000, 4);
    f.source.set_fault_plan(
        FaultPlan::new()
            .on_request(0, Fault::http(503))
            .on_request(1, Fault::Reset)
            .on_request(2, Fault::ResetAfter(3000))
            .on_request(3, Fault::ShortBody(1234))
            .on_request(5, Fault::http(500))
            .on_request(6, Fault::http(429))
            .on_request(7, Fault::http(408))
            .on_request(8, Fault::WrongRange)
            .on_request(9, Fault::ExtraBytes(5)),
    );
    let r = f
        .downloader()
        .part_size(10_000)
        .concurrency(2)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!(r.retries, 9);
    assert_eq!(count(&f.events(), |e| matches!(e, Event::Retry { .. })), 9);
    // Bytes received before a reset or short body are kept: nothing was fetched twice
    // except the part whose body overflowed its range (ExtraBytes), which starts over.
    assert!(
        f.source.bytes_served() <= 40_000 + 10_000 + 5,
        "served {} bytes",
        f.source.bytes_served()
    );
}

#[tokio::test(start_paused = true)]
async fn stalled_body_hits_the_idle_timeout_and_the_part_is_retried() {
    let f = Fixture::new(20_000, 5);
    f.source
        .set_fault_plan(FaultPlan::new().on_request(0, Fault::Stall(100)));
    let r = f
        .downloader()
        .part_size(20_000)
        .idle_timeout(Duration::from_secs(5))
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!(r.retries, 1);
    let cause = f.events().iter().find_map(|e| match e {
        Event::Retry {
            cause, resume_at, ..
        } => Some((cause.clone(), *resume_at)),
        _ => None,
    });
    let (cause, resume_at) = cause.unwrap();
    assert!(cause.contains("idle timeout"), "{cause}");
    assert_eq!(resume_at, 100);
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded_and_the_error_names_key_part_range_and_attempts() {
    let f = Fixture::new(10_000, 6);
    let mut plan = FaultPlan::new();
    for n in 0..100 {
        plan = plan.on_request(n, Fault::http(503));
    }
    f.source.set_fault_plan(plan);
    let err = f
        .downloader()
        .part_size(10_000)
        .retry(RetryPolicy {
            max_attempts: 4,
            ..quick_retry(2)
        })
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network);
    let msg = err.to_string();
    for needle in [
        KEY,
        "part 0",
        "0-9999",
        "4 request",
        "SlowDown",
        "run again",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert_eq!(f.source.read_requests(), 4);
    assert!(!f.dest.exists());
}

#[tokio::test(start_paused = true)]
async fn denied_and_not_found_are_not_retried() {
    for (status, kind) in [(403, ErrorKind::Denied), (404, ErrorKind::NotFound)] {
        let f = Fixture::new(10_000, 7);
        f.source
            .set_fault_plan(FaultPlan::new().on_request(0, Fault::http(status)));
        let err = f
            .downloader()
            .part_size(10_000)
            .download(KEY, &f.dest)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(f.source.read_requests(), 1);
    }
    // Refused at the stat: nothing was written, so nothing is left behind.
    let f = Fixture::new(10_000, 7);
    f.source
        .set_fault_plan(FaultPlan::new().on_stat(0, Fault::http(403)));
    let err = f.downloader().download(KEY, &f.dest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert!(f.files().is_empty(), "{:?}", f.files());
    let f = Fixture::new(10, 7);
    let err = f
        .downloader()
        .download("no/such/key", &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("no/such/key"));
}

#[tokio::test(start_paused = true)]
async fn a_source_that_ignores_range_is_downloaded_as_one_stream_with_one_warning() {
    let f = Fixture::new(50_000, 8);
    f.source
        .set_fault_plan(FaultPlan::new().on_request(0, Fault::IgnoreRange));
    let report = f
        .downloader()
        .part_size(10_000)
        .concurrency(4)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!((report.parts, report.restarts), (1, 0));
    let message = "server does not support ranges: one connection, resumes from the start";
    assert_eq!(report.warnings, vec![message.to_owned()]);
    let events = f.events();
    assert_eq!(
        count(
            &events,
            |e| matches!(e, Event::Warning { message: m } if m == message)
        ),
        1
    );
    // Not a byte of the ignored response was accepted as a part.
    assert_eq!(count(&events, |e| matches!(e, Event::PartDone { .. })), 1);
}

#[tokio::test(start_paused = true)]
async fn a_range_from_a_source_that_ignores_ranges_is_an_error_and_writes_nothing() {
    let f = Fixture::new(50_000, 8);
    f.source
        .set_fault_plan(FaultPlan::new().on_request(0, Fault::IgnoreRange));
    let err = f
        .downloader()
        .part_size(10_000)
        .concurrency(1)
        .range(RangeSpec::From { first: 100 })
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not support ranged reads"),
        "{err}"
    );
    // With no part done there is nothing to resume: nothing is left behind.
    assert!(f.files().is_empty(), "{:?}", f.files());
    assert!(f.store.ids().is_empty());
}

#[tokio::test(start_paused = true)]
async fn state_is_kept_only_when_a_later_run_can_resume_from_it() {
    // Every request fails before any part is done: no temp file, no checkpoint.
    let f = Fixture::new(50_000, 30);
    let mut plan = FaultPlan::new();
    for n in 0..10 {
        plan = plan.on_request(n, Fault::http(503));
    }
    f.source.set_fault_plan(plan);
    let err = f
        .downloader()
        .part_size(10_000)
        .concurrency(1)
        .retry(RetryPolicy {
            max_attempts: 3,
            ..quick_retry(5)
        })
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(f.files().is_empty(), "{:?}", f.files());
    assert!(f.store.ids().is_empty());
    // One part done, then a refusal: the temp file and checkpoint stay for the resume.
    f.source.set_fault_plan(
        FaultPlan::new().on_request(f.source.read_requests() + 1, Fault::http(403)),
    );
    f.downloader()
        .part_size(10_000)
        .concurrency(1)
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(f.files(), vec!["out.bin.rgpart"]);
    assert_eq!(f.store.ids().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_existing_destination_survives_every_failure_and_is_replaced_on_success() {
    let f = Fixture::new(10_000, 9);
    std::fs::write(&f.dest, b"precious").unwrap();
    f.source
        .set_fault_plan(FaultPlan::new().on_request(0, Fault::http(403)));
    f.downloader().download(KEY, &f.dest).await.unwrap_err();
    assert_eq!(f.dest_bytes(), b"precious");
    f.downloader().download(KEY, &f.dest).await.unwrap();
    assert_eq!(f.dest_bytes(), f.content);
}

#[tokio::test(start_paused = true)]
async fn object_overwritten_mid_download_restarts_and_yields_only_the_new_version() {
    // Regression: parts without If-Match mixed two versions of an overwritten object.
    let f = Fixture::new(64_000, 10);
    f.source
        .set_fault_plan(FaultPlan::new().change_object_after(3));
    let r = f
        .downloader()
        .part_size(8_000)
        .concurrency(2)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    let history = f.source.history(KEY);
    assert_eq!(history.len(), 2);
    assert_eq!(f.dest_bytes(), &history[1].content[..]);
    assert_eq!(r.restarts, 1);
    assert_eq!(
        count(&f.events(), |e| matches!(e, Event::Restarted { .. })),
        1
    );
    // Every read carried the etag of the version it was downloading.
    for entry in f.source.log() {
        assert!(entry.if_match.is_some(), "read without If-Match: {entry:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn object_overwritten_with_fail_policy_stops_and_discards_the_stale_checkpoint() {
    let f = Fixture::new(64_000, 11);
    f.source
        .set_fault_plan(FaultPlan::new().change_object_after(3));
    let err = f
        .downloader()
        .part_size(8_000)
        .concurrency(2)
        .on_change(OnChange::Fail)
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Changed);
    assert!(!f.dest.exists());
    assert!(
        f.store.ids().is_empty(),
        "the old version's checkpoint must go"
    );
    assert!(
        f.files().is_empty(),
        "the old version's bytes must go: {:?}",
        f.files()
    );
    // Running again fetches the current version.
    f.downloader().download(KEY, &f.dest).await.unwrap();
    assert_eq!(f.dest_bytes(), &f.source.content(KEY).unwrap()[..]);
}

#[tokio::test(start_paused = true)]
async fn a_response_with_another_etag_is_never_written() {
    let f = Fixture::new(30_000, 12);
    f.source
        .set_fault_plan(FaultPlan::new().on_request(1, Fault::WrongEtag));
    let err = f
        .downloader()
        .part_size(10_000)
        .concurrency(1)
        .on_change(OnChange::Fail)
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Changed);
    assert!(err.to_string().contains("etag"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn restarts_are_bounded_when_the_object_keeps_changing() {
    let f = Fixture::new(30_000, 13);
    let mut plan = FaultPlan::new();
    for n in 0..20 {
        plan = plan.on_request(n * 2 + 1, Fault::ChangeObject);
    }
    f.source.set_fault_plan(plan);
    let err = f
        .downloader()
        .part_size(10_000)
        .concurrency(1)
        .max_restarts(2)
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Changed);
    assert!(err.to_string().contains("2 restart"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn crash_then_resume_refetches_at_most_the_parts_in_flight() {
    let f = Fixture::new(200_000, 14);
    let (part, jobs) = (10_000u64, 4u64);
    let crashing = f.downloader().part_size(part).concurrency(jobs as usize);
    f.crash_after(crashing, 123_456).await;
    let served_before = f.source.bytes_served();
    let r = f
        .downloader()
        .part_size(part)
        .concurrency(jobs as usize)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    let refetched = served_before + r.fetched_bytes - 200_000;
    assert!(r.reused_bytes > 0);
    assert!(
        refetched <= jobs * part,
        "re-fetched {refetched} bytes, more than {jobs} jobs × {part}"
    );
}

#[tokio::test(start_paused = true)]
async fn graceful_cancel_saves_progress_and_resume_refetches_nothing_done() {
    let f = Fixture::new(100_000, 15);
    let token = CancellationToken::new();
    let t2 = token.clone();
    let dl = f
        .downloader()
        .part_size(10_000)
        .concurrency(2)
        .cancel_token(token);
    let trigger = f.source.crash_trigger_after_bytes(45_000);
    let (res, ()) = tokio::join!(dl.download(KEY, &f.dest), async {
        trigger.fired().await;
        t2.cancel();
        drop(trigger);
    });
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    // Bytes received are not bytes saved: the message claims neither.
    assert_eq!(err.to_string(), format!("download of {KEY} interrupted"));
    let done_parts = parts_done(&f.events());
    assert!(!done_parts.is_empty());
    f.take_events();
    let log_start = f.source.read_requests() as usize;
    let r = f
        .downloader()
        .part_size(10_000)
        .concurrency(2)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!(r.parts_reused, done_parts.len() as u64);
    for entry in &f.source.log()[log_start..] {
        let part = entry.range.start / 10_000;
        assert!(
            !done_parts.contains(&part),
            "part {part} reported done was fetched again"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn ranged_download_resumes_from_its_checkpoint() {
    // Regression: a ranged download never resumed.
    let f = Fixture::new(100_000, 16);
    let range = RangeSpec::Inclusive {
        first: 10_000,
        last: 89_999,
    };
    f.crash_after(
        f.downloader().part_size(5_000).concurrency(2).range(range),
        50_000,
    )
    .await;
    let r = f
        .downloader()
        .part_size(5_000)
        .concurrency(2)
        .range(range)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), &f.content[10_000..90_000]);
    assert!(r.reused_bytes >= 40_000, "reused only {}", r.reused_bytes);
}

#[tokio::test(start_paused = true)]
async fn default_checkpoint_beside_dest_is_on_and_resumes() {
    // Regression: `Checkpoint(true, "")` silently disabled checkpointing.
    let f = Fixture::new(100_000, 17);
    let dl = || {
        Downloader::new(f.source.clone())
            .part_size(10_000)
            .concurrency(2)
            .retry(quick_retry(3))
    };
    f.crash_after(dl(), 60_000).await;
    assert!(
        f.files().contains(&"out.bin.rgcp".to_string()),
        "{:?}",
        f.files()
    );
    let r = dl().download(KEY, &f.dest).await.unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert!(r.reused_bytes >= 40_000);
    assert_eq!(f.files(), vec!["out.bin"]);
}

#[tokio::test(start_paused = true)]
async fn deleted_temp_file_with_surviving_checkpoint_is_refetched_not_zero_filled() {
    // Regression: a zero-filled file was reported as success.
    let f = Fixture::new(100_000, 18);
    f.crash_after(f.downloader().part_size(10_000), 70_000)
        .await;
    std::fs::remove_file(f.part_path()).unwrap();
    f.take_events();
    let r = f
        .downloader()
        .part_size(10_000)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!(r.reused_bytes, 0);
    let reason = f.events().iter().find_map(|e| match e {
        Event::CheckpointDiscarded { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.unwrap().contains("temp file"));
}

#[tokio::test(start_paused = true)]
async fn stale_larger_temp_file_is_truncated() {
    // Regression: a stale, larger temp file left trailing garbage in the result. (The temp
    // file must be this download's: an interrupted run's, grown since.)
    let f = Fixture::new(10_000, 19);
    f.crash_after(f.downloader().part_size(3_000).concurrency(1), 5_000)
        .await;
    let part = std::fs::OpenOptions::new()
        .append(true)
        .open(f.part_path())
        .unwrap();
    std::io::Write::write_all(&mut &part, &[0xEE; 40_000]).unwrap();
    drop(part);
    f.downloader()
        .part_size(3_000)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
}

#[tokio::test(start_paused = true)]
async fn damaged_done_part_is_caught_by_crc_at_the_end_and_refetched() {
    // Regression: the whole-object CRC was skipped on resumed runs.
    for verify in [false, true] {
        let f = Fixture::new(100_000, 20);
        f.crash_after(f.downloader().part_size(10_000).concurrency(1), 60_000)
            .await;
        // Flip a byte inside part 2, which the checkpoint records as done.
        let mut tmp = std::fs::read(f.part_path()).unwrap();
        tmp[25_000] ^= 0x01;
        std::fs::write(f.part_path(), tmp).unwrap();
        f.take_events();
        let r = f
            .downloader()
            .part_size(10_000)
            .concurrency(1)
            .verify_on_resume(verify)
            .download(KEY, &f.dest)
            .await
            .unwrap();
        assert_eq!(f.dest_bytes(), f.content, "verify_on_resume={verify}");
        let damaged: Vec<Vec<u64>> = f
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::PartsDamaged { parts, .. } => Some(parts.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(damaged, vec![vec![2]], "verify_on_resume={verify}");
        assert!(r.reused_bytes >= 50_000);
    }
}

#[tokio::test(start_paused = true)]
async fn crc_mismatch_fails_and_discards_the_partial_download() {
    let f = Fixture::new(30_000, 21);
    let content = f.content.clone();
    f.source
        .put_object(KEY, MockObject::new(content).with_crc64(12345));
    let err = f
        .downloader()
        .part_size(10_000)
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("12345"), "{err}");
    assert!(!f.dest.exists());
    assert!(
        f.store.ids().is_empty(),
        "a checkpoint of unverifiable bytes must not be reused"
    );
}

#[tokio::test(start_paused = true)]
async fn corrupt_checkpoint_is_reported_and_discarded() {
    let f = Fixture::new(100_000, 22);
    f.crash_after(f.downloader().part_size(10_000), 50_000)
        .await;
    let id = f.store.ids().pop().unwrap();
    let mut raw = f.store.raw(&id).unwrap();
    raw[20] ^= 0x40;
    f.store.set_raw(&id, raw);
    f.take_events();
    let r = f
        .downloader()
        .part_size(10_000)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!(r.reused_bytes, 0);
    assert_eq!(
        count(&f.events(), |e| matches!(
            e,
            Event::CheckpointDiscarded { .. }
        )),
        1
    );
}

/// Another part size on the rerun resumes with the saved layout, said once; starting over, or
/// a saved layout with more parts than allowed, discards it.
#[tokio::test(start_paused = true)]
async fn checkpoint_from_another_part_size_is_resumed_with_its_layout() {
    let f = Fixture::new(100_000, 23);
    f.crash_after(f.downloader().part_size(10_000), 50_000)
        .await;
    f.take_events();
    let r = f
        .downloader()
        .part_size(7_000)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert!(r.reused_bytes >= 10_000, "{r:?}");
    assert_eq!(r.parts, 10);
    let said: Vec<_> = f
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::PartSizeChanged { .. }))
        .collect();
    assert_eq!(
        said,
        vec![Event::PartSizeChanged {
            requested: 7_000,
            used: 10_000,
            parts: 10,
            reason: PartSizeReason::Checkpoint
        }]
    );
    assert!(
        !f.events()
            .iter()
            .any(|e| matches!(e, Event::CheckpointDiscarded { .. }))
    );
}

#[tokio::test(start_paused = true)]
async fn checkpoint_from_another_part_size_is_discarded_when_starting_over_or_over_max_parts() {
    for (start_over, max_parts, why) in [
        (true, 1_000, "starting over was asked for"),
        (false, 5, "parts of 10000 bytes"),
    ] {
        let f = Fixture::new(100_000, 23);
        f.crash_after(f.downloader().part_size(10_000), 50_000)
            .await;
        f.take_events();
        let r = f
            .downloader()
            .part_size(7_000)
            .max_parts(max_parts)
            .start_over(start_over)
            .download(KEY, &f.dest)
            .await
            .unwrap();
        assert_eq!(f.dest_bytes(), f.content);
        assert_eq!(r.reused_bytes, 0);
        let reason = f.events().iter().find_map(|e| match e {
            Event::CheckpointDiscarded { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        assert!(reason.unwrap().contains(why), "{why}");
        // Over max_parts: raised to 20 000 bytes (5 parts), and said so.
        let expected_parts = if start_over { 15 } else { 5 };
        assert_eq!(r.parts, expected_parts);
    }
}

#[tokio::test(start_paused = true)]
async fn second_download_into_the_same_dest_is_refused_while_the_first_runs() {
    let f = Fixture::new(100_000, 24);
    let trigger = f.source.crash_trigger_after_bytes(30_000);
    let first_dl = f.downloader().part_size(10_000);
    let first = first_dl.download(KEY, &f.dest);
    let (first, second) = tokio::join!(first, async {
        trigger.fired().await;
        let r = f.downloader().download(KEY, &f.dest).await;
        drop(trigger);
        r
    });
    let err = second.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(err.to_string().contains("another download"));
    first.unwrap();
    assert_eq!(f.dest_bytes(), f.content);
}

#[tokio::test(start_paused = true)]
async fn failing_checkpoint_writes_stop_the_download_and_it_resumes_later() {
    let f = Fixture::new(100_000, 25);
    let faulty =
        FaultyCheckpointStore::new(f.store.clone()).with_plan(StoreFaultPlan::new().fail_flush(4));
    let err = f
        .downloader()
        .checkpoint(faulty)
        .part_size(10_000)
        .concurrency(1)
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("checkpoint"), "{err}");
    assert!(!f.dest.exists());
    let r = f
        .downloader()
        .part_size(10_000)
        .concurrency(1)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!(r.parts_reused, 4, "flushed parts survive a failing store");
}

#[tokio::test(start_paused = true)]
async fn file_checkpoint_store_in_a_directory_resumes() {
    let f = Fixture::new(100_000, 26);
    let cpdir = f.dir.path().join("checkpoints/");
    let dl = || {
        Downloader::new(f.source.clone())
            .checkpoint(FileCheckpointStore::in_dir(&cpdir))
            .part_size(10_000)
            .retry(quick_retry(4))
    };
    f.crash_after(dl(), 55_000).await;
    assert_eq!(std::fs::read_dir(&cpdir).unwrap().count(), 1);
    let r = dl().download(KEY, &f.dest).await.unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert!(r.reused_bytes > 0);
    assert_eq!(std::fs::read_dir(&cpdir).unwrap().count(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_checkpoint_leaves_nothing_behind_on_failure() {
    let f = Fixture::new(50_000, 27);
    f.source
        .set_fault_plan(FaultPlan::new().on_request(2, Fault::http(403)));
    f.downloader()
        .no_checkpoint()
        .part_size(10_000)
        .concurrency(1)
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert!(f.files().is_empty(), "{:?}", f.files());
}

#[tokio::test(start_paused = true)]
async fn bad_settings_are_rejected_before_any_request() {
    let f = Fixture::new(10, 28);
    for dl in [
        f.downloader().part_size(0),
        f.downloader().concurrency(0),
        f.downloader().retry(RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        }),
    ] {
        let err = dl.download(KEY, &f.dest).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    }
    let err = f
        .downloader()
        .range(RangeSpec::From { first: 10 })
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(err.to_string().contains("10 bytes"), "{err}");
    let missing = f.dir.path().join("no/such/dir/out.bin");
    let err = f.downloader().download(KEY, &missing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LocalIo);
    let err = f
        .downloader()
        .download(KEY, f.dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert_eq!(f.source.read_requests(), 0);
    // DEST that is the checkpoint file itself.
    let dest = f.dir.path().join("x");
    let err = Downloader::new(f.source.clone())
        .checkpoint(FileCheckpointStore::beside(dest.with_extension("")))
        .download(KEY, dest.with_extension("rgcp"))
        .await;
    // `x.rgcp` as DEST with the checkpoint of DEST `x` beside it: refused.
    let err = err.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    assert!(err.to_string().contains("checkpoint file"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_caps_the_total_of_all_workers_over_every_two_second_window() {
    let f = Fixture::new(10_000_000, 29);
    let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let t2 = times.clone();
    let start = tokio::time::Instant::now();
    let r = f
        .downloader()
        .part_size(500_000)
        .concurrency(8)
        .rate_limit(Some(1_000_000))
        .progress_interval(Duration::ZERO)
        .on_progress(move |e| {
            if let Event::Progress { done_bytes, .. } = e {
                t2.lock().unwrap().push((start.elapsed(), *done_bytes));
            }
        })
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert!(r.elapsed >= Duration::from_secs_f64(9.9), "{:?}", r.elapsed);
    assert!(
        r.elapsed <= Duration::from_secs_f64(10.5),
        "too strict: {:?}",
        r.elapsed
    );
    let samples = times.lock().unwrap().clone();
    for (i, &(t0, b0)) in samples.iter().enumerate() {
        for &(t1, b1) in &samples[i..] {
            if t1 - t0 <= Duration::from_secs(2) {
                assert!(
                    b1 - b0 <= 2_200_000,
                    "{} bytes between {t0:?} and {t1:?}: more than 10 % over the limit",
                    b1 - b0
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_object_replaced_after_the_last_read_is_caught_by_the_stat_before_the_rename() {
    // No store checksum covers these bytes (no CRC-64 published): the pinned etag was the
    // only guard, and it is checked once more just before the rename.
    for policy in [OnChange::Fail, OnChange::Restart] {
        let source = backend_mock::MockSource::new("no-crc").with_chunk_size(4096);
        let old = backend_mock::pseudo_random_bytes(60, 30_000).to_vec();
        let new = backend_mock::pseudo_random_bytes(61, 30_000).to_vec();
        source.put(KEY, old);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let (replacer, replacement) = (source.clone(), new.clone());
        let replaced = std::sync::atomic::AtomicBool::new(false);
        let result = Downloader::new(source.clone())
            .part_size(10_000)
            .concurrency(1)
            .retry(quick_retry(8))
            .on_change(policy)
            .on_progress(move |e| {
                if let Event::PartDone { part: 2, .. } = e
                    && !replaced.swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    replacer.put(KEY, replacement.clone());
                }
            })
            .download(KEY, &dest)
            .await;
        match policy {
            OnChange::Fail => {
                let err = result.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Changed, "{err}");
                assert!(
                    err.to_string().contains("just before the final rename"),
                    "{err}"
                );
                assert!(!dest.exists());
            }
            _ => {
                let r = result.unwrap();
                assert_eq!(r.restarts, 1);
                assert!(!r.crc64_verified);
                assert_eq!(std::fs::read(&dest).unwrap(), new);
            }
        }
    }
}
