//! Every documented exit code, each reached by a real scenario against the emulator. Each test
//! checks the code, that stderr says what failed (naming the object where there is one) and
//! what to do, and that a DEST that existed before is left exactly as it was.

use std::path::PathBuf;
use std::time::Duration;

use oss_emulator::{Fault, FaultPlan, FaultRule};
use tempfile::TempDir;

use crate::common::*;

const SENTINEL: &[u8] = b"precious: an older file that no failed download may touch\n";

/// A directory holding only `out.bin` with [`SENTINEL`] content.
struct Dest {
    dir: TempDir,
    path: PathBuf,
}

impl Dest {
    fn existing() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        std::fs::write(&path, SENTINEL).unwrap();
        Self { dir, path }
    }

    /// DEST still holds its old content and nothing else appeared beside it.
    fn assert_untouched(&self, what: &str) {
        assert_file(&self.path, SENTINEL, what);
        assert_eq!(listing(self.dir.path()), names(&["out.bin"]), "{what}");
    }

    /// DEST still holds its old content; beside it at most the resume state
    /// (`out.bin.rgpart`, `out.bin.rgcp`), which a failure that saves progress keeps.
    fn assert_intact_with_resume_state(&self, what: &str) {
        assert_file(&self.path, SENTINEL, what);
        let allowed = names(&["out.bin", "out.bin.rgpart", "out.bin.rgcp"]);
        let got = listing(self.dir.path());
        assert!(got.is_subset(&allowed), "{what}: {got:?}");
    }
}

