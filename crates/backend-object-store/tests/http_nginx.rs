//! object_store's HTTP store against a real web server: nginx (Debian's `nginx-light`),
//! started by the test on 127.0.0.1. Missing nginx fails the test; `.ci/run` installs it.
//!
//! One server, one test: the checks share it and run in sequence.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{DirFixture, Nginx, assert_report};
use resume_core::conformance::{self, Capabilities, Fixture};
use resume_core::{Downloader, RangeSource, ReadConditions, SourceErrorKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_the_conformance_suite_with_and_without_etags_and_errors_map() {
    let nginx = Nginx::start();
    let source = Arc::new(nginx.source());
    let fixture = DirFixture(nginx.root().to_path_buf());
    let scratch = tempfile::tempdir().unwrap();

    // Static files with ETag ("mtime-size"), ranges and If-Match: everything but CRC-64.
    let report = conformance::run(
        source.clone(),
        &fixture,
        Capabilities {
            etag: true,
            crc64: false,
            overwrite: true,
        },
        "etag/",
        scratch.path(),
    )
    .await;
    assert_report(
        "HTTP (nginx, etag)",
        &report,
        &["stat_reports_the_whole_object_crc64"],
    );

    // `etag off`: identity falls back to size + last-modified.
    let report = conformance::run(
        source.clone(),
        &fixture,
        Capabilities {
            etag: false,
            crc64: false,
            overwrite: true,
        },
        "noetag/",
        scratch.path(),
    )
    .await;
    assert_report(
        "HTTP (nginx, etag off)",
        &report,
        &[
            "stat_reports_an_etag",
            "stat_reports_the_whole_object_crc64",
        ],
    );
    let key = "noetag/conformance/empty";
    let meta = source.stat(key, None).await.unwrap();
    assert_eq!(
        (meta.etag.as_deref(), meta.last_modified.is_some()),
        (None, true),
        "no etag is reported as None, last-modified is kept"
    );
    no_etag_download_resumes_with_size_and_last_modified_as_identity(&nginx, &source).await;

    ignored_range_is_declared_as_the_whole_object(&nginx, &source).await;

    // 403 → Denied, 503 → Transient (object_store's own retries are off: one request).
    fixture
        .put("denied/x", Bytes::from_static(b"secret"))
        .await
        .unwrap();
    let err = source.stat("denied/x", None).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (SourceErrorKind::Denied, Some(403)),
        "{err}"
    );
    let err = source
        .read_range("unavailable/x", 0..1, &ReadConditions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (SourceErrorKind::Transient, Some(503)),
        "{err}"
    );
    assert!(
        err.to_string().contains("/unavailable/x"),
        "the error names what failed: {err}"
    );
}

/// Without etags the engine sends no If-Match; the checkpoint pins size + last-modified.
async fn no_etag_download_resumes_with_size_and_last_modified_as_identity(
    nginx: &Nginx,
    source: &Arc<backend_object_store::ObjectStoreSource>,
) {
    let key = "noetag/resume.bin";
    let data = conformance::content(5, 700_000);
    DirFixture(nginx.root().to_path_buf())
        .put(key, data.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("resume.bin");
    // Stop after the first part's record (a clean cancel), then resume.
    let token = resume_core::CancellationToken::new();
    let t = token.clone();
    let first = Downloader::from_arc(source.clone())
        .part_size(100_000)
        .concurrency(1)
        .cancel_token(token)
        .on_progress(move |ev| {
            if matches!(ev, resume_core::Event::PartDone { .. }) {
                t.cancel();
            }
        })
        .download(key, &dest)
        .await;
    assert!(first.is_err(), "the first run was cancelled");
    let report = Downloader::from_arc(source.clone())
        .part_size(100_000)
        .concurrency(2)
        .download(key, &dest)
        .await
        .unwrap();
    assert!(report.reused_bytes >= 100_000, "{report:?}");
    assert_eq!(report.object.etag, None);
    assert_eq!(std::fs::read(&dest).unwrap(), data[..]);
}

/// `max_ranges 0`: nginx answers every ranged GET with 200 and the whole file. The source
/// declares exactly that, so the engine never takes it for a part: it downloads the whole
/// object as one stream instead, and says so once.
async fn ignored_range_is_declared_as_the_whole_object(
    nginx: &Nginx,
    source: &Arc<backend_object_store::ObjectStoreSource>,
) {
    let key = "norange/whole.bin";
    let data = conformance::content(3, 250_000);
    DirFixture(nginx.root().to_path_buf())
        .put(key, data.clone())
        .await
        .unwrap();
    let read = source
        .read_range(key, 10..20, &ReadConditions::default())
        .await
        .unwrap();
    assert_eq!(
        read.range,
        0..250_000,
        "the declared range is the whole object"
    );
    assert_eq!(read.total_size, Some(250_000));
    drop(read);

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("whole.bin");
    let report = Downloader::from_arc(source.clone())
        .part_size(100_000)
        .concurrency(2)
        .download(key, &dest)
        .await
        .unwrap();
    assert_eq!(report.parts, 1, "one stream");
    assert_eq!(
        report.warnings,
        vec!["server does not support ranges: one connection, resumes from the start".to_owned()]
    );
    assert_eq!(std::fs::read(&dest).unwrap(), data[..]);
    std::fs::remove_file(&dest).unwrap();

    let report = Downloader::from_arc(source.clone())
        .part_size(250_000)
        .concurrency(1)
        .download(key, &dest)
        .await
        .unwrap();
    assert_eq!(report.parts, 1);
    assert_eq!(std::fs::read(&dest).unwrap(), data[..]);
}
