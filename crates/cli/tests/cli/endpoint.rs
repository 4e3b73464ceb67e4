//! Issue 19, item 9: an endpoint typed without a scheme means `https://`; spoken to a plain
//! HTTP server (the emulator), TLS fails the same way on every try, so it is not retried: the
//! download stops at once, as a usage error, saying to use `http://`.

use crate::common::*;

#[test]
fn tls_to_a_plain_http_server_fails_at_once_with_a_hint_to_use_http() {
    let oss = Oss::start();
    let key = "plain.bin";
    oss.put(key, 1024, 7);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let authority = oss.emu.addr().to_string();
    let out = run(
        bare_cmd()
            .env("OSS_ACCESS_KEY_ID", KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", SECRET)
            .args([
                "--endpoint",
                &authority,
                "--region",
                "cn-hangzhou",
                "--json",
            ])
            .arg(oss.url(key))
            .arg(&dest),
        "--endpoint without a scheme",
    );
    out.expect_code(2).stderr_has(&[
        "does not speak TLS",
        &format!("--endpoint http://{authority}"),
    ]);
    // Not retried: no retry event, one failure.
    let events = out.events();
    assert!(
        events.iter().all(|e| e["event"] != "retry"),
        "a TLS mismatch was retried:\n{}",
        out.stdout
    );
    assert_eq!(out.event("failed")["event"], "failed");
    // The emulator never saw a request it could parse, and nothing was left on disk.
    assert!(
        oss.emu.request_log().is_empty(),
        "{:?}",
        oss.emu.request_log()
    );
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    // The same endpoint with http:// works.
    let out = run(
        bare_cmd()
            .env("OSS_ACCESS_KEY_ID", KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", SECRET)
            .args([
                "--endpoint",
                &format!("http://{authority}"),
                "--region",
                "cn-hangzhou",
            ])
            .arg(oss.url(key))
            .arg(&dest),
        "--endpoint with http://",
    );
    out.expect_code(0);
}

/// The same for an S3-compatible endpoint typed without a scheme: it too means `https://`
/// (object_store, given no scheme, panicked), and TLS to a plain HTTP server is a usage
/// error at once, not eight retries.
#[test]
fn an_s3_endpoint_without_a_scheme_is_https_and_a_plain_http_server_fails_at_once() {
    let oss = Oss::start();
    let dir = tempfile::tempdir().unwrap();
    let authority = oss.emu.addr().to_string();
    let out = run(
        crate::object_store_sources::aws_free_cmd()
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
            .args(["--endpoint", &authority, "--region", "us-east-1", "--json"])
            .arg(format!("s3://{BUCKET}/k.bin"))
            .arg(dir.path().join("out.bin")),
        "s3 --endpoint without a scheme",
    );
    out.expect_code(2).stderr_has(&[
        "does not speak TLS",
        "http://HOST:PORT",
        &format!("https://{authority}/"),
    ]);
    assert!(
        out.events().iter().all(|e| e["event"] != "retry"),
        "a TLS mismatch was retried:\n{}",
        out.stdout
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(oss.emu.request_log().is_empty());
}
