//! Downloads that succeed: every byte right, exit 0, nothing but DEST left behind.

use oss_emulator::{AuthMethod, Fault, FaultPlan, FaultRule};

use crate::common::*;

/// 5 MiB and change: no part size used below divides it.
const SIZE: usize = 5 * 1024 * 1024 + 12_345;

#[test]
fn downloads_are_byte_identical_for_several_part_sizes_and_job_counts() {
    let oss = Oss::start();
    let key = "data/object.bin";
    let bytes = oss.put(key, SIZE, 1);
    let size = SIZE as u64;
    for (part_size, part_bytes, jobs) in [
        ("1MiB", 1u64 << 20, "1"),
        ("256KiB", 256 << 10, "4"),
        ("100000", 100_000, "3"),
        ("3M", 3 << 20, "8"),
        ("64MiB", 64 << 20, "2"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let what = format!("--part-size {part_size} --jobs {jobs}");
        let out = run(
            oss.cmd()
                .args(["--part-size", part_size, "--jobs", jobs, "--json"])
                .arg(oss.url(key))
                .arg(&dest),
            &what,
        );
        out.expect_code(0);
        assert_file(&dest, &bytes, &what);
        assert_eq!(listing(dir.path()), names(&["out.bin"]), "{what}");
        let started = out.event("started");
        assert_eq!(u(&started["part_size"]), part_bytes, "{what}");
        assert_eq!(
            u(&started["parts"]),
            size.div_ceil(part_bytes),
            "{what}: {started}"
        );
        let completed = out.event("completed");
        assert_eq!(completed["crc64_verified"], true, "{what}: {completed}");
        assert_eq!(
            u(&completed["crc64"]),
            oss.emu.head_object(BUCKET, key).unwrap().crc64
        );
    }
}

#[test]
fn dest_as_an_existing_directory_takes_the_keys_file_name() {
    let oss = Oss::start();
    let key = "deep/path/report-2024.csv";
    let bytes = oss.put(key, 300_000, 2);
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        oss.cmd()
            .args(["--part-size", "64KiB"])
            .arg(oss.url(key))
            .arg(dir.path()),
        "DEST is a directory",
    );
    out.expect_code(0)
        .stderr_has(&["downloaded", key, "report-2024.csv"]);
    assert_eq!(listing(dir.path()), names(&["report-2024.csv"]));
    assert_file(
        &dir.path().join("report-2024.csv"),
        &bytes,
        "DEST directory",
    );
}

/// With `--checkpoint-dir`, the checkpoint of an interrupted download lives there (and not
/// beside DEST), the next run resumes from it, and success removes it.
#[test]
fn checkpoint_dir_holds_the_checkpoint_and_a_rerun_resumes_from_it() {
    let oss = Oss::start();
    let key = "cp/dir.bin";
    let bytes = oss.put(key, 1 << 20, 3);
    let dir = tempfile::tempdir().unwrap();
    let cp_dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    // Parts 0-2 arrive (jobs 1, in order); then every GET fails and the run gives up.
    oss.emu.set_fault_plan(
        FaultPlan::new(1).rule(
            FaultRule::always(Fault::slow_down())
                .method("GET")
                .key(key)
                .from_request(oss.emu.request_count() + 5),
        ),
    );
    let args = |cmd: &mut std::process::Command| {
        cmd.args([
            "--part-size",
            "128KiB",
            "--jobs",
            "1",
            "--retries",
            "1",
            "--json",
        ])
        .arg("--checkpoint-dir")
        .arg(cp_dir.path())
        .arg(oss.url(key))
        .arg(&dest);
    };
    let first = {
        let mut cmd = oss.cmd();
        args(&mut cmd);
        run(&mut cmd, "--checkpoint-dir, failing")
    };
    first.expect_code(8);
    let done = parts_done(&first.events());
    assert!(
        !done.is_empty(),
        "some parts before the failure\n{}",
        first.stdout
    );
    assert_eq!(
        listing(dir.path()),
        names(&["out.bin.rgpart"]),
        "the checkpoint is not beside DEST"
    );
    assert_eq!(
        listing(cp_dir.path()).len(),
        1,
        "one checkpoint in --checkpoint-dir"
    );

    oss.emu.clear_fault_plan();
    let second = {
        let mut cmd = oss.cmd();
        args(&mut cmd);
        run(&mut cmd, "--checkpoint-dir, rerun")
    };
    second.expect_code(0);
    let started = second.event("started");
    assert_eq!(started["resumed"], true, "{started}");
    let done_bytes: u64 = done.iter().map(|(a, b)| b - a).sum();
    assert_eq!(u(&started["reused_bytes"]), done_bytes, "{started}");
    assert_file(&dest, &bytes, "--checkpoint-dir rerun");
    assert_eq!(listing(dir.path()), names(&["out.bin"]));
    assert!(
        listing(cp_dir.path()).is_empty(),
        "checkpoint removed on success"
    );
}

