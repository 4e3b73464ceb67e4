//! Issue 19, items 7 and 8: the part layout.
//!
//! - 7: a part size that would cut the download into more than 100 000 parts is raised (said
//!   once), so memory and checkpoint stay bounded whatever the object and part size.
//! - 8: running again after an interrupt with another `--part-size` (or `--jobs`) resumes
//!   with the saved layout (said once), fetching no saved byte again; `--start-over` discards
//!   the saved progress instead.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Parts 0..3 of 512 KiB are saved: the 5th GET (part 4) is denied, with one job.
fn interrupted_at_part_4(oss: &Oss, key: &str, dest: &Path) -> Vec<u8> {
    let bytes = oss.put(key, 4 * MIB as usize, 71);
    oss.deny_nth_get(key, 5);
    run(
        oss.cmd()
            .args(["--part-size", "512KiB", "--jobs", "1"])
            .arg(oss.url(key))
            .arg(dest),
        "first run, stopped at part 4",
    )
    .expect_code(4);
    oss.emu.clear_fault_plan();
    bytes
}

fn events_named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

#[test]
fn another_part_size_or_job_count_after_an_interrupt_resumes_the_saved_layout_and_refetches_nothing()
 {
    let oss = Oss::start();
    let key = "layout/resumed.bin";
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let bytes = interrupted_at_part_4(&oss, key, &dest);
    let saved = 0..4 * 512 * KIB;
    let before = oss.get_ranges(key).len();

    let out = run(
        oss.cmd()
            .args(["--part-size", "1MiB", "--jobs", "3", "--json"])
            .arg(oss.url(key))
            .arg(&dest),
        "rerun with --part-size 1MiB --jobs 3",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "resumed with the saved layout");
    let events = out.events();
    let said = events_named(&events, "part_size");
    assert_eq!(said.len(), 1, "said once:\n{}", out.stdout);
    assert_eq!(said[0]["reason"], "checkpoint");
    assert_eq!(u(&said[0]["requested"]), MIB);
    assert_eq!(u(&said[0]["used"]), 512 * KIB);
    assert_eq!(u(&said[0]["parts"]), 8);
    let started = out.event("started");
    assert_eq!(
        (u(&started["part_size"]), u(&started["parts_reused"])),
        (512 * KIB, 4)
    );
    assert!(events_named(&events, "checkpoint_discarded").is_empty());
    // No saved byte was asked for again.
    let rerun: Vec<Range<u64>> = oss.get_ranges(key)[before..].to_vec();
    assert!(!rerun.is_empty());
    for r in &rerun {
        assert!(
            !overlaps(r, &saved),
            "saved bytes fetched again: {r:?} (all: {rerun:?})"
        );
    }
    assert_eq!(
        rerun.iter().map(|r| r.end - r.start).sum::<u64>(),
        4 * MIB - saved.end,
        "{rerun:?}"
    );

    // Only --jobs changed: nothing to say, nothing fetched again.
    let key = "layout/jobs.bin";
    let dest = dir.path().join("jobs.bin");
    let bytes = interrupted_at_part_4(&oss, key, &dest);
    let before = oss.get_ranges(key).len();
    let out = run(
        oss.cmd()
            .args(["--part-size", "512KiB", "--jobs", "4", "--json"])
            .arg(oss.url(key))
            .arg(&dest),
        "rerun with --jobs 4",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "resumed with more jobs");
    assert!(events_named(&out.events(), "part_size").is_empty());
    assert_eq!(u(&out.event("started")["parts_reused"]), 4);
    for r in &oss.get_ranges(key)[before..] {
        assert!(!overlaps(r, &saved), "saved bytes fetched again: {r:?}");
    }
}

