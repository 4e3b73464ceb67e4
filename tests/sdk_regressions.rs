//! One test per defect of the official OSS SDKs' resumable downloaders, listed in
//! `../shared/OSS-FACTS.md` ("What the existing SDKs get wrong"), each proven at the process
//! level: the `resume-get` binary against the emulator over HTTP.
//!
//! The engine-level twins of these tests live in
//! `crates/resume-core/tests/engine_scenarios.rs`.

use std::time::{Duration, Instant};

use e2e_tests::support::*;

const KEY: &str = "sdk/object.bin";

fn case(size: usize, seed: u64) -> Case {
    e2e_tests::support::case(KEY, size, seed)
}

/// Go SDK v1: `Checkpoint(true, "")` silently disabled checkpointing, so nothing resumed.
/// Here the default is a checkpoint beside DEST, and an empty checkpoint directory is an
/// error, not a silent "off".
#[test]
fn checkpoint_on_by_default_beside_dest_resumes_and_an_empty_checkpoint_dir_is_refused() {
    let c = case(4000, 1);
    let args = ["--part-size", "1000"];
    stop_after_parts(&c.server, KEY, &c.get().args(args), 2);
    assert!(
        rgcp(&c.dest).exists(),
        "the default checkpoint is DEST.rgcp"
    );
    let before = c.server.emu.request_count();
    let out = c.get().args(args).run();
    out.expect_ok();
    assert_eq!(out.num("started", "parts_reused"), 2);
    assert_eq!(out.started()["resumed"], true);
    // The two parts are fetched concurrently: their requests may arrive in either order.
    let mut asked: Vec<_> = c.gets_after(before).iter().map(range_of).collect();
    asked.sort_by_key(|r| r.start);
    assert_eq!(
        asked,
        vec![2000..3000, 3000..4000],
        "only the missing parts"
    );
    assert_file_is(&c.dest, &c.content, "resumed with the default checkpoint");

    let other = c.dir.path().join("again.bin");
    let out = c
        .server
        .get(KEY, &other)
        .args(["--checkpoint-dir", ""])
        .run();
    out.expect_code(EXIT_USAGE)
        .expect_stderr(&["--checkpoint-dir"]);
    assert!(!other.exists());
}

fn ranged(c: &Case) -> Get {
    c.get()
        .args(["--part-size", "1000", "--range", "1000-8999"])
}

/// The SDKs never resumed a ranged download.
#[test]
fn ranged_download_resumes_from_its_checkpoint() {
    let c = case(10_000, 2);
    stop_after_parts(&c.server, KEY, &ranged(&c), 3);
    let before = c.server.emu.request_count();
    let out = ranged(&c).run();
    out.expect_ok();
    assert_eq!(out.num("started", "parts_reused"), 3);
    let asked: Vec<_> = c.gets_after(before).iter().map(range_of).collect();
    assert_eq!(
        asked.iter().map(|r| r.start).min(),
        Some(4000),
        "parts 0-2 of the range (bytes 1000-3999) are not fetched again: {asked:?}"
    );
    assert_eq!(asked.iter().map(|r| r.end - r.start).sum::<u64>(), 5000);
    assert_file_is(&c.dest, &c.content[1000..9000], "the range, resumed");
}

/// The SDKs reported progress of a ranged download against the object's size.
#[test]
fn range_progress_total_is_the_range_length_not_the_object_size() {
    let c = case(10_000, 3);
    let out = ranged(&c).run();
    out.expect_ok();
    assert_eq!(out.num("started", "total_bytes"), 8000);
    let progress = out.events_named("progress");
    assert!(!progress.is_empty());
    for p in &progress {
        assert_eq!(num(p, "total_bytes"), 8000, "{p}");
        assert!(num(p, "done_bytes") <= 8000, "{p}");
    }
    assert_eq!(num(progress[progress.len() - 1], "done_bytes"), 8000);
    let done = out.completed();
    assert_eq!((num(done, "start"), num(done, "end")), (1000, 9000));
    assert_file_is(&c.dest, &c.content[1000..9000], "the range");
}

/// The SDKs skipped the whole-object CRC on resumed runs: a part damaged on disk between
/// runs went unnoticed.
#[test]
fn whole_object_crc_is_checked_on_resumed_runs() {
    let c = case(4000, 4);
    let args = ["--part-size", "1000"];
    stop_after_parts(&c.server, KEY, &c.get().args(args), 2);
    let path = rgpart(&c.dest);
    let mut tmp = std::fs::read(&path).expect("temp file");
    tmp[10] ^= 0x01;
    std::fs::write(&path, tmp).expect("damage part 0");
    let out = c.get().args(args).run();
    out.expect_ok();
    assert_eq!(out.started()["resumed"], true);
    assert_eq!(
        out.must_event("parts_damaged")["parts"],
        serde_json::json!([0])
    );
    assert_eq!(out.completed()["crc64_verified"], true);
    assert_file_is(&c.dest, &c.content, "resumed past a damaged part");
}

