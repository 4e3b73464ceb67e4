//! Issue 19, item 13: `-v` shows each HTTP request as one line (method, URL with secrets
//! redacted, status, request id, time to the answer) and each retry with its cause; `-vv`
//! adds the headers, secrets redacted; library internals only at `-vvv`. Both backends: OSS
//! (backend-oss) and object_store (here `s3://` against the emulator, which refuses the S3
//! signature: the request line is logged all the same).

use oss_emulator::{Fault, FaultPlan, FaultRule};

use crate::common::*;

const REQUEST: &str = "resume_get::request:";

fn request_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(REQUEST)).collect()
}

fn assert_no_secret(stderr: &str) {
    assert!(
        !stderr.contains(SECRET),
        "the secret key was printed:\n{stderr}"
    );
}

#[test]
fn v_shows_one_line_per_request_and_each_retry_with_its_cause() {
    let oss = Oss::start();
    let key = "verbose/v.bin";
    let bytes = oss.put(key, 64 << 10, 90);
    oss.emu.set_fault_plan(
        FaultPlan::new(1).rule(
            FaultRule::on(
                "GET",
                key,
                Fault::Error {
                    status: 503,
                    code: "SlowDown".into(),
                    message: None,
                },
            )
            .nth(1),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let out = run(
        oss.cmd()
            .args(["-v", "--part-size", "32K", "--jobs", "1"])
            .arg(oss.url(key))
            .arg(&dest),
        "-v",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "-v");
    let lines = request_lines(&out.stderr);
    let log = oss.emu.request_log();
    // One line per request the emulator answered, in the same order of methods and statuses.
    assert_eq!(lines.len(), log.len(), "{}", out.stderr);
    let url = format!("{}/{BUCKET}/{key}", oss.emu.endpoint());
    for (line, req) in lines.iter().zip(&log) {
        let expected = format!("{} {url} {}", req.method, req.status.unwrap());
        assert!(line.contains(&expected), "{expected:?} in {line}");
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("ms="), "{line}");
        assert!(
            line.contains(&format!("request_id=\"{}\"", req.request_id)),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l.contains(" 503 ")), "{}", out.stderr);
    // The retry says why, once.
    let retries: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("resume_get::retry:"))
        .collect();
    assert_eq!(retries.len(), 1, "{}", out.stderr);
    assert!(
        retries[0].contains("retrying part 0 (attempt 1 failed)") && retries[0].contains("503"),
        "{}",
        retries[0]
    );
    // No headers, no library internals.
    for absent in ["> ", "< ", "hyper", "reqwest::", "rustls"] {
        assert!(
            !out.stderr
                .lines()
                .any(|l| l.contains(REQUEST) && l.contains(absent))
                && !out.stderr.contains("hyper_util")
                && !out.stderr.contains("reqwest::"),
            "{absent:?} at -v:\n{}",
            out.stderr
        );
    }
    assert_no_secret(&out.stderr);
}

#[test]
fn vv_adds_headers_with_secrets_redacted_and_vvv_adds_the_libraries() {
    let oss = Oss::start();
    let key = "verbose/vv.bin";
    oss.put(key, 1024, 91);
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        oss.cmd()
            .arg("-vv")
            .arg(oss.url(key))
            .arg(dir.path().join("vv.bin")),
        "-vv",
    );
    out.expect_code(0);
    let lines = request_lines(&out.stderr);
    for needle in [
        "> authorization: <redacted>",
        "> range: bytes=0-1023",
        "< x-oss-request-id: ",
        "< content-range: bytes 0-1023/1024",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "{needle:?}:\n{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("hyper_util") && !out.stderr.contains("reqwest::"));
    assert_no_secret(&out.stderr);

    let out = run(
        oss.cmd()
            .arg("-vvv")
            .arg(oss.url(key))
            .arg(dir.path().join("vvv.bin")),
        "-vvv",
    );
    out.expect_code(0);
    assert!(
        out.stderr.contains("hyper_util") || out.stderr.contains("reqwest::"),
        "-vvv shows the HTTP libraries:\n{}",
        out.stderr
    );
    assert_no_secret(&out.stderr);
}

#[test]
fn object_store_requests_follow_the_same_convention() {
    let oss = Oss::start();
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        crate::object_store_sources::aws_free_cmd()
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .args([
                "-vv",
                "--endpoint",
                &oss.emu.endpoint(),
                "--region",
                "us-east-1",
            ])
            .arg(format!("s3://{BUCKET}/verbose/s3.bin"))
            .arg(dir.path().join("s3.bin")),
        "s3 -vv",
    );
    // The emulator speaks OSS, not S3: it refuses the S3 authorization header as malformed
    // (400, exit 1), and the request is logged all the same.
    out.expect_code(1);
    let log = oss.emu.request_log();
    assert_eq!(log.len(), 1, "{log:?}");
    let url = format!("{}/{BUCKET}/verbose/s3.bin", oss.emu.endpoint());
    let lines = request_lines(&out.stderr);
    let line = lines
        .iter()
        .find(|l| l.contains(" INFO "))
        .unwrap_or_else(|| panic!("no request line:\n{}", out.stderr));
    assert!(
        line.contains(&format!("HEAD {url} {}", log[0].status.unwrap()))
            && line.contains(&format!("request_id=\"{}\"", log[0].request_id)),
        "{line}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("> authorization: <redacted>")),
        "{}",
        out.stderr
    );
    assert_no_secret(&out.stderr);
}
