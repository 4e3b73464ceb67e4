//! `file://`, `http://` and `s3://` sources through the binary (issue 18): a local file changed
//! mid-download, version ids a store cannot honour, secrets in the SOURCE and the endpoint, an
//! S3 bucket in another region, no AWS credentials, and saying what is saved only when it is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::stub::Stub;

const MIB: usize = 1 << 20;
/// A password and a signature that must never be printed.
const PASSWORD: &str = "PASSW-9d2f6c1e";
const SIGNATURE: &str = "SIG-5b7a3e90c4";
const TOKEN: &str = "TOK-8e1f0d2c77";

/// The binary without any AWS configuration from the developer's shell, and with the
/// instance metadata endpoint on a loopback port that refuses connections: no test may send
/// a request to 169.254.169.254.
pub(crate) fn aws_free_cmd() -> std::process::Command {
    let mut cmd = bare_cmd();
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(
        "AWS_METADATA_ENDPOINT",
        format!("http://127.0.0.1:{}", test_support::free_port()),
    );
    cmd
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[track_caller]
fn assert_no_secret(out: &Outcome, dir: &Path) {
    for secret in [PASSWORD, SIGNATURE, TOKEN] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{}: {secret} printed\nstdout:\n{}\nstderr:\n{}",
            out.what,
            out.stdout,
            out.stderr
        );
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{}: {secret} in {}",
                    out.what,
                    p.display()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A local file rewritten in place during the download

struct LocalScene {
    dir: tempfile::TempDir,
    src: PathBuf,
    dest: PathBuf,
}

impl LocalScene {
    /// 4 MiB of `A`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let src = root.join("obj.bin");
        test_support::write_with_old_mtime(&src, &vec![b'A'; 4 * MIB]);
        let dest = root.join("out.bin");
        Self { dir, src, dest }
    }

    /// One job, 1 MiB parts at 1 MiB/s: each part takes about a second, so the rewrite made
    /// when part 0 is reported done lands while part 1 is read (or before it is opened; both
    /// must be caught), with three seconds of the download left.
    fn spawn(&self, extra: &[&str]) -> Running {
        let mut cmd = bare_cmd();
        cmd.args([
            "--json",
            "--part-size",
            "1MiB",
            "--jobs",
            "1",
            "--limit-rate",
            "1MiB",
        ])
        .args(extra)
        .arg(file_url(&self.src))
        .arg(&self.dest);
        Running::spawn(&mut cmd, "file:// rewritten mid-download")
    }

    /// `dd if=B of=obj.bin bs=1M conv=notrunc`, once part 0 is done.
    fn rewrite_after_part_0(&self, running: &mut Running) {
        running.wait_for_line(Duration::from_secs(60), |line| {
            let e: Value = serde_json::from_str(line).unwrap_or_default();
            e["event"] == "part_done" && e["part"] == 0
        });
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.src)
            .unwrap();
        f.write_all(&vec![b'B'; 4 * MIB]).unwrap();
    }
}

#[test]
fn a_local_file_rewritten_in_place_mid_download_is_never_ok_with_mixed_bytes() {
    // --on-change fail: exit 5, nothing written to DEST.
    let scene = LocalScene::new();
    let mut running = scene.spawn(&["--on-change", "fail"]);
    scene.rewrite_after_part_0(&mut running);
    let out = running.finish(RUN_TIMEOUT);
    out.expect_code(5)
        .stderr_has(&["changed while it was being read", "obj.bin"]);
    assert!(!scene.dest.exists(), "DEST written after a change");

    // The default, restart: the download starts over and ends with only the new content.
    let scene = LocalScene::new();
    let mut running = scene.spawn(&[]);
    scene.rewrite_after_part_0(&mut running);
    let out = running.finish(RUN_TIMEOUT);
    out.expect_code(0);
    let restarted = out.event("restarted");
    assert!(
        restarted["reason"]
            .as_str()
            .unwrap()
            .contains("changed while it was being read"),
        "{restarted}"
    );
    assert_file(&scene.dest, &vec![b'B'; 4 * MIB], "after the restart");
    drop(scene.dir);
}

// ---------------------------------------------------------------------------------------
// --version-id where the store has no versions

#[test]
fn a_version_id_for_a_file_or_http_source_is_a_usage_error_before_any_request() {
    let scene = LocalScene::new();
    let out = run(
        bare_cmd()
            .args(["--version-id", "nonexistent"])
            .arg(file_url(&scene.src))
            .arg(&scene.dest),
        "--version-id with file://",
    );
    out.expect_code(2)
        .stderr_has(&["--version-id", "no object versions"]);
    assert!(!scene.dest.exists());

    let stub = Stub::start(|_| "HTTP/1.1 200 OK\r\nContent-Length: 0".into());
    let out = run(
        bare_cmd()
            .args(["--version-id", "nonexistent"])
            .arg(stub.url("/obj.bin"))
            .arg(&scene.dest),
        "--version-id with http://",
    );
    out.expect_code(2)
        .stderr_has(&["--version-id", "no object versions"]);
    assert!(stub.requests().is_empty(), "{:?}", stub.requests());
    assert_eq!(listing(scene.dir.path()), names(&["obj.bin"]));
}

// ---------------------------------------------------------------------------------------
// Secrets in SOURCE and --endpoint

