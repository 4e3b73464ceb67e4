//! The shared `RangeSource` conformance suite (resume-core, feature `conformance`) run against
//! [`Bucket`] over HTTP, served by the `oss-emulator` crate with strict signature checking:
//! V1 and V4 header signatures, with a long-lived AccessKey pair and with STS credentials.
//!
//! Each test starts its own emulator (signatures verified, region `cn-hangzhou`, path-style
//! endpoint `http://127.0.0.1:PORT`), writes objects through the emulator's library API, and
//! afterwards reads the emulator's request log: every request the client sent must have
//! authenticated with the expected method and key, and the only refusals are the ones the
//! suite provokes on purpose (missing key → 404, stale `If-Match` → 412, past the end → 416).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use backend_oss::{AddressingStyle, Bucket, Client, SignatureVersion};
use bytes::Bytes;
use oss_emulator::{AccessKey, AuthMethod, Emulator, EmulatorConfig, RequestRecord};
use resume_core::conformance::{self, Capabilities, Fixture};
use resume_core::{ErrorKind, RangeSource, ReadConditions, SourceErrorKind};

const REGION: &str = "cn-hangzhou";
const BUCKET: &str = "conformance-bucket";

const AK: &str = "conformance-ak";
const SK: &str = "conformance/secret+Key=0b1c";
const STS_AK: &str = "STS.conformance-ak";
const STS_SK: &str = "conformance-sts/secret+Key=9f8e";
const STS_TOKEN: &str = "CAIS+conformance/sts-token==";

/// Writes through the emulator's library API (not over HTTP), so every request in the
/// emulator's log comes from the client under test.
struct EmulatorFixture<'a> {
    emu: &'a Emulator,
    bucket: &'a str,
}