/// The SDKs "fixed" a CRC failure by running again: the resumed run skipped the check and
/// reported success. Here a server whose CRC-64 header disagrees with the data fails every
/// time, fresh or resumed, and never produces DEST (nor touches an existing one).
#[test]
fn a_crc_failure_is_not_fixed_by_rerunning() {
    let c = case(4000, 5);
    let precious = b"an older copy the user keeps".to_vec();
    std::fs::write(&c.dest, &precious).expect("existing DEST");
    let wrong = (resume_core::crc64(&c.content) ^ 1).to_string();
    let proxy = HeaderProxy::start(
        c.server.emu.addr(),
        vec![Rewrite::Set("x-oss-hash-crc64ecma", wrong)],
    );
    let get = || Get::new(&proxy.endpoint(), &oss_url(KEY), &c.dest).args(["--part-size", "1000"]);
    // Interrupted with 2 parts recorded, then resumed: the resumed run checks the CRC.
    c.server
        .set_faults(FaultPlan::new(0).rule(FaultRule::on("GET", KEY, denied()).nth(3)));
    get().args(["--jobs", "1"]).run().expect_code(EXIT_DENIED);
    c.server.emu.clear_fault_plan();
    for attempt in 1..=3 {
        let out = get().run();
        out.expect_code(EXIT_INTEGRITY)
            .expect_stderr(&[KEY, "CRC-64", "discarded"]);
        if attempt == 1 {
            assert_eq!(out.started()["resumed"], true, "the first rerun resumes");
        } else {
            assert_eq!(out.num("started", "reused_bytes"), 0);
        }
        assert_file_is(&c.dest, &precious, "DEST after a CRC failure");
    }
    // With the right CRC the same command succeeds.
    let out = c.get().args(["--part-size", "1000"]).run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, "with a correct CRC");
}

/// The SDKs turned a deleted temp file with a surviving checkpoint into a zero-filled file
/// reported as a success.
#[test]
fn deleted_temp_file_with_surviving_checkpoint_is_refetched_not_zero_filled() {
    let c = case(4000, 6);
    let args = ["--part-size", "1000"];
    stop_after_parts(&c.server, KEY, &c.get().args(args), 3);
    std::fs::remove_file(rgpart(&c.dest)).expect("delete the temp file");
    let out = c.get().args(args).run();
    out.expect_ok();
    assert!(out.event("checkpoint_discarded").is_some());
    assert_eq!(out.num("completed", "fetched_bytes"), 4000);
    assert_file_is(&c.dest, &c.content, "after the temp file was deleted");
}

/// The SDKs left trailing garbage from a stale, larger temp file.
#[test]
fn stale_larger_temp_file_is_truncated() {
    let c = case(4000, 7);
    // The download's own temp file (a file it does not claim is refused, never reused),
    // grown since the interrupted run.
    stop_after_parts(&c.server, KEY, &c.get().args(["--part-size", "1000"]), 2);
    let mut part = std::fs::read(rgpart(&c.dest)).expect("temp file");
    part.resize(9_999, 0xEE);
    std::fs::write(rgpart(&c.dest), part).expect("grow the temp file in place");
    let out = c.get().args(["--part-size", "1000"]).run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, "over a stale larger temp file");
    assert!(out.event("checkpoint_discarded").is_some());
}

/// The SDKs failed on a zero-byte object when checkpointing was on, after writing the file.
#[test]
fn zero_byte_object_with_checkpoint_succeeds() {
    let c = case(0, 8);
    let cp_dir = tempfile::tempdir().expect("tempdir");
    for extra in [
        vec![],
        vec![
            "--checkpoint-dir".to_string(),
            cp_dir.path().display().to_string(),
        ],
    ] {
        let _ = std::fs::remove_file(&c.dest);
        let out = c.get().args(extra).run();
        out.expect_ok();
        assert_file_is(&c.dest, b"", "a zero-byte object");
        assert_eq!(
            listing(c.dir.path()).len(),
            1,
            "{:?}",
            listing(c.dir.path())
        );
        assert!(listing(cp_dir.path()).is_empty());
    }
}