#[test]
fn passwords_signatures_and_tokens_in_the_source_or_endpoint_are_never_printed() {
    let stub = Stub::start(|_| "HTTP/1.1 200 OK\r\nContent-Length: 0".into());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let port = stub.addr.port();
    // http(s):// URLs with a password or a signature are downloaded (http_sources.rs checks
    // that nothing leaks there); these are refused before any request.
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("ftp://alice:{PASSWORD}@127.0.0.1/obj.bin?sig={SIGNATURE}"),
            vec![],
        ),
        (
            "s3://bucket/obj.bin".into(),
            vec![
                "--endpoint".into(),
                format!("http://u:{PASSWORD}@127.0.0.1:{port}"),
            ],
        ),
        (
            format!("oss://alice:{PASSWORD}@bucket"),
            vec!["--endpoint".into(), format!("http://127.0.0.1:{port}")],
        ),
    ];
    for (source, extra) in cases {
        for json in [false, true] {
            let mut cmd = aws_free_cmd();
            cmd.env("RUST_LOG", "trace")
                .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
                .env("AWS_SECRET_ACCESS_KEY", "not-the-secret-under-test")
                .arg("-vv")
                .args(&extra)
                .arg(&source)
                .arg(&dest);
            if json {
                cmd.arg("--json");
            }
            let out = run(&mut cmd, &format!("{source} {extra:?} json={json}"));
            out.expect_code(2);
            assert!(out.stderr.contains("<redacted>"), "{}", out.stderr);
            assert_no_secret(&out, dir.path());
        }
    }
    assert!(
        stub.requests().is_empty(),
        "no request is sent for a refused source: {:?}",
        stub.requests()
    );
}

// ---------------------------------------------------------------------------------------
// S3: a bucket in another region, no credentials

#[test]
fn an_s3_bucket_in_another_region_fails_at_once_with_exit_2_naming_the_region() {
    let stub = Stub::start(|_| {
        "HTTP/1.1 301 Moved Permanently\r\nx-amz-bucket-region: eu-west-1\r\nContent-Length: 0"
            .into()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        aws_free_cmd()
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")
            .args(["--endpoint", &stub.url(""), "--region", "us-east-1"])
            .arg("s3://bucket/obj.bin")
            .arg(dir.path().join("out.bin")),
        "S3 301 to eu-west-1",
    );
    out.expect_code(2)
        .stderr_has(&["eu-west-1", "--region eu-west-1"]);
    let requests = stub.requests();
    assert_eq!(requests.len(), 1, "not retried: {requests:?}");
    let head = &requests[0];
    assert_eq!(
        (head.method.as_str(), head.target.as_str()),
        ("HEAD", "/bucket/obj.bin")
    );
    assert!(
        head.headers.iter().any(|h| h
            .to_ascii_lowercase()
            .starts_with("authorization: aws4-hmac-sha256")),
        "a signed request: {head:?}"
    );
    assert_eq!(listing(dir.path()), names(&[]));
}

#[test]
fn s3_without_credentials_fails_at_once_with_exit_4_touching_only_loopback() {
    let stub = Stub::start(|_| "HTTP/1.1 200 OK\r\nContent-Length: 0".into());
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        aws_free_cmd()
            .args(["--endpoint", &stub.url(""), "--region", "us-east-1"])
            .arg("s3://bucket/obj.bin")
            .arg(dir.path().join("out.bin")),
        "S3 without credentials",
    );
    out.expect_code(4).stderr_has(&[
        "no AWS credentials",
        "AWS_ACCESS_KEY_ID",
        "instance metadata",
        "127.0.0.1",
    ]);
    // The advice is given once, by the message that knows what to set.
    assert!(
        !out.stderr.contains("check the credentials"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("169.254"), "{}", out.stderr);
    assert!(
        stub.requests().is_empty(),
        "no unsigned request: {:?}",
        stub.requests()
    );
}

// ---------------------------------------------------------------------------------------
// What is saved, and the exit code of a refused request

/// An object of `size` bytes whose HEAD answers `head` and GET answers `get`.
fn http_object(size: usize, head: &'static str, get: &'static str) -> Stub {
    Stub::start(move |r| {
        let status = if r.method == "HEAD" { head } else { get };
        let length = if status.starts_with("200") { size } else { 0 };
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {length}\r\nETag: \"e1\"\r\n\
             Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT"
        )
    })
}

#[test]
fn gets_that_always_fail_say_nothing_is_saved_and_exit_8() {
    let stub = http_object(3 * MIB, "200 OK", "500 Internal Server Error");
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        bare_cmd()
            .args(["--retries", "2", "--part-size", "1MiB"])
            .arg(stub.url("/obj.bin"))
            .arg(dir.path().join("out.bin")),
        "GET always 500",
    );
    out.expect_code(8)
        .stderr_has(&["500", "nothing is saved", "starts from the beginning"]);
    assert!(!out.stderr.contains("progress is saved"), "{}", out.stderr);
    assert_eq!(listing(dir.path()), names(&[]));
}

#[test]
fn a_head_refused_with_400_exits_1_and_claims_nothing_saved() {
    let stub = http_object(MIB, "400 Bad Request", "400 Bad Request");
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        bare_cmd()
            .arg(stub.url("/obj.bin"))
            .arg(dir.path().join("out.bin")),
        "HEAD 400",
    );
    out.expect_code(1)
        .stderr_has(&["400", "retrying cannot help", "nothing is saved"]);
    assert!(!out.stderr.contains("progress is saved"), "{}", out.stderr);
    assert_eq!(
        stub.requests().len(),
        1,
        "not retried: {:?}",
        stub.requests()
    );
    assert_eq!(listing(dir.path()), names(&[]));
}
