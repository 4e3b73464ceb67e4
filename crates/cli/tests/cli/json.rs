//! `--json`: newline-delimited events on stdout that parse, come in order and add up.

use std::collections::BTreeSet;

use oss_emulator::{Fault, FaultPlan, FaultRule};

use crate::common::*;

#[test]
fn json_events_parse_come_in_order_add_up_and_report_retries_of_a_503_burst() {
    let oss = Oss::start();
    let key = "json/object.bin";
    let bytes = oss.put(key, 3 * 1024 * 1024 + 777, 40);
    let total = bytes.len() as u64;
    // A burst of four 503 SlowDown answers to GETs, after the first two parts' requests.
    oss.emu.set_fault_plan(
        FaultPlan::new(1).rule(
            FaultRule::always(Fault::slow_down())
                .method("GET")
                .from_request(oss.emu.request_count() + 4)
                .times(4),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let out = run(
        oss.cmd()
            .args(["--json", "--part-size", "256KiB", "--jobs", "4"])
            .arg(oss.url(key))
            .arg(&dest),
        "--json with a 503 burst",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "--json");
    assert!(
        out.stderr.trim().is_empty(),
        "--json keeps stderr for errors:\n{}",
        out.stderr
    );

    let events = out.events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"completed"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "started").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "completed").count(), 1);
    assert!(!kinds.contains(&"failed"), "{kinds:?}");

    let started = out.event("started");
    let completed = out.event("completed");
    assert_eq!(started["key"], key);
    assert_eq!(u(&started["total_bytes"]), total);
    assert_eq!(started["resumed"], false);
    let reused = u(&started["reused_bytes"]);

    // Each part once; the parts and what was re-used add up to the object.
    let done = parts_done(&events);
    let distinct: BTreeSet<u64> = events
        .iter()
        .filter(|e| e["event"] == "part_done")
        .map(|e| u(&e["part"]))
        .collect();
    assert_eq!(distinct.len(), done.len(), "a part reported twice");
    assert_eq!(done.len() as u64, u(&started["parts"]));
    let done_bytes: u64 = done.iter().map(|(a, b)| b - a).sum();
    assert_eq!(done_bytes + reused, total);
    assert!(u(&completed["fetched_bytes"]) >= done_bytes, "{completed}");
    assert_eq!(u(&completed["end"]) - u(&completed["start"]), total);
    assert_eq!(completed["crc64_verified"], true);
    assert_eq!(
        completed["destination"].as_str(),
        Some(dest.to_str().unwrap())
    );

    // Progress never goes backwards here (no response was discarded) and ends at the total.
    let progress: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "progress")
        .map(|e| {
            assert_eq!(u(&e["total_bytes"]), total);
            u(&e["done_bytes"])
        })
        .collect();
    assert!(!progress.is_empty());
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert_eq!(progress.last(), Some(&total));

    // Every injected 503 shows up as a retry event, and in the summary.
    let injected = oss.emu.fault_log().len();
    assert_eq!(injected, 4);
    let retries: Vec<_> = events.iter().filter(|e| e["event"] == "retry").collect();
    assert_eq!(retries.len(), injected, "{}", out.stdout);
    for r in &retries {
        let cause = r["cause"].as_str().unwrap();
        assert!(cause.contains("SlowDown") || cause.contains("503"), "{r}");
        assert!(u(&r["attempt"]) >= 1);
    }
    assert_eq!(u(&completed["retries"]), injected as u64);
    // A retry is reported before the part it concerns is done.
    for r in &retries {
        let part = u(&r["part"]);
        let retry_at = events.iter().position(|e| e == *r).unwrap();
        let done_at = events
            .iter()
            .position(|e| e["event"] == "part_done" && u(&e["part"]) == part)
            .unwrap();
        assert!(retry_at < done_at, "retry of part {part} after it was done");
    }
}

#[test]
fn json_failure_ends_with_a_failed_event_and_the_error_on_stderr() {
    let oss = Oss::start();
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        oss.cmd()
            .arg("--json")
            .arg(oss.url("nothing/here.bin"))
            .arg(dir.path().join("out.bin")),
        "--json, missing key",
    );
    out.expect_code(3).stderr_has(&["nothing/here.bin"]);
    let events = out.events();
    let last = events.last().expect("at least the failed event");
    assert_eq!(last["event"], "failed", "{}", out.stdout);
    assert!(
        last["error"].as_str().unwrap().contains("nothing/here.bin"),
        "{last}"
    );
    assert!(listing(dir.path()).is_empty());
}