#[async_trait::async_trait]
impl Fixture for EmulatorFixture<'_> {
    async fn put(&self, key: &str, content: Bytes) -> Result<(), String> {
        self.emu
            .put_object(self.bucket, key, &content)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// One emulator accepting exactly `key`, signatures checked, V4 region `cn-hangzhou`.
fn start_emulator(key: AccessKey) -> Emulator {
    let emu = Emulator::start(
        EmulatorConfig::new()
            .access_key(key)
            .verify_signatures(true)
            .anonymous_read(false)
            .region(Some(REGION)),
    )
    .expect("start the emulator");
    emu.create_bucket(BUCKET).expect("create the bucket");
    emu
}

/// A bucket handle on the emulator, path style, signing with `version`.
fn bucket(
    emu: &Emulator,
    version: SignatureVersion,
    credentials: impl FnOnce(backend_oss::ClientBuilder) -> backend_oss::ClientBuilder,
) -> Bucket {
    let builder = Client::builder()
        .endpoint(emu.endpoint())
        .region(REGION)
        .signature_version(version);
    let client = credentials(builder).build().expect("build the client");
    assert_eq!(client.endpoint().style(), AddressingStyle::Path);
    assert_eq!(client.signature_version(), version);
    let bucket = client.bucket(BUCKET).expect("bucket handle");
    assert_eq!(
        bucket.object_url("a b").unwrap(),
        format!("{}/{BUCKET}/a%20b", emu.endpoint()),
        "path-style URL on the emulator's endpoint"
    );
    bucket
}

fn expected_method(version: SignatureVersion) -> AuthMethod {
    match version {
        SignatureVersion::V1 => AuthMethod::V1Header,
        SignatureVersion::V4 => AuthMethod::V4Header,
    }
}

/// Runs the suite and checks the emulator's log; prints how long it took.
async fn suite_passes(version: SignatureVersion, sts: bool) {
    let started = Instant::now();
    let (key, ak) = if sts {
        (AccessKey::sts(STS_AK, STS_SK, STS_TOKEN), STS_AK)
    } else {
        (AccessKey::new(AK, SK), AK)
    };
    let emu = start_emulator(key);
    let source = bucket(&emu, version, |b| {
        if sts {
            b.sts_credentials(STS_AK, STS_SK, STS_TOKEN)
        } else {
            b.credentials(AK, SK)
        }
    });
    let scratch = tempfile::tempdir().unwrap();

    let report = conformance::run(
        Arc::new(source),
        &EmulatorFixture {
            emu: &emu,
            bucket: BUCKET,
        },
        Capabilities {
            etag: true,
            crc64: true,
            overwrite: true,
        },
        "",
        scratch.path(),
    )
    .await;
    report.assert_clean();
    assert!(report.skipped.is_empty(), "skipped: {:?}", report.skipped);
    assert!(
        report.passed.len() >= 15,
        "only {} checks ran: {:?}",
        report.passed.len(),
        report.passed
    );

    let log = emu.request_log();
    assert_every_request_authenticated(&log, expected_method(version), ak);
    assert_eq!(
        log.len() as u64,
        emu.request_count(),
        "every request was answered and logged"
    );
    eprintln!(
        "{version:?}{}: {} checks passed, {} requests, {:.2?}",
        if sts { " + STS" } else { "" },
        report.passed.len(),
        log.len(),
        started.elapsed()
    );
}

/// Every request authenticated with `method` as `access_key_id`, no fault was injected, and
/// the only errors are the ones the suite provokes, each exactly as often as it provokes them.
fn assert_every_request_authenticated(log: &[RequestRecord], method: AuthMethod, ak: &str) {
    assert!(!log.is_empty(), "the emulator saw no request");
    let mut provoked: BTreeMap<(u16, &str), usize> = BTreeMap::new();
    let (mut heads_ok, mut ranged_gets_ok) = (0, 0);
    for r in log {
        assert_eq!(r.auth, method, "authentication method of {r:?}");
        assert_eq!(
            r.access_key_id.as_deref(),
            Some(ak),
            "request not authenticated as {ak}: {r:?}"
        );
        assert!(r.faults.is_empty(), "fault injected: {r:?}");
        assert_eq!(r.bucket.as_deref(), Some(BUCKET), "{r:?}");
        let key = r.key.as_deref().unwrap_or("");
        match (r.method.as_str(), r.status, r.error_code.as_deref()) {
            ("HEAD", Some(200), None) => heads_ok += 1,
            ("GET", Some(206), None) if r.range.is_some() => ranged_gets_ok += 1,
            ("HEAD" | "GET", Some(404), Some(code @ "NoSuchKey"))
                if key == "conformance/does-not-exist" =>
            {
                *provoked.entry((404, code)).or_default() += 1
            }
            ("GET", Some(412), Some(code @ "PreconditionFailed")) => {
                *provoked.entry((412, code)).or_default() += 1
            }
            ("GET", Some(416), Some(code @ "InvalidRange")) => {
                *provoked.entry((416, code)).or_default() += 1
            }
            _ => panic!("unexpected answer: {r:?}"),
        }
    }
    // HEADs: the first stat, the zero-byte object, the engine's, the one after the overwrite.
    // Ranged GETs: 4 single reads, 8 concurrent ones, the engine's 13 parts of 77 777 bytes.
    assert!(
        heads_ok >= 4 && ranged_gets_ok >= 25,
        "{heads_ok} HEADs, {ranged_gets_ok} ranged GETs succeeded"
    );
    // stat + read of the missing key; the stale If-Match check + the read with the etag from
    // before the overwrite; the read starting at the object's size.
    let want = BTreeMap::from([
        ((404, "NoSuchKey"), 2),
        ((412, "PreconditionFailed"), 2),
        ((416, "InvalidRange"), 1),
    ]);
    assert_eq!(provoked, want, "refusals the suite provokes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_access_key_passes_the_conformance_suite_against_the_emulator() {
    suite_passes(SignatureVersion::V1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_access_key_passes_the_conformance_suite_against_the_emulator() {
    suite_passes(SignatureVersion::V4, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_sts_credentials_pass_the_conformance_suite_against_the_emulator() {
    suite_passes(SignatureVersion::V1, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_sts_credentials_pass_the_conformance_suite_against_the_emulator() {
    suite_passes(SignatureVersion::V4, true).await;
}

/// The log record of the request the emulator answered with `request_id`.
fn record<'a>(log: &'a [RequestRecord], request_id: &str) -> &'a RequestRecord {
    log.iter()
        .find(|r| r.request_id == request_id)
        .unwrap_or_else(|| panic!("request id {request_id} is not in the emulator's log"))
}

fn assert_signature_mismatch(
    emu: &Emulator,
    e: &resume_core::SourceError,
    method: &str,
    auth: AuthMethod,
) {
    assert_eq!(e.kind, SourceErrorKind::Denied, "{e}");
    assert_eq!(e.status, Some(403), "{e}");
    assert_eq!(e.code.as_deref(), Some("SignatureDoesNotMatch"), "{e}");
    let id = e
        .request_id
        .as_deref()
        .expect("the error keeps the request id");
    let r = record(&emu.request_log(), id).clone();
    assert_eq!(r.method, method, "{r:?}");
    assert_eq!(r.status, Some(403), "{r:?}");
    assert_eq!(
        r.error_code.as_deref(),
        Some("SignatureDoesNotMatch"),
        "{r:?}"
    );
    assert_eq!(r.auth, auth, "{r:?}");
    assert_eq!(
        r.access_key_id, None,
        "refused, so not authenticated: {r:?}"
    );
    assert!(!e.to_string().contains("wrong-secret"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_denied_with_signature_does_not_match_and_no_file_is_written() {
    let emu = start_emulator(AccessKey::new(AK, SK));
    let key = "denied/object.bin";
    emu.put_object(BUCKET, key, conformance::content(3, 100_000))
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();

    for version in [SignatureVersion::V1, SignatureVersion::V4] {
        let auth = expected_method(version);
        let source = bucket(&emu, version, |b| b.credentials(AK, "wrong-secret"));

        // HEAD: the error document arrives base64-encoded in `x-oss-err`.
        let e = source
            .stat(key, None)
            .await
            .expect_err("HEAD with a wrong secret");
        assert_signature_mismatch(&emu, &e, "HEAD", auth);

        // GET: the error document is the body.
        let e = source
            .read_range(key, 0..10, &ReadConditions::default())
            .await
            .expect_err("GET with a wrong secret");
        assert_signature_mismatch(&emu, &e, "GET", auth);

        // The engine gives up at once (Denied is not retried) and leaves DEST alone.
        let dest = scratch.path().join(format!("{version:?}.bin"));
        let before = emu.request_count();
        let err = source
            .downloader()
            .download(key, &dest)
            .await
            .expect_err("download with a wrong secret");
        assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
        match &err {
            resume_core::Error::Stat {
                attempts, source, ..
            } => {
                assert_eq!(*attempts, 1, "{err}");
                assert_signature_mismatch(&emu, source, "HEAD", auth);
            }
            other => panic!("expected a failed stat, got {other:?}"),
        }
        assert_eq!(
            emu.request_count() - before,
            1,
            "one HEAD, no retry, no GET"
        );
        assert!(!dest.exists(), "{} was created", dest.display());
        assert!(!err.to_string().contains("wrong-secret"), "{err}");
    }

    // Nothing was ever served to the wrong secret.
    let log = emu.request_log();
    assert_eq!(log.len(), 6, "{log:#?}");
    assert!(
        log.iter()
            .all(|r| r.status == Some(403) && r.access_key_id.is_none()),
        "{log:#?}"
    );
    leftovers(scratch.path());
}

/// Prints what a failed download left in `dir` (temp file, checkpoint), for the test output.
fn leftovers(dir: &Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    eprintln!("left in the scratch directory after the denied downloads: {names:?}");
}
