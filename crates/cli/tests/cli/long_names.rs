//! Long DEST names: a 255-byte file name is valid, so the temp file (`.rgpart`) and the
//! checkpoint (`.rgcp`) beside it must fit the same 255-byte limit, and a stopped download
//! must find them again.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;

/// The limit on one file name on the file systems the tests run on (ext4, XFS, tmpfs, …).
const NAME_MAX: usize = 255;

/// Every name in `dir`, each checked to fit the limit.
fn fitting_names(dir: &Path) -> BTreeSet<String> {
    let names = listing(dir);
    for n in &names {
        assert!(n.len() <= NAME_MAX, "{} bytes: {n}", n.len());
    }
    names
}

fn part_and_checkpoint(dest: &Path) -> BTreeSet<String> {
    [
        resume_core::with_suffix(dest, resume_core::PART_SUFFIX),
        resume_core::with_suffix(dest, ".rgcp"),
    ]
    .iter()
    .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
    .collect()
}

#[test]
fn names_of_250_and_255_bytes_download_stop_and_resume_with_the_checkpoint_beside_them() {
    let oss = Oss::start();
    for (len, seed) in [(250, 60), (255, 61)] {
        let key = format!("long/{len}.bin");
        let bytes = oss.put(&key, 1 << 20, seed);
        let dir = tempfile::tempdir().unwrap();
        let name = "L".repeat(len);
        let dest = dir.path().join(&name);
        let cmd = || {
            let mut cmd = oss.cmd();
            cmd.args(["--part-size", "64KiB", "--jobs", "1", "--json"])
                .arg(oss.url(&key))
                .arg(&dest);
            cmd
        };

        oss.deny_nth_get(&key, 5);
        let first = run(&mut cmd(), "download stopped after 4 parts");
        first.expect_code(4);
        assert_eq!(parts_done(&first.events()).len(), 4, "{}", first.stdout);
        let kept = fitting_names(dir.path());
        assert_eq!(
            kept,
            part_and_checkpoint(&dest),
            "{len}: temp and checkpoint"
        );
        for n in &kept {
            assert!(n.starts_with(&"L".repeat(200)), "readable: {n}");
        }

        oss.emu.clear_fault_plan();
        oss.emu.clear_logs();
        let second = run(&mut cmd(), "resumed download");
        second.expect_code(0);
        let started = second.event("started");
        assert_eq!(started["resumed"], true, "{len}: {started}");
        assert_eq!(u(&started["parts_reused"]), 4, "{len}: {started}");
        assert!(
            second
                .events()
                .iter()
                .all(|e| e["event"] != "checkpoint_discarded"),
            "{}",
            second.stdout
        );
        let ranges = oss.get_ranges(&key);
        assert!(
            ranges.iter().all(|r| r.start >= 4 * (64 << 10)),
            "done parts fetched again: {ranges:?}"
        );
        assert_file(&dest, &bytes, "resumed long name");
        assert_eq!(fitting_names(dir.path()), names(&[&name]));
    }
}

#[test]
fn a_255_byte_name_killed_mid_download_resumes_from_checkpoint_dir() {
    let oss = Oss::start();
    let key = "long/killed.bin";
    let bytes = oss.put(key, 2 << 20, 62);
    // 2 connections at 256 KiB/s each: about 4 s in all, time to kill it after a few parts.
    oss.throttle_gets(256 << 10);
    let dir = tempfile::tempdir().unwrap();
    let cp_dir = tempfile::tempdir().unwrap();
    let name = "K".repeat(NAME_MAX);
    let dest = dir.path().join(&name);
    let cmd = || {
        let mut cmd = oss.cmd();
        cmd.args(["--part-size", "128KiB", "--jobs", "2", "--json"])
            .arg("--checkpoint-dir")
            .arg(cp_dir.path())
            .arg(oss.url(key))
            .arg(&dest);
        cmd
    };

    let first = Running::spawn(&mut cmd(), "download to kill").kill_after_parts(2);
    assert_eq!(first.code, None, "killed by the signal: {}", first.stderr);
    let part_name = resume_core::with_suffix(&dest, resume_core::PART_SUFFIX);
    assert_eq!(
        fitting_names(dir.path()),
        names(&[&part_name.file_name().unwrap().to_string_lossy()]),
        "only the temp file beside DEST"
    );
    let checkpoints = fitting_names(cp_dir.path());
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    assert!(checkpoints.iter().all(|n| n.ends_with(".rgcp")));

    oss.emu.clear_fault_plan();
    let second = run(&mut cmd(), "resumed download");
    second.expect_code(0);
    let started = second.event("started");
    assert_eq!(started["resumed"], true, "{started}");
    assert!(u(&started["parts_reused"]) >= 2, "{started}");
    assert_file(&dest, &bytes, "resumed after kill");
    assert_eq!(fitting_names(dir.path()), names(&[&name]));
    assert!(fitting_names(cp_dir.path()).is_empty());
}

