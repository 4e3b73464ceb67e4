//! Bad input, end to end: each case gets a clear message on stderr, the documented exit code
//! (`crates/cli/src/exit.rs`), and leaves nothing created or clobbered.
//!
//! The tests run as root, for whom permission bits are no obstacle; "not writable" is
//! therefore a read-only tmpfs (`mount -o remount,ro`), which stops root too (EROFS). Where
//! mounting is not permitted (not root), permission bits are used instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_tests::support::*;

const KEY: &str = "input/object.bin";

struct Case {
    server: Server,
    content: Vec<u8>,
    dir: tempfile::TempDir,
}

fn case() -> Case {
    let server = Server::start();
    let content = data(21, 1000);
    server.put(KEY, &content);
    Case {
        server,
        content,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

impl Case {
    fn dest(&self) -> PathBuf {
        self.dir.path().join("out.bin")
    }

    /// `resume-get [args] oss://BUCKET/KEY DEST` against the server.
    fn get(&self, args: &[&str]) -> Get {
        self.server.get(KEY, self.dest()).args(args)
    }

    /// Runs and checks: `code`, every needle in stderr, no file created in the download
    /// directory (beyond what was there).
    #[track_caller]
    fn refused(&self, g: Get, code: i32, needles: &[&str]) -> Outcome {
        let before = listing(self.dir.path());
        let out = g.run();
        out.expect_code(code).expect_stderr(needles);
        assert!(
            out.stderr.contains("error"),
            "the message says it is an error: {}",
            out.stderr
        );
        assert_eq!(
            listing(self.dir.path()),
            before,
            "`{}` created or changed files",
            out.description
        );
        out
    }

    /// The refused run sent no request to the server.
    #[track_caller]
    fn no_requests(&self) {
        let log = self.server.emu.request_log();
        assert!(log.is_empty(), "requests were sent: {log:?}");
    }
}

#[test]
fn part_size_zero_or_unparsable_is_a_usage_error() {
    let c = case();
    c.refused(
        c.get(&["--part-size", "0"]),
        EXIT_USAGE,
        &["--part-size", "at least 1"],
    );
    for bad in ["12XB", "-5", "", "1.5.5MiB", "99999999999999999999999"] {
        c.refused(
            c.get(&[&format!("--part-size={bad}")]),
            EXIT_USAGE,
            &["--part-size"],
        );
    }
    c.no_requests();
}

#[test]
fn jobs_zero_is_a_usage_error() {
    let c = case();
    c.refused(
        c.get(&["--jobs", "0"]),
        EXIT_USAGE,
        &["--jobs", "at least 1"],
    );
    c.refused(c.get(&["--jobs", "many"]), EXIT_USAGE, &["--jobs"]);
    c.no_requests();
}

#[test]
fn malformed_ranges_and_start_after_end_are_usage_errors_before_any_request() {
    let c = case();
    for bad in ["500-100", "abc", "1-2-3", "-", "", "--5", "5--", "a-b"] {
        c.refused(
            c.get(&[&format!("--range={bad}")]),
            EXIT_USAGE,
            &["--range"],
        );
    }
    c.no_requests();
}

#[test]
fn range_past_the_end_of_the_object_is_a_usage_error_naming_the_size() {
    let c = case();
    for bad in ["5000-6000", "1000-", "1000-1000", "-0"] {
        c.refused(
            c.get(&[&format!("--range={bad}")]),
            EXIT_USAGE,
            &[KEY, "not satisfiable", "1000 bytes"],
        );
    }
    // Nothing but metadata was asked for.
    assert!(c.server.gets(KEY).is_empty());
}

#[test]
fn unknown_scheme_and_missing_bucket_or_key_are_usage_errors() {
    let c = case();
    let dest = c.dest();
    let ep = c.server.endpoint();
    for (url, needle) in [
        ("ftp://bucket/key", "unsupported source scheme"),
        ("bucket/key", "not a URL"),
        ("oss:///key", "no bucket"),
        ("oss://bucket", "no object key"),
        ("oss://bucket/", "no object key"),
    ] {
        c.refused(Get::new(&ep, url, &dest), EXIT_USAGE, &[needle]);
    }
    c.no_requests();
}

#[test]
fn bucket_or_key_that_does_not_exist_is_not_found() {
    let c = case();
    let dest = c.dest();
    let ep = c.server.endpoint();
    c.refused(
        Get::new(&ep, "oss://no-such-bucket/key", &dest),
        EXIT_NOT_FOUND,
        &["NoSuchBucket"],
    );
    c.refused(
        c.server.get("input/missing.bin", &dest),
        EXIT_NOT_FOUND,
        &["input/missing.bin", "NoSuchKey"],
    );
}

#[test]
fn missing_credentials_are_refused_before_any_request() {
    let c = case();
    for missing in ["OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"] {
        c.refused(
            c.get(&[]).env_remove(missing),
            EXIT_DENIED,
            &[missing, "not set"],
        );
    }
    c.no_requests();
}

#[test]
fn wrong_secret_is_denied_and_neither_secret_is_printed() {
    let c = case();
    let wrong = "wrongSECRETvalue-0a1b2c3d";
    for sig in ["v4", "v1"] {
        let out = c.refused(
            c.get(&["--signature", sig, "-vv"])
                .env("OSS_ACCESS_KEY_SECRET", wrong),
            EXIT_DENIED,
            &["SignatureDoesNotMatch"],
        );
        let all = out.all_output();
        assert!(
            !all.contains(wrong) && !all.contains(SK),
            "a secret was printed"
        );
    }
}

#[test]
fn unreachable_endpoint_fails_with_a_network_error_after_bounded_retries() {
    let c = case();
    let port = test_support::free_port();
    let out = c.refused(
        Get::new(
            &format!("http://127.0.0.1:{port}"),
            &oss_url(KEY),
            &c.dest(),
        )
        .args(["--retries", "2"])
        .timeout(Duration::from_secs(60)),
        EXIT_NETWORK,
        &[KEY, "after 2 attempts", "could not be reached"],
    );
    assert_eq!(out.events_named("retry").len(), 1);
}

#[test]
fn dest_in_a_missing_directory_is_a_local_error() {
    let c = case();
    let dest = c.dir.path().join("no/such/dir/out.bin");
    c.refused(c.server.get(KEY, &dest), EXIT_LOCAL_IO, &["no/such/dir"]);
    assert!(!c.dir.path().join("no").exists());
}

/// A directory nobody can write: a read-only tmpfs (root included), else permission bits.
enum ReadOnly {
    Mount(Mount),
    Bits(tempfile::TempDir),
}

impl ReadOnly {
    /// With `file` (name, content) inside it.
    fn new(file: Option<(&str, &[u8])>) -> Self {
        match Mount::tmpfs("1m") {
            Ok(m) => {
                if let Some((name, bytes)) = file {
                    std::fs::write(m.path().join(name), bytes).expect("write into tmpfs");
                }
                m.make_read_only();
                ReadOnly::Mount(m)
            }
            Err(why) => {
                assert!(
                    !is_root(),
                    "running as root but cannot mount a tmpfs ({why}); root ignores permission \
                     bits, so a read-only directory cannot be made"
                );
                use std::os::unix::fs::PermissionsExt;
                let d = tempfile::tempdir().expect("tempdir");
                if let Some((name, bytes)) = file {
                    std::fs::write(d.path().join(name), bytes).expect("write");
                }
                std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o555))
                    .expect("chmod");
                ReadOnly::Bits(d)
            }
        }
    }

    fn path(&self) -> &Path {
        match self {
            ReadOnly::Mount(m) => m.path(),
            ReadOnly::Bits(d) => d.path(),
        }
    }
}

