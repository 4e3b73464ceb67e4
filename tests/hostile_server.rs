//! A hostile or changing server, through the emulator's fault plans (and, where the emulator
//! cannot misbehave that way by itself, a header-rewriting / stalling proxy in front of it):
//! `resume-get` must end with exactly the object's bytes, or fail with the documented exit
//! code and a message naming the request, never with a wrong or mixed file.

use std::time::{Duration, Instant};

use e2e_tests::support::*;

const KEY: &str = "hostile/object.bin";

fn case(size: usize, seed: u64) -> Case {
    e2e_tests::support::case(KEY, size, seed)
}

fn error(status: u16, code: &str) -> Fault {
    Fault::Error {
        status,
        code: code.into(),
        message: None,
    }
}

fn strip_crc() -> Vec<Rewrite> {
    vec![Rewrite::Remove("x-oss-hash-crc64ecma")]
}

/// The overwrite happens right after the 3rd part request is served (one job, so requests are
/// strictly ordered: the emulator finishes the change before that response's head goes out);
/// later requests carry `If-Match` with the old ETag and get 412.
fn overwrite_mid_download(c: &Case, endpoint: Option<&str>, extra: &[&str]) -> Outcome {
    c.faults(vec![
        FaultRule::on("GET", KEY, Fault::ChangeObject { size: None }).nth(3),
    ]);
    let args = ["--part-size", "64KiB", "--jobs", "1"];
    let out = match endpoint {
        Some(ep) => Get::new(ep, &oss_url(KEY), &c.dest),
        None => c.get(),
    }
    .args(args)
    .args(extra)
    .run();
    c.server.emu.clear_fault_plan();
    let statuses: Vec<Option<u16>> = c.server.gets(KEY).iter().map(|r| r.status).collect();
    assert!(
        statuses.contains(&Some(412)),
        "requests after the overwrite must be refused by If-Match: {statuses:?}"
    );
    out
}

fn restart_yields_only_the_new_version(with_crc: bool) {
    let c = case(1 << 20, 1);
    let proxy = (!with_crc).then(|| HeaderProxy::start(c.server.emu.addr(), strip_crc()));
    let out = overwrite_mid_download(&c, proxy.as_ref().map(|p| p.endpoint()).as_deref(), &[]);
    out.expect_ok();
    let new = c.current_content();
    assert_ne!(new, c.content);
    assert_file_is(&c.dest, &new, "after an overwrite (restart policy)");
    let restarted = out.must_event("restarted");
    assert!(
        restarted["reason"]
            .as_str()
            .unwrap_or("")
            .contains("changed"),
        "{restarted}"
    );
    assert_eq!(out.completed()["crc64_verified"], with_crc);
    assert_eq!(out.num("completed", "restarts"), 1);
}

#[test]
fn object_overwritten_mid_download_with_crc_header_restarts_and_yields_only_the_new_version() {
    restart_yields_only_the_new_version(true);
}

#[test]
fn object_overwritten_mid_download_without_crc_header_restarts_and_yields_only_the_new_version() {
    restart_yields_only_the_new_version(false);
}

fn fail_policy_exits_5(with_crc: bool) {
    let c = case(1 << 20, 2);
    let proxy = (!with_crc).then(|| HeaderProxy::start(c.server.emu.addr(), strip_crc()));
    let ep = proxy.as_ref().map(|p| p.endpoint());
    let out = overwrite_mid_download(&c, ep.as_deref(), &["--on-change", "fail"]);
    out.expect_code(EXIT_CHANGED)
        .expect_stderr(&[KEY, "changed", "run again"]);
    assert!(
        !c.dest.exists(),
        "no DEST after a change with --on-change fail"
    );
    assert!(
        !rgcp(&c.dest).exists(),
        "the stale checkpoint is deleted so the next run starts afresh"
    );
    // Running again downloads the new version.
    let mut g = c.get();
    if let Some(ep) = &ep {
        g = Get::new(ep, &oss_url(KEY), &c.dest);
    }
    let out = g.args(["--part-size", "64KiB"]).run();
    out.expect_ok();
    assert_eq!(out.num("started", "reused_bytes"), 0);
    assert_file_is(&c.dest, &c.current_content(), "the new version");
}

#[test]
fn object_overwritten_with_on_change_fail_exits_5_with_crc_header() {
    fail_policy_exits_5(true);
}

#[test]
fn object_overwritten_with_on_change_fail_exits_5_without_crc_header() {
    fail_policy_exits_5(false);
}