#[test]
fn on_a_terminal_less_stderr_the_saved_part_size_is_one_line_naming_start_over() {
    let oss = Oss::start();
    let key = "layout/human.bin";
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let bytes = interrupted_at_part_4(&oss, key, &dest);
    let out = run(
        oss.cmd()
            .args(["--part-size", "2MiB"])
            .arg(oss.url(key))
            .arg(&dest),
        "rerun with --part-size 2MiB",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "resumed");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("part size"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    for needle in [
        "saved progress was made with, 512 KiB",
        "not the 2 MiB",
        "--start-over",
    ] {
        assert!(lines[0].contains(needle), "{needle:?} in {}", lines[0]);
    }
    assert!(
        out.stderr.contains("reused from the checkpoint"),
        "{}",
        out.stderr
    );
}

#[test]
fn start_over_discards_the_saved_progress_and_uses_the_part_size_asked_for() {
    let oss = Oss::start();
    let key = "layout/start-over.bin";
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let bytes = interrupted_at_part_4(&oss, key, &dest);
    let before = oss.get_ranges(key).len();
    let out = run(
        oss.cmd()
            .args(["--part-size", "1MiB", "--start-over", "--json"])
            .arg(oss.url(key))
            .arg(&dest),
        "--start-over",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "started over");
    let events = out.events();
    assert!(
        events_named(&events, "part_size").is_empty(),
        "{}",
        out.stdout
    );
    let discarded = out.event("checkpoint_discarded");
    assert!(
        discarded["reason"]
            .as_str()
            .unwrap()
            .contains("starting over"),
        "{discarded}"
    );
    let started = out.event("started");
    assert_eq!(
        (u(&started["part_size"]), u(&started["parts_reused"])),
        (MIB, 0)
    );
    let mut rerun: Vec<Range<u64>> = oss.get_ranges(key)[before..].to_vec();
    rerun.sort_by_key(|r| r.start);
    assert_eq!(
        rerun,
        vec![0..MIB, MIB..2 * MIB, 2 * MIB..3 * MIB, 3 * MIB..4 * MIB]
    );
    assert_eq!(listing(dir.path()), names(&["out.bin"]));
}

/// The case: `--part-size 8` (meant as 8 MiB) made one part per 8 bytes. Here a
/// 64 MiB object would be 8 388 608 parts; it is cut into at most 100 000, said once, and the
/// process stays small. Interrupted once parts are recorded (downloading 100 000 parts of
/// 672 bytes is not the point): the checkpoint is bounded too.
#[test]
fn part_size_8_is_raised_to_keep_within_100_000_parts_said_once_and_memory_stays_small() {
    let oss = Oss::start();
    let key = "layout/tiny-parts.bin";
    let size = 64 * MIB;
    oss.put(key, size as usize, 72);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let mut running = Running::spawn(
        oss.cmd()
            .args(["--part-size", "8", "--json"])
            .arg(oss.url(key))
            .arg(&dest),
        "--part-size 8",
    );
    let said: Value = serde_json::from_str(
        &running
            .wait_for_line(RUN_TIMEOUT, |l| l.contains("\"part_size\""))
            .text,
    )
    .unwrap();
    let used = size.div_ceil(100_000);
    assert_eq!(said["reason"], "max_parts");
    assert_eq!(u(&said["max_parts"]), 100_000);
    assert_eq!((u(&said["requested"]), u(&said["used"])), (8, used));
    assert_eq!(u(&said["parts"]), size.div_ceil(used));
    assert!(u(&said["parts"]) <= 100_000);
    let started: Value = serde_json::from_str(
        &running
            .wait_for_line(RUN_TIMEOUT, |l| l.contains("\"started\""))
            .text,
    )
    .unwrap();
    assert_eq!(u(&started["part_size"]), used);
    for _ in 0..200 {
        running.wait_for_line(RUN_TIMEOUT, |l| l.contains("\"part_done\""));
    }
    let peak = running.peak_rss();
    running.interrupt();
    let out = running.finish(RUN_TIMEOUT);
    out.expect_code(130);
    let events = out.events();
    assert_eq!(events_named(&events, "part_size").len(), 1, "said once");
    let checkpoint = std::fs::metadata(dir.path().join("out.bin.rgcp"))
        .expect("the checkpoint of the interrupted run")
        .len();
    eprintln!(
        "--part-size 8, 64 MiB: {} parts of {used} bytes; peak RSS {:.1} MiB; checkpoint {} \
         bytes",
        u(&said["parts"]),
        peak as f64 / MIB as f64,
        checkpoint
    );
    // Before the bound: 8 388 608 parts, ~470 MB of per-part state. The bound keeps it to a
    // few MB over the process's base (the 64 MiB emulator is in the test, not here).
    assert!(peak < 64 * MIB, "peak RSS {peak} bytes");
    // Snapshot + 64-byte journal records: at most ~110 bytes per part.
    assert!(checkpoint < 110 * 100_000, "checkpoint {checkpoint} bytes");

    // Without --json: one line on stderr.
    let running = Running::spawn(
        oss.cmd()
            .args(["--part-size", "8", "--start-over"])
            .arg(oss.url(key))
            .arg(&dest),
        "--part-size 8, human",
    );
    running.wait_for_stderr(RUN_TIMEOUT, "using parts of");
    running.interrupt();
    let out = running.finish(Duration::from_secs(120));
    out.expect_code(130);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("using parts of"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].contains(&format!("using parts of {used} B instead of 8 B"))
            && lines[0].contains("at most 100000 parts"),
        "{}",
        lines[0]
    );
}
