//! `--jobs auto` (the default) against a server that throttles: the emulator answers 503
//! `SlowDown` to every GET that arrives while more than N requests are in flight. The
//! download must end byte-identical, without a failure, having cut its connections to N or
//! fewer; checked from the emulator's own logs and the reported figures, never from time.

use oss_emulator::{Fault, FaultPlan, FaultRule};
use serde_json::Value;

use crate::common::*;

const MIB: usize = 1 << 20;

#[test]
fn jobs_auto_backs_off_a_server_that_throttles_above_n_requests_and_ends_byte_identical() {
    const N: u64 = 4;
    let oss = Oss::start();
    let key = "tune/throttled.bin";
    let bytes = oss.put(key, 24 * MIB, 1503);
    // Bodies at 4 MiB/s per connection, so that requests overlap as they would on any link
    // slower than loopback (here a body is "sent" once it is in the socket's buffer).
    oss.emu.set_fault_plan(
        FaultPlan::new(15).rule(FaultRule::slow_down_above(N)).rule(
            FaultRule::always(Fault::Throttle {
                bytes_per_second: 4 * MIB as u64,
            })
            .method("GET"),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    // The defaults: --jobs auto, --part-size auto.
    let out = run(
        oss.cmd().arg("--json").arg(oss.url(key)).arg(&dest),
        "default --jobs auto against a throttling server",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "download from a throttling server");

    let log = oss.emu.request_log();
    let gets: Vec<_> = log.iter().filter(|r| r.method == "GET").collect();
    let slow_down = gets
        .iter()
        .filter(|r| r.status == Some(503) && r.error_code.as_deref() == Some("SlowDown"))
        .count();
    assert!(
        slow_down > 0,
        "the server never throttled: the test proves nothing ({} GETs)",
        gets.len()
    );
    // Every 503 went to a request that arrived above N, every answered one at or below it.
    for r in &gets {
        match r.status {
            Some(503) => assert!(r.concurrent > N, "{r:?}"),
            Some(206) => assert!(r.concurrent <= N, "{r:?}"),
            other => panic!("unexpected answer {other:?}: {r:?}"),
        }
    }
    let fault_log = oss.emu.fault_log();
    assert_eq!(
        fault_log.iter().filter(|f| f.rule == 0).count(),
        slow_down,
        "the fault log and the request log agree"
    );

    let events = out.events();
    let started = out.event("started");
    let parts = u(&started["parts"]);
    let jobs: Vec<&Value> = events.iter().filter(|e| e["event"] == "jobs").collect();
    let cuts: Vec<&&Value> = jobs.iter().filter(|e| e["reason"] == "throttled").collect();
    assert!(!cuts.is_empty(), "no throttling cut reported: {jobs:?}");
    for c in &cuts {
        assert!(u(&c["to"]) < u(&c["from"]), "a cut that does not cut: {c}");
    }
    assert_eq!(u(&cuts[0]["from"]), 8, "auto starts at 8 connections");
    let completed = out.event("completed");
    let used = &completed["jobs"];
    assert_eq!(used["auto"], true, "{completed}");
    assert_eq!(u(&used["start"]), 8, "{completed}");
    assert!(
        u(&used["last"]) <= N,
        "converged to {} connections, not at most {N}: {completed}",
        used["last"]
    );
    // Each 503 was retried; nothing else failed.
    assert_eq!(u(&completed["retries"]), slow_down as u64, "{completed}");
    // One answered GET from each part's first byte; the others are idle workers' shares of
    // the last parts in flight (engine/share.rs), each starting inside a part.
    let part_size = u(&started["part_size"]);
    let answered_starts: Vec<u64> = gets
        .iter()
        .filter(|r| r.status == Some(206))
        .map(|r| range_start(r.range.as_deref().expect("every GET is ranged")))
        .collect();
    let at_part_start = answered_starts
        .iter()
        .filter(|&&s| s % part_size == 0)
        .count() as u64;
    assert_eq!(
        at_part_start, parts,
        "one answered GET from each part's start"
    );
    let shares = answered_starts.len() as u64 - at_part_start;
    assert_eq!(
        gets.len() as u64,
        parts + shares + slow_down as u64,
        "one answered GET per part, the shares of the tail, and the throttled ones"
    );
    eprintln!(
        "{} parts, {} GETs ({shares} shares of the tail), {slow_down} answered 503 SlowDown \
         above {N}; jobs events: {jobs:?}",
        parts,
        gets.len()
    );
}

/// The first byte of a `bytes=A-B` range header.
fn range_start(range: &str) -> u64 {
    range
        .strip_prefix("bytes=")
        .and_then(|r| r.split('-').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not a bytes=A-B range: {range:?}"))
}