#[test]
fn object_replaced_by_one_of_another_size_mid_download_never_mixes() {
    let c = case(1 << 20, 3);
    c.faults(vec![
        FaultRule::on(
            "GET",
            KEY,
            Fault::ChangeObject {
                size: Some(700_001),
            },
        )
        .nth(2),
    ]);
    let out = c.get().args(["--part-size", "64KiB", "--jobs", "1"]).run();
    out.expect_ok();
    let new = c.current_content();
    assert_eq!(new.len(), 700_001);
    assert_file_is(&c.dest, &new, "after a change of size");
}

#[test]
fn server_ignoring_range_is_downloaded_as_one_stream_said_once() {
    let c = case(256 << 10, 4);
    c.faults(vec![FaultRule::always(Fault::IgnoreRange).method("GET")]);
    let out = c.get().args(["--part-size", "64KiB"]).run();
    out.expect_ok();
    let warnings = out.events_named("warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        warnings[0]["message"],
        "server does not support ranges: one connection, resumes from the start"
    );
    assert_eq!(out.num("completed", "parts"), 1);
    assert_file_is(
        &c.dest,
        &c.content,
        "one stream from a server that ignores Range",
    );
}

/// `-j 1`, parts of 64 KiB, the 3rd GET answered with `fault`: parts 0 and 1 are done.
fn fail_third_get(c: &Case, fault: Fault, extra: &[&str]) -> Outcome {
    c.faults(vec![FaultRule::on("GET", KEY, fault).nth(3)]);
    let out = c
        .get()
        .args(["--part-size", "64KiB", "--jobs", "1"])
        .args(extra)
        .run();
    c.server.emu.clear_fault_plan();
    out
}

/// The request id the server gave the `nth` GET.
fn request_id_of_get(c: &Case, nth: usize) -> String {
    c.server.gets(KEY)[nth - 1].request_id.clone()
}

/// After a failure with parts 0 and 1 done: the next run reuses them and finishes.
fn resumes_with_two_parts(c: &Case) {
    let out = c.get().args(["--part-size", "64KiB"]).run();
    out.expect_ok();
    assert_eq!(out.num("started", "parts_reused"), 2);
    assert_file_is(&c.dest, &c.content, "resumed");
}

#[test]
fn range_not_satisfiable_mid_run_stops_with_exit_8_naming_the_part_and_resumes_later() {
    let c = case(512 << 10, 5);
    let out = fail_third_get(&c, error(416, "InvalidRange"), &[]);
    let id = request_id_of_get(&c, 3);
    // Not a usage error: the range lies inside the size the server itself reported.
    out.expect_code(EXIT_NETWORK).expect_stderr(&[
        "part 2",
        "131072-196607",
        "InvalidRange",
        &id,
        "inconsistently",
    ]);
    assert!(!c.dest.exists());
    resumes_with_two_parts(&c);
}

#[test]
fn precondition_failed_mid_run_restarts_by_default_and_exits_5_with_on_change_fail() {
    let c = case(512 << 10, 6);
    let out = fail_third_get(&c, error(412, "PreconditionFailed"), &[]);
    out.expect_ok();
    assert!(out.event("restarted").is_some());
    assert_file_is(&c.dest, &c.content, "after a 412 and a restart");
    std::fs::remove_file(&c.dest).expect("remove DEST");
    let out = fail_third_get(
        &c,
        error(412, "PreconditionFailed"),
        &["--on-change", "fail"],
    );
    out.expect_code(EXIT_CHANGED)
        .expect_stderr(&["PreconditionFailed"]);
    assert!(!c.dest.exists());
}

#[test]
fn access_denied_mid_run_exits_4_with_the_code_and_request_id_and_resumes_later() {
    let c = case(512 << 10, 7);
    let out = fail_third_get(&c, error(403, "AccessDenied"), &[]);
    let id = request_id_of_get(&c, 3);
    out.expect_code(EXIT_DENIED)
        .expect_stderr(&["part 2", "AccessDenied", &id, "credentials"]);
    assert_eq!(
        c.server.gets(KEY).len(),
        3,
        "a 403 is not retried: exactly one request for part 2"
    );
    assert!(!c.dest.exists());
    resumes_with_two_parts(&c);
}

