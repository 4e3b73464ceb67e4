//! `--limit-rate`: one token bucket across all workers, checked from outside the process with
//! the `t_ms` timestamps the `--json` events carry (taken as the engine accepts the bytes, so
//! pipe delays on a loaded machine cannot compress a window).
//!
//! Only an upper bound is asserted: a slow machine makes the download slower, never faster,
//! so it cannot fail this test.

use crate::common::*;

const MIB: u64 = 1 << 20;

#[test]
fn limit_rate_never_exceeds_the_limit_by_more_than_10_percent_over_any_2s_window() {
    let oss = Oss::start();
    let key = "rate/limited.bin";
    let size = 24 * MIB;
    let bytes = oss.put(key, size as usize, 50);
    let rate = 4 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let out = run(
        oss.cmd()
            .args([
                "--limit-rate",
                "4MiB",
                "--jobs",
                "8",
                "--part-size",
                "1MiB",
                "--json",
            ])
            .arg(oss.url(key))
            .arg(&dest),
        "--limit-rate 4MiB",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "--limit-rate");

    // (arrival time, bytes done) from started (0), every progress line, and completed.
    let mut samples = Vec::new();
    for line in &out.lines {
        let e: serde_json::Value = serde_json::from_str(&line.text).unwrap();
        let done = match e["event"].as_str() {
            Some("started") => u(&e["reused_bytes"]),
            Some("progress") => u(&e["done_bytes"]),
            Some("completed") => u(&e["end"]) - u(&e["start"]),
            _ => continue,
        };
        samples.push((u(&e["t_ms"]), done));
    }
    assert!(
        samples.len() >= 10,
        "too few progress lines: {}",
        out.stdout
    );
    let completed = out.event("completed");

    // The bound, with no allowance: the engine reserves every chunk before accepting
    // it, so accepted bytes follow the limit (resume-core's rate.rs).
    let burst = rate / 20;
    let window_ms = 2_000u64;
    let limit = (2.0 * rate as f64 * 1.10) as u64;
    let mut worst = 0u64;
    for (i, &(t0, d0)) in samples.iter().enumerate() {
        for &(t1, d1) in &samples[i + 1..] {
            if t1 - t0 > window_ms {
                break;
            }
            worst = worst.max(d1 - d0);
        }
    }
    let span = (samples.last().unwrap().0 - samples.first().unwrap().0) as f64 / 1000.0;
    let engine_secs = u(&completed["elapsed_ms"]) as f64 / 1000.0;
    let min_secs = (size - burst) as f64 / rate as f64;
    eprintln!(
        "--limit-rate 4MiB, 24 MiB, 8 jobs: {} samples; busiest 2 s window {:.2} MiB (bound \
         {:.2} MiB = 2 s x 4 MiB/s x 1.10); {span:.2} s of events, {engine_secs:.2} s by the \
         engine, {:.2} s by the test; minimum {min_secs:.2} s; mean rate {:.2} MiB/s",
        samples.len(),
        worst as f64 / MIB as f64,
        limit as f64 / MIB as f64,
        out.elapsed.as_secs_f64(),
        size as f64 / MIB as f64 / engine_secs,
    );
    assert!(
        worst <= limit,
        "{worst} bytes in one 2 s window, more than {limit} (2 s x {rate} B/s x 1.10)"
    );
    // Not uncapped: at most `burst` can come free, the rest takes its time at `rate`.
    assert!(
        engine_secs >= min_secs,
        "the engine took {engine_secs:.2} s, less than {min_secs:.2} s"
    );
    assert!(out.elapsed.as_secs_f64() >= min_secs);
    assert!(
        span >= min_secs - 2.0,
        "events spread over {span:.2} s only"
    );
}
