//! Issue 19, item 10: a lowest-speed rule (`--speed-limit` / `--speed-time`, as curl; alias
//! `--lowest-speed-limit`, as aria2c). A trickle used to run for ever, since every byte that
//! arrived reset the retry count. No durations are asserted: only what was abandoned, how
//! many attempts it took, where each retry resumed, and how the run ended.

use std::ops::Range;

use crate::common::*;

const KIB: u64 = 1 << 10;

fn retries(out: &Outcome) -> Vec<serde_json::Value> {
    out.events()
        .into_iter()
        .filter(|e| e["event"] == "retry")
        .collect()
}

#[test]
fn a_trickling_server_is_abandoned_each_slow_connection_counting_as_an_attempt() {
    let oss = Oss::start();
    let key = "slow/trickle.bin";
    oss.put(key, 256 * KIB as usize, 80);
    // 2 KiB/s per connection, far below the 64 KiB/s asked for.
    oss.throttle_gets(2 * KIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let out = run(
        oss.cmd()
            .args([
                "--speed-limit",
                "64K",
                "--speed-time",
                "300ms",
                "--retries",
                "3",
                "--jobs",
                "1",
                "--json",
            ])
            .arg(oss.url(key))
            .arg(&dest),
        "trickle",
    );
    // Three slow attempts in a row (each made progress), then the retries ran out: exit 8.
    out.expect_code(8).stderr_has(&[
        "slower than the lowest speed of 65536 bytes/s",
        "failed after 3 requests",
    ]);
    let retries = retries(&out);
    assert_eq!(retries.len(), 2, "{}", out.stdout);
    for r in &retries {
        assert!(r["cause"].as_str().unwrap().contains("lowest speed"), "{r}");
    }
    // Each attempt was its own request, and each resumed where the previous one stopped.
    let gets: Vec<Range<u64>> = oss.get_ranges(key);
    assert_eq!(gets.len(), 3, "{gets:?}");
    for (i, r) in retries.iter().enumerate() {
        assert_eq!(gets[i + 1].start, u(&r["resume_at"]), "{gets:?} {r}");
        assert!(
            gets[i + 1].start > gets[i].start,
            "no progress kept: {gets:?}"
        );
    }
    assert!(!dest.exists());
}

#[test]
fn connections_faster_than_the_lowest_speed_and_our_own_rate_limit_are_left_alone() {
    let oss = Oss::start();
    let key = "slow/fine.bin";
    let bytes = oss.put(key, 512 * KIB as usize, 81);
    // 1 MiB/s per connection against a floor of 1 KiB/s per second measured.
    oss.throttle_gets(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let out = run(
        oss.cmd()
            .args(["--lowest-speed-limit", "1K", "--speed-time", "1", "--json"])
            .arg(oss.url(key))
            .arg(&dest),
        "fast enough",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "fast enough");
    assert!(retries(&out).is_empty(), "{}", out.stdout);

    // --limit-rate far below --speed-limit: the time spent waiting for our own limit is not
    // the connection's slowness.
    oss.emu.clear_fault_plan();
    let dest = dir.path().join("limited.bin");
    let out = run(
        oss.cmd()
            .args([
                "--limit-rate",
                "256K",
                "--speed-limit",
                "10M",
                "--speed-time",
                "200ms",
                "--jobs",
                "2",
                "--part-size",
                "256K",
                "--json",
            ])
            .arg(oss.url(key))
            .arg(&dest),
        "--limit-rate below --speed-limit",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "rate-limited");
    assert!(retries(&out).is_empty(), "{}", out.stdout);
}