#[test]
fn bursts_of_503_on_metadata_and_parts_are_retried_and_the_file_is_exact() {
    let c = case(1 << 20, 8);
    c.faults(vec![
        FaultRule::always(Fault::slow_down())
            .method("HEAD")
            .times(2),
        FaultRule::on("GET", KEY, Fault::slow_down()).times(6),
        FaultRule::on("GET", KEY, Fault::internal_error())
            .from_request(12)
            .times(2),
    ]);
    let out = c.get().args(["--part-size", "128KiB", "--jobs", "3"]).run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, "after 503 bursts");
    let retries = out.events_named("retry");
    assert_eq!(retries.len(), 10, "every injected error is retried once");
    assert_eq!(out.num("completed", "retries"), 10);
    assert_eq!(
        out.num("completed", "fetched_bytes"),
        c.content.len() as u64
    );
    assert!(
        retries
            .iter()
            .any(|r| r["cause"].as_str().unwrap_or("").contains("SlowDown")),
        "{retries:?}"
    );
}

#[test]
fn connection_resets_after_k_bytes_resume_at_the_byte_where_they_broke() {
    let c = case(1 << 20, 9);
    c.faults(vec![
        FaultRule::on("GET", KEY, Fault::ResetAfterBytes { bytes: 10_000 })
            .probability(0.5)
            .times(8),
    ]);
    let out = c.get().args(["--part-size", "128KiB", "--jobs", "4"]).run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, "after resets");
    let resets = c.server.emu.fault_log().len();
    assert!(
        resets >= 2,
        "the plan should reset a few requests: {resets}"
    );
    assert_eq!(out.events_named("retry").len(), resets);
    assert_eq!(
        out.num("completed", "fetched_bytes"),
        c.content.len() as u64,
        "bytes received before a reset are kept, never fetched twice"
    );
    let mid_part = c
        .server
        .gets(KEY)
        .iter()
        .filter(|r| !range_of(r).start.is_multiple_of(128 << 10))
        .count();
    assert_eq!(
        mid_part, resets,
        "every retry asks for the rest of its part, from the byte where the reset hit"
    );
}

#[test]
fn short_bodies_without_an_error_are_retried_from_where_they_ended() {
    let c = case(1 << 20, 10);
    c.faults(vec![
        FaultRule::on("GET", KEY, Fault::ShortBody { bytes: 5_000 }).times(4),
    ]);
    let out = c.get().args(["--part-size", "128KiB", "--jobs", "2"]).run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, "after short bodies");
    let retries = out.events_named("retry");
    assert_eq!(retries.len(), 4);
    for r in &retries {
        let cause = r["cause"].as_str().unwrap_or("");
        assert!(
            cause.contains("body ended after 5000") || cause.contains("cut short"),
            "{r}"
        );
        // Each cut body delivered 5 000 bytes (a retry may be cut again, further on).
        let into_part = num(r, "resume_at") % (128 << 10);
        assert!(into_part > 0 && into_part.is_multiple_of(5_000), "{r}");
    }
    assert_eq!(
        out.num("completed", "fetched_bytes"),
        c.content.len() as u64
    );
}

#[test]
fn stalled_response_hits_the_idle_timeout_and_the_part_is_retried() {
    let c = case(256 << 10, 11);
    c.faults(vec![
        FaultRule::on("GET", KEY, Fault::DelayFirstByte { millis: 20_000 }).nth(2),
    ]);
    let t = Instant::now();
    let out = c
        .get()
        .args(["--part-size", "64KiB", "--jobs", "2", "--timeout", "2s"])
        .run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, "after a stalled response");
    let retry = out.must_event("retry");
    let cause = retry["cause"].as_str().unwrap_or("");
    // The engine's own message (it names the byte), not the transport's backstop.
    assert!(cause.contains("idle timeout"), "{retry}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "the stall must be cut by the 2 s idle timeout, not waited out ({:?})",
        t.elapsed()
    );
}

#[test]
fn connection_stalled_mid_body_hits_the_idle_timeout_and_the_part_resumes() {
    let c = case(512 << 10, 12);
    let proxy = HeaderProxy::with_stall(
        c.server.emu.addr(),
        vec![],
        Some(Stall {
            nth: 2,
            after_bytes: 20_000,
        }),
    );
    let t = Instant::now();
    let out = Get::new(&proxy.endpoint(), &oss_url(KEY), &c.dest)
        .args(["--part-size", "128KiB", "--jobs", "2", "--timeout", "2s"])
        .run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, "after a stall mid-body");
    let retry = out.must_event("retry");
    let cause = retry["cause"].as_str().unwrap_or("");
    // The engine's own message (it names the byte), not the transport's backstop.
    assert!(cause.contains("idle timeout"), "{retry}");
    assert_eq!(num(retry, "resume_at") % (128 << 10), 20_000, "{retry}");
    assert_eq!(
        out.num("completed", "fetched_bytes"),
        c.content.len() as u64
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

/// Downloads an object of `size` bytes with `args` and checks the bytes, the parts and the
/// requests.
fn exact(size: usize, args: &[&str], expect_parts: u64) -> (Case, Outcome) {
    let c = case(size, size as u64 ^ 0xABCD);
    let out = c.get().args(args).run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, &format!("{size} bytes with {args:?}"));
    assert_eq!(out.num("started", "parts"), expect_parts, "parts");
    let names = listing(c.dir.path());
    assert_eq!(names.len(), 1, "nothing but DEST is left: {names:?}");
    (c, out)
}

