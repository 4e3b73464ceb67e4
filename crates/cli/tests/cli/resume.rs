//! Ctrl-C and resume: the real signal, the real checkpoint, the same command run again.

use std::cell::Cell;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
fn sigint_exits_130_keeps_progress_and_the_same_command_resumes_without_refetching_done_parts() {
    let oss = Oss::start();
    let key = "resume/big.bin";
    let bytes = oss.put(key, 4 << 20, 30);
    let total = bytes.len() as u64;
    // 4 connections at 256 KiB/s each: about 4 s for the whole object, so there is time to
    // interrupt it after a few parts.
    oss.throttle_gets(256 << 10);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let cmd = || {
        let mut cmd = oss.cmd();
        cmd.args(["--part-size", "128KiB", "--jobs", "4", "--json"])
            .arg(oss.url(key))
            .arg(&dest);
        cmd
    };

    let mut first = Running::spawn(&mut cmd(), "download to interrupt");
    let (progressed, parts) = (Cell::new(false), Cell::new(0u32));
    first.wait_for_line(Duration::from_secs(60), |line| {
        let e: Value = serde_json::from_str(line).unwrap_or_default();
        if e["event"] == "progress" && e["done_bytes"].as_u64().unwrap_or(0) > 0 {
            progressed.set(true);
        }
        if e["event"] == "part_done" {
            parts.set(parts.get() + 1);
        }
        progressed.get() && parts.get() >= 2
    });
    first.interrupt();
    let first = first.finish(RUN_TIMEOUT);
    first.expect_code(130).stderr_has(&[
        "interrupted",
        key,
        "saved: ",
        "out.bin.rgpart and ",
        "out.bin.rgcp; run the same command to resume",
    ]);
    let events = first.events();
    let done_before = parts_done(&events);
    assert!(done_before.len() >= 2, "{}", first.stdout);
    let done_bytes: u64 = done_before.iter().map(|(a, b)| b - a).sum();
    assert!(done_bytes < total, "interrupted before the end");
    assert_eq!(
        events.last().unwrap()["event"],
        "failed",
        "{}",
        first.stdout
    );
    assert_eq!(
        listing(dir.path()),
        names(&["out.bin.rgcp", "out.bin.rgpart"]),
        "resume state kept, DEST not created"
    );

    // The same command again, on a fast network.
    oss.emu.clear_fault_plan();
    oss.emu.clear_logs();
    let second = run(&mut cmd(), "resumed download");
    second.expect_code(0);
    assert_file(&dest, &bytes, "resumed download");
    assert_eq!(listing(dir.path()), names(&["out.bin"]));
    let events = second.events();
    let started = second.event("started");
    assert_eq!(started["resumed"], true, "{started}");
    let reused = u(&started["reused_bytes"]);
    assert!(reused > 0, "{started}");
    // Everything reported done before the interrupt is reused (the checkpoint is written
    // before a part is reported).
    assert!(reused >= done_bytes, "{reused} < {done_bytes}: {started}");
    // A part interrupted mid-way resumes from its saved beginning: its `part_done` range
    // covers bytes counted in `reused_bytes` too, so the bytes fetched now are the
    // completed event's count (the request log below checks it), and no part reported done
    // before the interrupt is reported again.
    let completed = second.event("completed");
    assert_eq!(u(&completed["reused_bytes"]), reused);
    let fetched_now = u(&completed["fetched_bytes"]);
    assert_eq!(fetched_now + reused, total, "{}", second.stdout);
    for (a, b) in parts_done(&events) {
        assert!(
            done_before.iter().all(|&(c, d)| b <= c || a >= d),
            "part {a}..{b} reported again after the resume: {}",
            second.stdout
        );
    }

    // No part reported done before the interrupt was requested again.
    let ranges = oss.get_ranges(key);
    assert!(!ranges.is_empty());
    for r in &ranges {
        for &(a, b) in &done_before {
            assert!(
                r.end <= a || r.start >= b,
                "the resumed run fetched {r:?}, overlapping part {a}..{b} done before the interrupt"
            );
        }
    }
    let requested: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    assert_eq!(
        requested,
        total - reused,
        "only the missing bytes were requested"
    );
}