#[test]
fn long_names_sharing_their_first_254_bytes_keep_separate_progress() {
    let oss = Oss::start();
    let dir = tempfile::tempdir().unwrap();
    let shared = "S".repeat(NAME_MAX - 1);
    let runs: Vec<_> = [("a", 3u64, 63u64), ("b", 5, 64)]
        .into_iter()
        .map(|(last, parts, seed)| {
            let key = format!("long/{last}.bin");
            let bytes = oss.put(&key, 1 << 20, seed);
            (
                key,
                dir.path().join(format!("{shared}{last}")),
                parts,
                bytes,
            )
        })
        .collect();
    let cmd = |key: &str, dest: &Path| {
        let mut cmd = oss.cmd();
        cmd.args(["--part-size", "64KiB", "--jobs", "1", "--json"])
            .arg(oss.url(key))
            .arg(dest);
        cmd
    };
    let mut expected = BTreeSet::new();
    for (key, dest, parts, _) in &runs {
        oss.deny_nth_get(key, parts + 1);
        run(&mut cmd(key, dest), "stopped download").expect_code(4);
        expected.extend(part_and_checkpoint(dest));
    }
    assert_eq!(expected.len(), 4, "four distinct names: {expected:?}");
    assert_eq!(fitting_names(dir.path()), expected);

    oss.emu.clear_fault_plan();
    for (key, dest, parts, bytes) in &runs {
        let out = run(&mut cmd(key, dest), "resumed download");
        out.expect_code(0);
        let started = out.event("started");
        assert_eq!(u(&started["parts_reused"]), *parts, "{key}: {started}");
        assert_file(dest, bytes, key);
    }
    let all: BTreeSet<String> = runs
        .iter()
        .map(|(_, d, _, _)| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fitting_names(dir.path()), all);
}

#[test]
fn a_name_over_the_limit_is_refused_before_any_request() {
    let oss = Oss::start();
    let key = "long/too.bin";
    oss.put(key, 100_000, 65);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("T".repeat(NAME_MAX + 1));
    let out = run(
        oss.cmd().arg(oss.url(key)).arg(&dest),
        "256-byte destination name",
    );
    out.expect_code(7)
        .stderr_has(&["256 bytes", "at most 255", "choose a shorter file name"]);
    assert!(listing(dir.path()).is_empty());
    assert!(
        oss.emu.request_log().is_empty(),
        "refused before asking the server: {:?}",
        oss.emu.request_log()
    );
}

#[test]
fn a_directory_dest_takes_a_255_byte_key_segment() {
    let oss = Oss::start();
    let segment = "k".repeat(NAME_MAX);
    let key = format!("dir/{segment}");
    let bytes = oss.put(&key, 300_000, 66);
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        oss.cmd()
            .args(["--part-size", "64KiB"])
            .arg(oss.url(&key))
            .arg(dir.path()),
        "key with a 255-byte last segment",
    );
    out.expect_code(0);
    assert_file(&dir.path().join(&segment), &bytes, "named after the key");
    assert_eq!(fitting_names(dir.path()), names(&[&segment]));
}

#[test]
fn the_shortened_checkpoint_of_a_long_name_is_refused_as_a_destination() {
    let oss = Oss::start();
    let key = "long/guarded.bin";
    let bytes = oss.put(key, 1 << 20, 67);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("G".repeat(NAME_MAX));
    let cmd = |dest: &Path| {
        let mut cmd = oss.cmd();
        cmd.args(["--part-size", "64KiB", "--jobs", "1", "--json"])
            .arg(oss.url(key))
            .arg(dest);
        cmd
    };
    oss.deny_nth_get(key, 3);
    run(&mut cmd(&dest), "stopped download").expect_code(4);
    oss.emu.clear_fault_plan();
    let checkpoint = resume_core::with_suffix(&dest, ".rgcp");
    let saved = std::fs::read(&checkpoint).expect("the checkpoint of the stopped download");

    let out = run(&mut cmd(&checkpoint), "download into the checkpoint file");
    out.expect_code(2)
        .stderr_has(&["is a checkpoint file", "choose another destination"]);
    assert_eq!(std::fs::read(&checkpoint).unwrap(), saved, "progress kept");

    let resumed = run(&mut cmd(&dest), "resumed download");
    resumed.expect_code(0);
    assert_eq!(u(&resumed.event("started")["parts_reused"]), 2);
    assert_file(&dest, &bytes, "resumed after the refusal");
}