/// The table in `--help` and the one in the README list the same codes with the same
/// meanings, and every code has its test in this file.
#[test]
fn the_exit_table_in_help_and_readme_agree_and_every_row_is_tested() {
    let help = run(bare_cmd().arg("--help"), "--help");
    help.expect_code(0);
    let table = help
        .stdout
        .split("Exit codes:")
        .nth(1)
        .expect("an exit table");
    let help_codes: Vec<u8> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let readme_codes: Vec<u8> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split(" |").next()?.parse().ok())
        .collect();
    assert_eq!(help_codes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130]);
    assert_eq!(readme_codes, help_codes);
    let this_file = concat!(include_str!("exit_codes.rs"), include_str!("recursive.rs"));
    for code in help_codes {
        assert!(
            this_file.contains(&format!("fn exit_{code}_")),
            "no test for exit code {code}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 0

#[test]
fn exit_0_on_success_replacing_an_older_dest() {
    let oss = Oss::start();
    let bytes = oss.put("ok.bin", 200_000, 10);
    let dest = Dest::existing();
    let out = run(
        oss.cmd().arg(oss.url("ok.bin")).arg(&dest.path),
        "successful download",
    );
    out.expect_code(0).stderr_has(&["downloaded ok.bin"]);
    assert_file(&dest.path, &bytes, "exit 0");
    assert_eq!(listing(dest.dir.path()), names(&["out.bin"]));
}

// ---------------------------------------------------------------------------------------
// 2: usage

/// Runs with `args` (before SOURCE DEST) and expects a usage error mentioning `needles`.
fn expect_usage(oss: &Oss, args: &[&str], source: &str, needles: &[&str]) {
    let dest = Dest::existing();
    let what = format!("{} {source}", args.join(" "));
    let out = run(oss.cmd().args(args).arg(source).arg(&dest.path), &what);
    out.expect_code(2).stderr_has(needles);
    dest.assert_untouched(&what);
}

#[test]
fn exit_2_for_bad_options() {
    let oss = Oss::start();
    oss.put("k.bin", 1000, 11);
    let url = oss.url("k.bin");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--part-size", "0"],
            &["--part-size", "at least 1 byte", "8MiB"],
        ),
        (
            &["--part-size", "abc"],
            &["'abc'", "--part-size", "8MiB", "--help"],
        ),
        (&["--jobs", "0"], &["--jobs must be at least 1"]),
        (&["--jobs", "many"], &["'many'", "--jobs", "--help"]),
        (&["--retries", "0"], &["--retries must be at least 1"]),
        (
            &["--limit-rate", "fast"],
            &["'fast'", "--limit-rate", "8MiB"],
        ),
        (&["--timeout", "soon"], &["--timeout", "30s"]),
        (&["--range", "10-5"], &["--range", "starts after it ends"]),
        (
            &["--range", "abc"],
            &["--range", "cannot parse range", "A-B"],
        ),
        (
            &["--on-change", "maybe"],
            &["--on-change", "restart", "fail"],
        ),
        (&["--signature", "v3"], &["--signature", "v1", "v4"]),
        (
            &["--no-checkpoint", "--checkpoint-dir", "/tmp"],
            &["cannot be used with"],
        ),
    ];
    for (args, needles) in cases {
        expect_usage(&oss, args, &url, needles);
    }
    // No endpoint is an operator mistake too, and so are missing operands.
    let dest = Dest::existing();
    let out = run(
        bare_cmd()
            .env("OSS_ACCESS_KEY_ID", KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", SECRET)
            .arg(&url)
            .arg(&dest.path),
        "no endpoint",
    );
    out.expect_code(2)
        .stderr_has(&[&url, "no OSS endpoint", "--endpoint", "OSS_ENDPOINT"]);
    dest.assert_untouched("no endpoint");
    let out = run(oss.cmd().arg(&url), "no DEST");
    out.expect_code(2).stderr_has(&["DEST", "required"]);
    assert_eq!(oss.emu.request_count(), 0, "usage errors send no request");
}

#[test]
fn exit_2_for_bad_sources() {
    let oss = Oss::start();
    oss.put("k.bin", 1000, 12);
    expect_usage(
        &oss,
        &[],
        "ftp://host/file.bin",
        &["unsupported source scheme", "\"ftp\"", "oss://"],
    );
    expect_usage(&oss, &[], "just-a-name", &["not a URL", "oss://bucket/key"]);
    for url in [format!("oss://{BUCKET}"), format!("oss://{BUCKET}/")] {
        expect_usage(
            &oss,
            &[],
            &url,
            &[&url, "names no object key", "oss://BUCKET/KEY"],
        );
    }
    expect_usage(&oss, &[], "oss:///k.bin", &["names no bucket"]);
    assert_eq!(oss.emu.request_count(), 0, "usage errors send no request");
}

/// The range is checked against the object's real size, which takes a request.
#[test]
fn exit_2_for_a_range_starting_past_the_end() {
    let oss = Oss::start();
    oss.put("small.bin", 1000, 13);
    expect_usage(
        &oss,
        &["--range", "5000-"],
        &oss.url("small.bin"),
        &["small.bin", "5000-", "not satisfiable", "1000 bytes"],
    );
    expect_usage(
        &oss,
        &["--range", "1000-2000"],
        &oss.url("small.bin"),
        &["small.bin", "not satisfiable"],
    );
}

/// A V4 signature for the wrong region: OSS answers HeadObject with 400 InvalidArgument
/// naming the region it expects (as the emulator does). The settings are wrong, as for an S3
/// bucket in another region: exit 2, at once, nothing saved, with the fix.
#[test]
fn exit_2_for_a_wrong_oss_region() {
    let oss = Oss::start();
    oss.put("region.bin", 1000, 23);
    let dest = Dest::existing();
    let out = run(
        bare_cmd()
            .env("OSS_ACCESS_KEY_ID", KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", SECRET)
            .args(["--endpoint", &oss.emu.endpoint(), "--region", "us-west-1"])
            .arg(oss.url("region.bin"))
            .arg(&dest.path),
        "wrong region",
    );
    out.expect_code(2)
        .stderr_has(&["region.bin", "us-west-1", "cn-hangzhou", "--region"]);
    assert!(!out.stderr.contains("progress is saved"), "{}", out.stderr);
    assert_eq!(oss.emu.request_count(), 1, "not retried");
    dest.assert_untouched("wrong region");
}

// ---------------------------------------------------------------------------------------
// 1: a refusal retrying cannot fix

/// A 400 the engine has no class for (here an injected InvalidArgument on the GET): exit 1,
/// not retried, quoting the server.
#[test]
fn exit_1_when_the_server_refuses_for_a_reason_retrying_cannot_fix() {
    let oss = Oss::start();
    let key = "refused.bin";
    oss.put(key, 1000, 25);
    oss.emu.set_fault_plan(FaultPlan::new(1).rule(FaultRule::on(
        "GET",
        key,
        Fault::Error {
            status: 400,
            code: "InvalidArgument".into(),
            message: Some("injected by the test".into()),
        },
    )));
    let dest = Dest::existing();
    let out = run(oss.cmd().arg(oss.url(key)).arg(&dest.path), "400 on GET");
    out.expect_code(1)
        .stderr_has(&[key, "InvalidArgument", "injected by the test"]);
    let gets = oss
        .emu
        .request_log()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(gets, 1, "not retried");
    dest.assert_intact_with_resume_state("400 on GET");
}

// ---------------------------------------------------------------------------------------
// 3: not found

#[test]
fn exit_3_for_a_missing_key_or_bucket() {
    let oss = Oss::start();
    oss.put("present.bin", 1000, 14);
    let dest = Dest::existing();
    let out = run(
        oss.cmd().arg(oss.url("absent/key.bin")).arg(&dest.path),
        "missing key",
    );
    out.expect_code(3)
        .stderr_has(&["absent/key.bin", "does not exist", "check the key"]);
    dest.assert_untouched("missing key");

    let out = run(
        oss.cmd()
            .arg("oss://no-such-bucket/present.bin")
            .arg(&dest.path),
        "missing bucket",
    );
    out.expect_code(3)
        .stderr_has(&["present.bin", "NoSuchBucket", "check the bucket"]);
    dest.assert_untouched("missing bucket");
}

// ---------------------------------------------------------------------------------------
// 4: access denied

#[test]
fn exit_4_for_a_wrong_secret_or_missing_credentials() {
    let oss = Oss::start();
    oss.put("secret.bin", 1000, 15);
    let dest = Dest::existing();
    let wrong = "wrong-secret-7c1d0e55";
    let out = run(
        oss.cmd()
            .env("OSS_ACCESS_KEY_SECRET", wrong)
            .args(["-vvv"])
            .arg(oss.url("secret.bin"))
            .arg(&dest.path),
        "wrong secret",
    );
    out.expect_code(4).stderr_has(&[
        "secret.bin",
        "SignatureDoesNotMatch",
        "check the AccessKey secret",
    ]);
    assert!(
        !out.stderr.contains(wrong) && !out.stdout.contains(wrong),
        "the secret was printed:\n{}",
        out.stderr
    );
    dest.assert_untouched("wrong secret");

    for missing in ["OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"] {
        let out = run(
            oss.cmd()
                .env_remove(missing)
                .arg(oss.url("secret.bin"))
                .arg(&dest.path),
            &format!("no {missing}"),
        );
        out.expect_code(4).stderr_has(&[
            "oss://cli-tests/secret.bin",
            missing,
            "OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET",
        ]);
        dest.assert_untouched(missing);
    }
    // The refusals came from the signature check; the missing credentials sent nothing.
    let log = oss.emu.request_log();
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|r| r.status == Some(403)),
        "{:?}",
        log.iter()
            .map(|r| (r.status, &r.error_code))
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------
// 5: changed

#[test]
fn exit_5_when_the_object_changes_mid_download_with_on_change_fail() {
    let oss = Oss::start();
    let key = "changing.bin";
    oss.put(key, 1 << 20, 16);
    // The first GET is served from the original, then the object is replaced.
    oss.emu.set_fault_plan(
        FaultPlan::new(3)
            .rule(FaultRule::on("GET", key, Fault::ChangeObject { size: None }).nth(1)),
    );
    let dest = Dest::existing();
    let out = run(
        oss.cmd()
            .args([
                "--on-change",
                "fail",
                "--part-size",
                "128KiB",
                "--jobs",
                "1",
            ])
            .arg(oss.url(key))
            .arg(&dest.path),
        "--on-change fail",
    );
    out.expect_code(5).stderr_has(&[
        key,
        "changed",
        "PreconditionFailed",
        "run again to download the current version",
    ]);
    // DEST intact and the checkpoint of the old version gone. resume-core keeps
    // `out.bin.rgpart` here although the message says the partial download was discarded
    // (reported; harmless: without a checkpoint the next run starts it over), so it is
    // tolerated, not required.
    assert_file(&dest.path, SENTINEL, "--on-change fail");
    let left = listing(dest.dir.path());
    assert!(
        left.is_subset(&names(&["out.bin", "out.bin.rgpart"])),
        "--on-change fail: {left:?}"
    );
    let rerun = run(
        oss.cmd()
            .args([
                "--on-change",
                "fail",
                "--part-size",
                "128KiB",
                "--jobs",
                "1",
            ])
            .arg(oss.url(key))
            .arg(&dest.path),
        "rerun after the change",
    );
    rerun.expect_code(0);
    assert_file(
        &dest.path,
        &oss.emu.get_object(BUCKET, key).unwrap(),
        "rerun after the change",
    );
    assert_eq!(listing(dest.dir.path()), names(&["out.bin"]));
}

// ---------------------------------------------------------------------------------------
// 6: integrity

/// The emulator keeps objects as files with their CRC-64 in metadata: a byte flipped in the
/// data file at rest (bit rot on the server) is served with the original
/// `x-oss-hash-crc64ecma`, so the assembled bytes cannot verify.
#[test]
fn exit_6_when_the_served_bytes_do_not_match_the_objects_crc64() {
    let root = tempfile::tempdir().unwrap();
    let oss = Oss::start_in(root.path());
    let key = "rotten.bin";
    let original = oss.put(key, 600_000, 17);
    let objects = root.path().join(BUCKET).join("objects");
    let data_files: Vec<PathBuf> = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    assert_eq!(data_files.len(), 1, "{data_files:?}");
    let mut rotten = std::fs::read(&data_files[0]).unwrap();
    assert_eq!(rotten, original);
    rotten[345_678] ^= 0x10;
    std::fs::write(&data_files[0], &rotten).unwrap();

    let dest = Dest::existing();
    let out = run(
        oss.cmd()
            .args(["--part-size", "128KiB"])
            .arg(oss.url(key))
            .arg(&dest.path),
        "corrupted at rest",
    );
    out.expect_code(6).stderr_has(&[
        key,
        "failed verification",
        "CRC-64",
        "discarded",
        "run again",
    ]);
    // The untrustworthy partial download is gone too: a rerun starts afresh.
    dest.assert_untouched("integrity failure");
}

// ---------------------------------------------------------------------------------------
// 7: local I/O

#[test]
fn exit_7_when_dest_is_in_a_missing_directory() {
    let oss = Oss::start();
    oss.put("k.bin", 1000, 18);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("missing").join("out.bin");
    let out = run(
        oss.cmd().arg(oss.url("k.bin")).arg(&dest),
        "missing directory",
    );
    out.expect_code(7).stderr_has(&[
        "oss://cli-tests/k.bin",
        "/missing",
        "check that the directory exists",
    ]);
    assert!(listing(dir.path()).is_empty());
}

/// Issue 17's reproduction through the CLI: objects called `data.rgpart` and `data.rgcp`,
/// downloaded into one directory, then object `data` into it. Both earlier files are left
/// byte for byte; the run stops before any request for `data`, names the file in the way, and
/// does not talk of saved progress (running again would not help until it is moved).
#[test]
fn exit_7_when_files_named_like_dests_temp_file_or_checkpoint_are_in_the_way() {
    let oss = Oss::start();
    let dir = tempfile::tempdir().unwrap();
    let data = oss.put("data", 3000, 40);
    let mut kept = Vec::new();
    for (i, name) in ["data.rgcp", "data.rgpart"].into_iter().enumerate() {
        let bytes = oss.put(name, 2000 + i, 41 + i as u64);
        run(oss.cmd().arg(oss.url(name)).arg(dir.path()), name).expect_code(0);
        kept.push((name, bytes));
    }
    // One at a time: the checkpoint's name is checked first, then the temp file's.
    for (name, _) in &kept {
        let before = oss.emu.request_count();
        let out = run(oss.cmd().arg(oss.url("data")).arg(dir.path()), name);
        out.expect_code(7)
            .stderr_has(&[name, "never overwrites or deletes"])
            .stderr_lacks(&["nothing is saved", "saved: ", "running again"]);
        assert_eq!(oss.emu.request_count(), before, "{name}: no request");
        for (n, b) in &kept {
            let here = dir.path().join(n);
            let path = if here.exists() {
                here
            } else {
                dir.path().join(format!("moved-{n}"))
            };
            assert_file(&path, b, n);
        }
        let moved = dir.path().join(format!("moved-{name}"));
        std::fs::rename(dir.path().join(name), &moved).unwrap();
    }
    run(
        oss.cmd().arg(oss.url("data")).arg(dir.path()),
        "after moving them",
    )
    .expect_code(0);
    assert_file(&dir.path().join("data"), &data, "data");
}

/// A DEST naming a directory that does not exist (`newdir/`) is the same local problem as
/// `missing/sub/file`: exit 7, nothing created, no request.
#[test]
fn exit_7_when_dest_names_a_missing_directory() {
    let oss = Oss::start();
    oss.put("k.bin", 1000, 24);
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("{}/newdir/", dir.path().display());
    let out = run(oss.cmd().arg(oss.url("k.bin")).arg(&dest), "newdir/");
    out.expect_code(7)
        .stderr_has(&["newdir/", "does not exist", "create it first"]);
    assert!(listing(dir.path()).is_empty());
    assert_eq!(oss.emu.request_count(), 0);
}

/// A read-only directory stops a normal user, not root (tests here may run as root, where
/// permission bits do not stop writes): the read-only case is checked when it can be, and a
/// DEST whose parent is a regular file (ENOTDIR, whoever runs it) always.
#[test]
fn exit_7_when_dest_cannot_be_written() {
    use std::os::unix::fs::PermissionsExt;
    let oss = Oss::start();
    oss.put("k.bin", 1000, 19);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, SENTINEL).unwrap();
    let dest = file.join("out.bin");
    let out = run(
        oss.cmd().arg(oss.url("k.bin")).arg(&dest),
        "parent is a file",
    );
    out.expect_code(7)
        .stderr_has(&["oss://cli-tests/k.bin", "a-file", "not a directory"]);
    assert_file(&file, SENTINEL, "the file in the way");
    assert_eq!(listing(dir.path()), names(&["a-file"]));

    let ro = tempfile::tempdir().unwrap();
    let existing = ro.path().join("out.bin");
    std::fs::write(&existing, SENTINEL).unwrap();
    std::fs::set_permissions(ro.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = ro.path().join(".probe");
    let bits_bind = std::fs::write(&probe, b"").is_err();
    let _ = std::fs::remove_file(&probe);
    if bits_bind {
        let out = run(
            oss.cmd().arg(oss.url("k.bin")).arg(&existing),
            "read-only directory",
        );
        out.expect_code(7).stderr_has(&[
            "oss://cli-tests/k.bin",
            "out.bin",
            "check the permissions",
        ]);
        assert_file(&existing, SENTINEL, "read-only directory");
        assert_eq!(listing(ro.path()), names(&["out.bin"]));
    } else {
        eprintln!("running as root: permission bits do not stop writes; read-only case skipped");
    }
    std::fs::set_permissions(ro.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A second download into the DEST of a running one is refused at once, with a message
/// saying why, and the first goes on to finish correctly.
#[test]
fn exit_7_for_a_second_download_into_the_same_dest_and_the_first_is_unaffected() {
    let oss = Oss::start();
    let key = "locked.bin";
    let bytes = oss.put(key, 2 << 20, 20);
    // Slow enough that the first download is surely still running when the second starts.
    oss.throttle_gets(128 << 10);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let cmd = || {
        let mut cmd = oss.cmd();
        cmd.args(["--part-size", "256KiB", "--jobs", "2", "--json"])
            .arg(oss.url(key))
            .arg(&dest);
        cmd
    };
    let mut first = Running::spawn(&mut cmd(), "first download");
    // `started` comes after the lock is taken.
    first.wait_for_line(Duration::from_secs(60), |l| l.contains("\"started\""));
    let second = run(&mut cmd(), "second download");
    second.expect_code(7).stderr_has(&[
        "oss://cli-tests/locked.bin",
        "another download into",
        "out.bin",
        "is running",
        "wait for it to finish",
    ]);
    assert_eq!(
        second.events().last().map(|e| e["event"].clone()),
        Some("failed".into()),
        "{}",
        second.stdout
    );
    // Let the first finish quickly now.
    oss.emu.clear_fault_plan();
    let first = first.finish(RUN_TIMEOUT);
    first.expect_code(0);
    assert_file(&dest, &bytes, "the first download");
    let kinds: Vec<String> = first
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "started").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("completed"));
    assert!(
        !kinds
            .iter()
            .any(|k| k == "restarted" || k == "checkpoint_discarded" || k == "retry"),
        "the first download was disturbed: {kinds:?}"
    );
    assert_eq!(listing(dir.path()), names(&["out.bin"]));
}

// ---------------------------------------------------------------------------------------
// 8: network

#[test]
fn exit_8_when_the_endpoint_refuses_connections() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dest = Dest::existing();
    let out = run(
        bare_cmd()
            .env("OSS_ACCESS_KEY_ID", KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", SECRET)
            .args(["--endpoint", &format!("http://127.0.0.1:{port}")])
            .args([
                "--region",
                "cn-hangzhou",
                "--retries",
                "2",
                "--timeout",
                "2s",
            ])
            .arg(format!("oss://{BUCKET}/unreachable.bin"))
            .arg(&dest.path),
        "closed port",
    );
    out.expect_code(8).stderr_has(&[
        "unreachable.bin",
        "2 attempt",
        "check the endpoint and the network",
    ]);
    dest.assert_untouched("closed port");
}

#[test]
fn exit_8_when_the_server_keeps_answering_503() {
    let oss = Oss::start();
    let key = "busy.bin";
    oss.put(key, 500_000, 21);
    oss.emu.set_fault_plan(
        FaultPlan::new(1).rule(FaultRule::always(Fault::slow_down()).method("GET")),
    );
    let dest = Dest::existing();
    let out = run(
        oss.cmd()
            .args(["--retries", "3", "--part-size", "128KiB", "--jobs", "2"])
            .arg(oss.url(key))
            .arg(&dest.path),
        "persistent 503",
    );
    out.expect_code(8)
        .stderr_has(&[key, "3 request", "SlowDown", "run again once it recovers"]);
    dest.assert_intact_with_resume_state("persistent 503");
    // What the message says is saved is what is on disk: no part ever arrived here.
    let saved = listing(dest.dir.path()).contains("out.bin.rgcp");
    let says = if saved { "saved: " } else { "nothing is saved" };
    out.stderr_has(&[says]);
}

// ---------------------------------------------------------------------------------------
// 9: -r, some objects failed: `recursive.rs`
// (`exit_9_lists_the_failed_objects_and_the_rerun_fetches_only_them`)

// ---------------------------------------------------------------------------------------
// 130: interrupted (the full resume story is in resume.rs)

#[test]
fn exit_130_on_sigint_or_sigterm_and_an_older_dest_is_left_alone() {
    let oss = Oss::start();
    let key = "interrupted.bin";
    let bytes = oss.put(key, 2 << 20, 22);
    oss.throttle_gets(128 << 10);
    let dest = Dest::existing();
    let cmd = || {
        let mut cmd = oss.cmd();
        cmd.args(["--part-size", "256KiB", "--jobs", "2", "--json"])
            .arg(oss.url(key))
            .arg(&dest.path);
        cmd
    };
    for signal in ["-INT", "-TERM"] {
        let mut running = Running::spawn(&mut cmd(), &format!("kill {signal}"));
        // After a finished part, so that the message has something true to say is saved.
        running.wait_for_line(Duration::from_secs(60), |l| l.contains("\"part_done\""));
        running.signal(signal);
        let out = running.finish(RUN_TIMEOUT);
        out.expect_code(130).stderr_has(&[
            "resume-get: interrupted",
            key,
            "saved: ",
            "run the same command to resume",
        ]);
        out.stderr_lacks(&["bytes received", "run the same download again"]);
        dest.assert_intact_with_resume_state(signal);
    }
    oss.emu.clear_fault_plan();
    run(&mut cmd(), "after the interrupts").expect_code(0);
    assert_file(&dest.path, &bytes, "after the interrupts");
    assert_eq!(listing(dest.dir.path()), names(&["out.bin"]));
}