/// With `--no-checkpoint` a failed download leaves nothing behind, and the next run starts
/// over.
#[test]
fn no_checkpoint_leaves_nothing_behind_and_starts_over() {
    let oss = Oss::start();
    let key = "cp/none.bin";
    let bytes = oss.put(key, 1 << 20, 4);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    oss.emu.set_fault_plan(
        FaultPlan::new(1).rule(
            FaultRule::always(Fault::slow_down())
                .method("GET")
                .key(key)
                .from_request(oss.emu.request_count() + 5),
        ),
    );
    let cmd = || {
        let mut cmd = oss.cmd();
        cmd.args(["--part-size", "128KiB", "--jobs", "1", "--retries", "1"])
            .args(["--no-checkpoint", "--json"])
            .arg(oss.url(key))
            .arg(&dest);
        cmd
    };
    let first = run(&mut cmd(), "--no-checkpoint, failing");
    first.expect_code(8);
    assert!(!parts_done(&first.events()).is_empty());
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    oss.emu.clear_fault_plan();
    let second = run(&mut cmd(), "--no-checkpoint, rerun");
    second.expect_code(0);
    let started = second.event("started");
    assert_eq!(started["resumed"], false, "{started}");
    assert_eq!(u(&started["reused_bytes"]), 0, "{started}");
    assert_file(&dest, &bytes, "--no-checkpoint rerun");
    assert_eq!(listing(dir.path()), names(&["out.bin"]));
}

#[test]
fn ranges_download_exactly_the_requested_bytes() {
    let oss = Oss::start();
    let key = "ranged.bin";
    let bytes = oss.put(key, 1_000_000, 5);
    let n = bytes.len();
    let cases: [(&[&str], &[u8]); 5] = [
        (&["--range", "1000-250999"], &bytes[1000..251_000]),
        (&["--range", "999000-"], &bytes[999_000..]),
        (&["--range=-4321"], &bytes[n - 4321..]),
        (&["--range", "-4321"], &bytes[n - 4321..]),
        (&["--range", "0-0"], &bytes[..1]),
    ];
    for (args, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("part.bin");
        let what = args.join(" ");
        let out = run(
            oss.cmd()
                .args(["--part-size", "64KiB", "--jobs", "3"])
                .args(args)
                .arg(oss.url(key))
                .arg(&dest),
            &what,
        );
        out.expect_code(0);
        assert_file(&dest, expected, &what);
        assert_eq!(listing(dir.path()), names(&["part.bin"]), "{what}");
    }
}

#[test]
fn signature_v1_downloads_too() {
    let oss = Oss::start();
    let key = "v1/object with spaces+plus.bin";
    let bytes = oss.put(key, 700_000, 6);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let out = run(
        oss.cmd()
            .args(["--signature", "v1", "--part-size", "256KiB"])
            .arg(oss.url(key))
            .arg(&dest),
        "--signature v1",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "--signature v1");
    let auths: Vec<AuthMethod> = oss.emu.request_log().iter().map(|r| r.auth).collect();
    assert!(
        !auths.is_empty() && auths.iter().all(|a| *a == AuthMethod::V1Header),
        "every request signed V1: {auths:?}"
    );
}