#[test]
fn zero_byte_object_downloads_to_an_empty_file() {
    let (c, out) = exact(0, &[], 0);
    assert_eq!(out.completed()["crc64_verified"], true);
    assert!(c.server.gets(KEY).is_empty(), "no GET for an empty object");
}

#[test]
fn one_byte_object() {
    let (c, _) = exact(1, &["--part-size", "1MiB"], 1);
    assert_eq!(range_of(&c.server.gets(KEY)[0]), 0..1);
}

#[test]
fn size_not_a_multiple_of_the_part_size_ends_with_a_short_part() {
    let (c, out) = exact(1_000_003, &["--part-size", "64KiB", "--jobs", "4"], 16);
    let last = out
        .events_named("part_done")
        .into_iter()
        .find(|e| num(e, "part") == 15)
        .cloned()
        .expect("the last part");
    assert_eq!(
        (num(&last, "start"), num(&last, "end")),
        (15 * 65_536, 1_000_003)
    );
    let asked: u64 = c
        .server
        .gets(KEY)
        .iter()
        .map(|r| range_of(r).end - range_of(r).start)
        .sum();
    assert_eq!(asked, 1_000_003, "every byte asked for exactly once");
}

#[test]
fn part_size_of_one_byte_on_a_small_object() {
    let (c, _) = exact(300, &["--part-size", "1", "--jobs", "8"], 300);
    let mut starts: Vec<u64> = c
        .server
        .gets(KEY)
        .iter()
        .map(|r| range_of(r).start)
        .collect();
    starts.sort_unstable();
    assert_eq!(
        starts,
        (0..300).collect::<Vec<_>>(),
        "one 1-byte request per byte"
    );
}

#[test]
fn part_size_larger_than_the_object_is_a_single_request() {
    let (c, _) = exact(5_000, &["--part-size", "1GiB", "--jobs", "8"], 1);
    let gets = c.server.gets(KEY);
    assert_eq!(gets.len(), 1);
    assert_eq!(range_of(&gets[0]), 0..5_000);
}

#[test]
fn ten_thousand_parts_with_a_failure_in_the_middle_resume_from_the_journal() {
    const PARTS: u64 = 10_240;
    let c = case(PARTS as usize * 16, 13);
    c.faults(vec![FaultRule::on("GET", KEY, denied()).nth(5_000)]);
    let args = ["--part-size", "16", "--jobs", "16"];
    let first = c.get().args(args).run();
    first.expect_code(EXIT_DENIED);
    c.server.emu.clear_fault_plan();
    // The 15 other workers each had at most one part in flight when request 5 000 failed,
    // which they may or may not have finished.
    let done = first.events_named("part_done").len() as u64;
    assert!(
        (5_000 - 16..=5_000 + 15).contains(&done),
        "parts done before the failure: {done}"
    );
    let cp_len = std::fs::metadata(rgcp(&c.dest)).expect("checkpoint").len();
    assert!(
        cp_len < 400 + done * checkpoint::RECORD_LEN as u64,
        "checkpoint of {cp_len} bytes for {done} parts: not O(parts)"
    );
    let before = c.server.emu.request_count();
    let out = c.get().args(args).run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, "10 240 parts, resumed");
    assert_eq!(out.num("started", "parts"), PARTS);
    assert_eq!(out.num("started", "parts_reused"), done);
    let second: Vec<RequestRecord> = c
        .server
        .gets(KEY)
        .into_iter()
        .filter(|r| r.number > before)
        .collect();
    assert_eq!(
        second.len() as u64,
        PARTS - done,
        "the resume requests exactly the parts not done"
    );
}

/// A Content-MD5 of 16 zero bytes, base64: disagrees with every object's bytes.
const WRONG_MD5: &str = "AAAAAAAAAAAAAAAAAAAAAA==";