/// The SDKs sent part requests without `If-Match`: an object overwritten mid-download gave a
/// mix of both versions. Here the first part request after the overwrite is refused by the
/// server (412, so it carried the old ETag), and the result is only the new version.
#[test]
fn parts_carry_if_match_so_an_overwrite_never_mixes_versions() {
    let c = case(8000, 9);
    c.server.set_faults(
        FaultPlan::new(9)
            .rule(FaultRule::on("GET", KEY, Fault::ChangeObject { size: None }).nth(2)),
    );
    let out = c.get().args(["--part-size", "1000", "--jobs", "1"]).run();
    c.server.emu.clear_fault_plan();
    out.expect_ok();
    let gets = c.server.gets(KEY);
    assert_eq!(gets[2].status, Some(412), "{:?}", gets[2]);
    assert_eq!(gets[2].error_code.as_deref(), Some("PreconditionFailed"));
    let new = c.server.emu.get_object(BUCKET, KEY).expect("new version");
    assert_ne!(new, c.content);
    assert_file_is(&c.dest, &new, "only the new version");
}

/// The SDKs turned `bytes=-N` into the first N+1 bytes.
#[test]
fn suffix_range_downloads_the_last_n_bytes() {
    let c = case(10_000, 10);
    for (n, want) in [(1000usize, 9000usize), (1, 9999), (10_000, 0), (25_000, 0)] {
        let _ = std::fs::remove_file(&c.dest);
        let before = c.server.emu.request_count();
        let out = c
            .get()
            .args([format!("--range=-{n}"), "--part-size=600".into()])
            .run();
        out.expect_ok();
        assert_file_is(&c.dest, &c.content[want..], &format!("--range=-{n}"));
        assert_eq!(out.num("started", "total_bytes"), (10_000 - want) as u64);
        let first = c.gets_after(before).iter().map(|r| range_of(r).start).min();
        assert_eq!(first, Some(want as u64), "--range=-{n}");
    }
}

/// A watermark checkpoint (the SDKs' "done up to here") re-downloads every part after a gap.
/// Here part requests go out in parallel; the first one is held back and then fails, the
/// others finish; the resume fetches that one part only.
#[test]
fn checkpoint_keeps_gaps_so_parts_after_a_gap_are_not_fetched_again() {
    let c = case(8 * 4096, 11);
    c.server.set_faults(
        FaultPlan::new(0)
            .rule(FaultRule::on("GET", KEY, Fault::DelayFirstByte { millis: 2_000 }).nth(1))
            .rule(FaultRule::on("GET", KEY, denied()).nth(1)),
    );
    let args = ["--part-size", "4096", "--jobs", "4"];
    let out = c.get().args(args).run();
    c.server.emu.clear_fault_plan();
    out.expect_code(EXIT_DENIED);
    let first = c
        .server
        .gets(KEY)
        .into_iter()
        .find(|r| r.status == Some(403))
        .map(|r| range_of(&r))
        .expect("the refused request");
    assert_eq!(
        out.events_named("part_done").len(),
        7,
        "every other part finished while the first request was held"
    );
    let before = c.server.emu.request_count();
    let out = c.get().args(args).run();
    out.expect_ok();
    assert_eq!(out.num("started", "parts_reused"), 7);
    let asked: Vec<_> = c.gets_after(before).iter().map(range_of).collect();
    assert_eq!(
        asked,
        vec![first.clone()],
        "only the gap {first:?} is fetched"
    );
    assert_file_is(&c.dest, &c.content, "after filling the gap");
}

/// The SDKs had no retries, or retries without a bound; failed workers kept running; a
/// failure deleted an existing destination file. Here: retries stop after `--retries`, the
/// error names the part, range, attempts, the server's code and request id, a stalled worker
/// is stopped with the rest, and DEST is untouched.
#[test]
fn retries_are_bounded_failed_workers_stop_and_an_existing_dest_survives() {
    let c = case(16 * 4096, 12);
    let precious = b"keep me".to_vec();
    std::fs::write(&c.dest, &precious).expect("existing DEST");
    c.server.set_faults(
        FaultPlan::new(0)
            // One request hangs (far longer than the test waits) ...
            .rule(FaultRule::on("GET", KEY, Fault::DelayFirstByte { millis: 120_000 }).nth(1))
            // ... and every request fails.
            .rule(FaultRule::on("GET", KEY, Fault::slow_down())),
    );
    let t = Instant::now();
    let out = c
        .get()
        .args(["--part-size", "4096", "--jobs", "4", "--retries", "3"])
        .timeout(Duration::from_secs(60))
        .run();
    let took = t.elapsed();
    c.server.emu.clear_fault_plan();
    out.expect_code(EXIT_NETWORK).expect_stderr(&[
        KEY,
        "part ",
        "after 3 requests",
        "SlowDown",
        "request id",
    ]);
    assert!(
        out.events_named("retry").len() >= 2,
        "failures are retried before giving up"
    );
    let gets = c.server.gets(KEY).len();
    assert!(gets <= 4 * 3, "{gets} requests: at most jobs × retries");
    assert!(
        took < Duration::from_secs(20),
        "the hanging worker must be stopped when another fails ({took:?})"
    );
    assert_file_is(&c.dest, &precious, "DEST after the failure");
}