#[test]
fn dest_not_writable_is_a_local_error_and_an_existing_file_there_is_untouched() {
    let c = case();
    let precious = b"existing file in a read-only directory".as_slice();
    let ro = ReadOnly::new(Some(("out.bin", precious)));
    let dest = ro.path().join("out.bin");
    let out = c.server.get(KEY, &dest).run();
    out.expect_code(EXIT_LOCAL_IO)
        .expect_stderr(&[&ro.path().display().to_string()]);
    assert!(
        out.stderr.contains("Read-only") || out.stderr.contains("ermission"),
        "{}",
        out.stderr
    );
    assert_file_is(&dest, precious, "the existing DEST");
    assert_eq!(listing(ro.path()).len(), 1);
    assert!(c.server.gets(KEY).is_empty(), "no part request");
}

#[test]
fn checkpoint_dir_not_writable_is_a_local_error_and_nothing_is_left() {
    let c = case();
    let ro = ReadOnly::new(None);
    let cp_dir = ro.path().to_string_lossy().into_owned();
    c.refused(
        c.get(&["--checkpoint-dir", &cp_dir]),
        EXIT_LOCAL_IO,
        &[&cp_dir],
    );
    assert!(listing(ro.path()).is_empty());
    // A checkpoint "directory" that is a file.
    let file = c.dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let f = file.to_string_lossy().into_owned();
    c.refused(c.get(&["--checkpoint-dir", &f]), EXIT_LOCAL_IO, &[&f]);
    assert_eq!(std::fs::read(&file).expect("read"), b"x");
}