/// A proxy in front of the emulator that says [`WRONG_MD5`], and passes the CRC-64 on or not.
fn wrong_md5_proxy(c: &Case, with_crc: bool) -> HeaderProxy {
    let mut rewrites = if with_crc { Vec::new() } else { strip_crc() };
    rewrites.push(Rewrite::Set("content-md5", WRONG_MD5.into()));
    HeaderProxy::start(c.server.emu.addr(), rewrites)
}

/// A download through `proxy` (which says [`WRONG_MD5`]) over an existing DEST fails with
/// exit 6 naming MD5 and both values, and leaves DEST as it was, with no temp file or
/// checkpoint.
fn a_wrong_md5_fails_and_keeps_dest(c: &Case, proxy: &HeaderProxy, part_size: &str, what: &str) {
    let precious = b"an older copy the user keeps".to_vec();
    std::fs::write(&c.dest, &precious).expect("existing DEST");
    let out = Get::new(&proxy.endpoint(), &oss_url(KEY), &c.dest)
        .args(["--part-size", part_size])
        .run();
    out.expect_code(EXIT_INTEGRITY).expect_stderr(&[
        KEY,
        "failed verification",
        "MD5",
        "the store (OSS) says 00000000000000000000000000000000",
    ]);
    assert_file_is(&c.dest, &precious, what);
    assert!(!rgpart(&c.dest).exists() && !rgcp(&c.dest).exists());
}

/// OSS also publishes `Content-MD5` for objects uploaded in one piece; the engine checks it
/// beside the CRC-64 (hashed in object order while the parts complete), and alone when there
/// is no CRC-64. The right MD5 verifies the file; an MD5 that disagrees with the bytes fails
/// with exit 6 naming MD5 and both values, also when the CRC-64 matches, and never replaces
/// DEST.
#[test]
fn the_content_md5_is_checked_beside_the_crc64_and_alone_and_a_wrong_one_fails_naming_both() {
    let c = case(300_000, 31);
    let out = c.get().args(["--part-size", "64KiB"]).run();
    out.expect_ok();
    assert_eq!(
        out.completed()["verification"],
        "verified: CRC-64/XZ + MD5 full-object (OSS)"
    );
    assert_eq!(out.completed()["crc64_verified"], true);
    // A wrong Content-MD5 beside the right CRC-64: the MD5 fails.
    let wrong_md5 = wrong_md5_proxy(&c, true);
    a_wrong_md5_fails_and_keeps_dest(
        &c,
        &wrong_md5,
        "64KiB",
        "DEST after an MD5 failure beside a CRC-64",
    );
    std::fs::remove_file(&c.dest).expect("remove DEST");

    let no_crc = HeaderProxy::start(c.server.emu.addr(), strip_crc());
    let out = Get::new(&no_crc.endpoint(), &oss_url(KEY), &c.dest)
        .args(["--part-size", "64KiB"])
        .run();
    out.expect_ok();
    assert_eq!(
        out.completed()["verification"],
        "verified: MD5 full-object (OSS)"
    );
    assert_eq!(out.completed()["crc64_verified"], false);

    let proxy = wrong_md5_proxy(&c, false);
    a_wrong_md5_fails_and_keeps_dest(&c, &proxy, "64KiB", "DEST after an MD5 failure");
}

/// An object of one part has its MD5 hashed as the bytes arrive, not on a thread reading the
/// part back: the right MD5 still verifies it, and a wrong one still fails with exit 6 and
/// never replaces DEST, beside the CRC-64 and alone.
#[test]
fn the_content_md5_of_a_one_part_object_is_checked_and_a_wrong_one_fails() {
    let c = case(300_000, 32);
    let out = c.get().args(["--part-size", "1MiB"]).run();
    out.expect_ok();
    assert_eq!(out.completed()["parts"], 1);
    assert_eq!(
        out.completed()["verification"],
        "verified: CRC-64/XZ + MD5 full-object (OSS)"
    );
    std::fs::remove_file(&c.dest).expect("remove DEST");
    let wrong_md5 = wrong_md5_proxy(&c, true);
    a_wrong_md5_fails_and_keeps_dest(
        &c,
        &wrong_md5,
        "1MiB",
        "DEST after an MD5 failure of one part beside a CRC-64",
    );
    let proxy = wrong_md5_proxy(&c, false);
    a_wrong_md5_fails_and_keeps_dest(&c, &proxy, "1MiB", "DEST after an MD5 failure of one part");
}