#[test]
fn dest_naming_another_downloads_checkpoint_file_is_refused() {
    let c = case();
    let dest = c.dest();
    // An interrupted download leaves DEST.rgcp ...
    stop_after_parts(
        &c.server,
        KEY,
        &c.server.get(KEY, &dest).args(["--part-size", "100"]),
        3,
    );
    let cp = rgcp(&dest);
    let cp_bytes = std::fs::read(&cp).expect("checkpoint");
    // ... which a second command then names as its DEST.
    let out = c.refused(c.server.get(KEY, &cp), EXIT_USAGE, &["checkpoint"]);
    let _ = out;
    assert_eq!(std::fs::read(&cp).expect("checkpoint"), cp_bytes);
    // The first download still resumes.
    let out = c.server.get(KEY, &dest).args(["--part-size", "100"]).run();
    out.expect_ok();
    assert_eq!(out.num("started", "parts_reused"), 3);
    assert_file_is(&dest, &c.content, "the original download");
}

#[test]
fn disk_full_at_the_start_fails_before_any_part_and_leaves_nothing() {
    let Ok(fs) = Mount::tmpfs("1m") else {
        assert!(!is_root(), "root but cannot mount a tmpfs");
        eprintln!("SKIPPED: cannot mount a tmpfs as non-root");
        return;
    };
    let server = Server::start();
    server.put(KEY, &data(22, 3 << 20));
    let dest = fs.path().join("out.bin");
    let out = server.get(KEY, &dest).run();
    out.expect_code(EXIT_LOCAL_IO)
        .expect_stderr(&["No space left", "free some space"]);
    assert!(listing(fs.path()).is_empty(), "{:?}", listing(fs.path()));
    assert!(server.gets(KEY).is_empty());
}

/// Fills the file system holding `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create filler");
    let chunk = vec![0xAAu8; 4096];
    for _ in 0..100_000 {
        match f.write(&chunk) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = f.sync_all();
    path
}

#[test]
fn disk_full_during_the_download_exits_7_keeps_the_checkpoint_and_resumes_once_space_is_freed() {
    let fs = match Mount::tmpfs("8m") {
        Ok(m) => m,
        Err(why) => {
            assert!(!is_root(), "root but cannot mount a tmpfs: {why}");
            eprintln!("SKIPPED: cannot mount a tmpfs as non-root ({why})");
            return;
        }
    };
    let server = Server::start();
    let content = data(23, 6 << 20);
    server.put(KEY, &content);
    server.set_faults(FaultPlan::new(0).rule(FaultRule::on(
        "GET",
        KEY,
        Fault::Throttle {
            bytes_per_second: 1 << 20,
        },
    )));
    let dest = fs.path().join("out.bin");
    let args = ["--part-size", "16KiB", "--jobs", "2"];
    let mut p = server.get(KEY, &dest).args(args).spawn();
    let mut parts = 0;
    p.wait_for(Duration::from_secs(60), |e| {
        parts += u64::from(e["event"] == "part_done");
        parts >= 4
    })
    .expect("parts done before the disk fills");
    let filler = fill(fs.path());
    let out = p.finish();
    out.expect_code(EXIT_LOCAL_IO)
        .expect_stderr(&["No space left", "space"]);
    assert!(!dest.exists());
    assert!(rgcp(&dest).exists() && rgpart(&dest).exists());
    let done_before = out.events_named("part_done").len() as u64;

    std::fs::remove_file(filler).expect("free the space");
    server.emu.clear_fault_plan();
    let out = server.get(KEY, &dest).args(args).run();
    out.expect_ok();
    assert!(
        out.event("checkpoint_discarded").is_none(),
        "the checkpoint survived the full disk"
    );
    let reused = out.num("started", "parts_reused");
    assert!(
        reused >= 4 && reused <= done_before,
        "reused {reused} of {done_before} parts done before the disk filled"
    );
    assert_file_is(&dest, &content, "resumed after space was freed");
}
