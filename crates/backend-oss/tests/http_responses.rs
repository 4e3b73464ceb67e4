//! How answers are reported to the engine: what a HEAD and a ranged GET declare, and which
//! error kind, code and request id each failure carries. The backend reports; it never
//! validates or retries (the engine does).

mod support;

use std::time::{Duration, UNIX_EPOCH};

use backend_oss::{Client, SignatureVersion};
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use resume_core::{RangeSource, ReadConditions, SourceErrorKind};
use support::{Reply, TestServer, object_bytes, serve_object};

const BUCKET: &str = "test-bucket";
const ETAG: &str = "\"5B3C1A9F-2\"";

fn bucket_for(server: &TestServer) -> backend_oss::Bucket {
    Client::builder()
        .endpoint(server.endpoint())
        .region("cn-hangzhou")
        .credentials("ak", "sk")
        .read_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap()
        .bucket(BUCKET)
        .unwrap()
}

fn full(status: u16, headers: &[(&str, &str)], body: &'static [u8]) -> Reply {
    Reply::Full {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: Bytes::from_static(body),
    }
}

#[tokio::test]
async fn stat_reports_size_etag_last_modified_version_and_crc64_and_flags_appendable_objects() {
    let data = object_bytes(12_345);
    let crc = resume_core::crc64(&data);
    let extra = vec![
        ("x-oss-version-id".to_string(), "CAEQNhiBgM".to_string()),
        ("x-oss-object-type".to_string(), "Appendable".to_string()),
        ("x-oss-storage-class".to_string(), "Standard".to_string()),
        ("content-type".to_string(), "text/plain".to_string()),
    ];
    let server = TestServer::start(move |r| serve_object(r, &data, ETAG, &extra)).await;
    let bucket = bucket_for(&server);

    let meta = bucket.stat("k", None).await.unwrap();
    assert_eq!(meta.size, 12_345);
    assert_eq!(meta.etag.as_deref(), Some(ETAG), "quoted, as sent");
    assert_eq!(
        meta.last_modified,
        Some(UNIX_EPOCH + Duration::from_secs(1_672_223_261))
    );
    assert_eq!(meta.version_id.as_deref(), Some("CAEQNhiBgM"));
    assert_eq!(meta.crc64(), Some(crc));

    let info = bucket.head_object("k", None).await.unwrap();
    assert!(info.is_appendable());
    assert_eq!(info.meta(), meta, "stat treats appendable objects as usual");
    assert_eq!(info.storage_class.as_deref(), Some("Standard"));
    assert_eq!(info.content_type.as_deref(), Some("text/plain"));
    assert_eq!(info.request_id.as_deref(), Some("RID-OK"));
}

#[tokio::test]
async fn stat_without_crc_reports_none_and_a_malformed_crc_is_an_error() {
    let server = TestServer::start(|r| {
        let crc = if r.key(BUCKET) == "bad" {
            "12ab"
        } else {
            "none"
        };
        let mut headers = vec![("content-length", "7"), ("etag", "\"E\"")];
        if crc != "none" {
            headers.push(("x-oss-hash-crc64ecma", crc));
        }
        full(200, &headers, b"")
    })
    .await;
    let bucket = bucket_for(&server);
    let meta = bucket.stat("plain", None).await.unwrap();
    assert_eq!((meta.size, meta.crc64()), (7, None));
    let err = bucket.stat("bad", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Other);
    assert!(err.message.contains("x-oss-hash-crc64ecma"), "{err}");
}

#[tokio::test]
async fn a_206_declares_its_content_range_total_and_etag() {
    let data = object_bytes(1000);
    let server = TestServer::start(move |r| serve_object(r, &data, ETAG, &[])).await;
    let bucket = bucket_for(&server);
    let read = bucket
        .read_range("k", 990..1010, &ReadConditions::default())
        .await
        .unwrap();
    // OSS clamps an end past the object (standard behaviour); the backend reports the clamp
    // honestly and the engine decides.
    assert_eq!(read.range, 990..1000);
    assert_eq!(read.total_size, Some(1000));
    assert_eq!(read.etag.as_deref(), Some(ETAG));
}

#[tokio::test]
async fn a_200_to_a_ranged_get_is_declared_as_the_whole_body_never_as_the_part() {
    let server = TestServer::start(|_| full(200, &[("etag", ETAG)], b"0123456789")).await;
    let bucket = bucket_for(&server);
    let read = bucket
        .read_range("k", 2..4, &ReadConditions::default())
        .await
        .unwrap();
    assert_eq!(read.range, 0..10);
    assert_eq!(read.total_size, Some(10));
}

#[tokio::test]
async fn a_malformed_or_missing_content_range_is_an_error_not_data() {
    let server = TestServer::start(|r| match r.key(BUCKET).as_str() {
        "missing" => full(206, &[], b"ab"),
        _ => full(206, &[("content-range", "bytes 1-0/10")], b"ab"),
    })
    .await;
    let bucket = bucket_for(&server);
    for key in ["missing", "malformed"] {
        let err = bucket
            .read_range(key, 0..2, &ReadConditions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind, SourceErrorKind::Other, "{key}: {err}");
        assert_eq!(err.status, Some(206));
    }
}

#[tokio::test]
async fn error_answers_map_to_kind_code_status_and_request_id() {
    let cases: &[(u16, &str, SourceErrorKind)] = &[
        (404, "NoSuchKey", SourceErrorKind::NotFound),
        (404, "NoSuchBucket", SourceErrorKind::NotFound),
        (403, "SignatureDoesNotMatch", SourceErrorKind::Denied),
        (403, "InvalidAccessKeyId", SourceErrorKind::Denied),
        (403, "AccessDenied", SourceErrorKind::Denied),
        (403, "InvalidObjectState", SourceErrorKind::Denied),
        (412, "PreconditionFailed", SourceErrorKind::Changed),
        (416, "InvalidRange", SourceErrorKind::InvalidRange),
        (500, "InternalError", SourceErrorKind::Transient),
        (503, "ServiceUnavailable", SourceErrorKind::Transient),
        (408, "RequestTimeout", SourceErrorKind::Transient),
        (429, "TooManyRequests", SourceErrorKind::Transient),
        (400, "InvalidArgument", SourceErrorKind::Other),
    ];
    let server = TestServer::start(|r| {
        let key = r.key(BUCKET);
        let (status, code) = key.split_once('-').unwrap();
        let (status, code) = (status.parse().unwrap(), code.to_string());
        Reply::oss_error(status, &code, &format!("RID-{code}"))
    })
    .await;
    let bucket = bucket_for(&server);
    for (status, code, kind) in cases {
        let key = format!("{status}-{code}");
        let err = bucket
            .read_range(&key, 0..10, &ReadConditions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind, *kind, "{key}: {err}");
        assert_eq!(err.status, Some(*status), "{key}");
        assert_eq!(err.code.as_deref(), Some(*code), "{key}");
        assert_eq!(err.request_id, Some(format!("RID-{code}")), "{key}");
        assert!(
            err.message.contains(&format!("oss://{BUCKET}/{key}")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn an_error_without_a_document_keeps_the_status_kind_and_header_request_id() {
    let server = TestServer::start(|_| {
        full(
            502,
            &[("x-oss-request-id", "RID-502")],
            b"<html>bad gateway</html>",
        )
    })
    .await;
    let err = bucket_for(&server)
        .read_range("k", 0..1, &ReadConditions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Transient);
    assert_eq!(err.status, Some(502));
    assert_eq!(err.code, None);
    assert_eq!(err.request_id.as_deref(), Some("RID-502"));
}

#[tokio::test]
async fn head_errors_are_read_from_the_x_oss_err_header() {
    let server = TestServer::start(|r| {
        let code = r.key(BUCKET);
        let xml = format!(
            "<Error><Code>{code}</Code><Message>m</Message><RequestId>RID-HEAD</RequestId></Error>"
        );
        let status = if code == "NoSuchKey" { 404 } else { 403 };
        Reply::Full {
            status,
            headers: vec![
                (
                    "x-oss-err".into(),
                    base64::engine::general_purpose::STANDARD.encode(xml),
                ),
                ("x-oss-request-id".into(), "RID-HEAD".into()),
            ],
            body: Bytes::new(),
        }
    })
    .await;
    let bucket = bucket_for(&server);
    let err = bucket.stat("NoSuchKey", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotFound);
    assert_eq!(err.code.as_deref(), Some("NoSuchKey"));
    assert_eq!(err.request_id.as_deref(), Some("RID-HEAD"));
    let err = bucket
        .stat("SignatureDoesNotMatch", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Denied);
    assert_eq!(err.code.as_deref(), Some("SignatureDoesNotMatch"));
    assert_eq!(err.status, Some(403));
}

#[tokio::test]
async fn a_body_cut_mid_stream_yields_the_bytes_received_then_a_transient_error() {
    let server = TestServer::start(|_| Reply::Cut {
        status: 206,
        headers: vec![
            ("content-range".into(), "bytes 0-99/100".into()),
            ("content-length".into(), "100".into()),
            ("etag".into(), ETAG.into()),
            ("x-oss-request-id".into(), "RID-CUT".into()),
        ],
        sent: Bytes::from_static(&[7u8; 40]),
    })
    .await;
    let read = bucket_for(&server)
        .read_range("k", 0..100, &ReadConditions::default())
        .await
        .unwrap();
    assert_eq!(read.range, 0..100);
    let mut body = read.body;
    let mut got = 0;
    let err = loop {
        match body.next().await {
            Some(Ok(chunk)) => got += chunk.len(),
            Some(Err(e)) => break e,
            None => panic!("the body ended without an error after {got} bytes"),
        }
    };
    assert_eq!(got, 40);
    assert_eq!(err.kind, SourceErrorKind::Transient, "{err}");
    assert_eq!(err.request_id.as_deref(), Some("RID-CUT"));
}

#[tokio::test]
async fn a_connection_dropped_before_the_answer_is_transient() {
    let server = TestServer::start(|_| Reply::Drop).await;
    let bucket = bucket_for(&server);
    let err = bucket.stat("k", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Transient, "{err}");
    let err = bucket
        .read_range("k", 0..1, &ReadConditions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Transient, "{err}");
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bucket = Client::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .credentials("ak", "sk")
        .signature_version(SignatureVersion::V1)
        .build()
        .unwrap()
        .bucket(BUCKET)
        .unwrap();
    let err = bucket.stat("k", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Transient, "{err}");
    assert!(err.message.contains("could not connect"), "{err}");
}

#[tokio::test]
async fn a_stalled_body_times_out_as_transient() {
    let server = TestServer::start(|_| Reply::Stall {
        status: 206,
        headers: vec![
            ("content-range".into(), "bytes 0-9/10".into()),
            ("content-length".into(), "10".into()),
        ],
        sent: Bytes::from_static(b"abc"),
    })
    .await;
    let bucket = Client::builder()
        .endpoint(server.endpoint())
        .credentials("ak", "sk")
        .signature_version(SignatureVersion::V1)
        .read_timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap()
        .bucket(BUCKET)
        .unwrap();
    let mut body = bucket
        .read_range("k", 0..10, &ReadConditions::default())
        .await
        .unwrap()
        .body;
    assert_eq!(&body.next().await.unwrap().unwrap()[..], b"abc");
    let err = body.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Transient, "{err}");
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_up_to_64_kib() {
    // A 503 whose body never ends: the client reads a bounded prefix and reports at once
    // instead of waiting for the rest (or buffering it).
    let mut xml = b"<Error><Code>SlowDown</Code><RequestId>RID-BIG</RequestId></Error>".to_vec();
    xml.resize(100 * 1024, b' ');
    let xml = Bytes::from(xml);
    let server = TestServer::start(move |_| Reply::Stall {
        status: 503,
        headers: vec![("content-length".into(), "10000000".into())],
        sent: xml.clone(),
    })
    .await;
    let started = std::time::Instant::now();
    let err = bucket_for(&server)
        .read_range("k", 0..1, &ReadConditions::default())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind, SourceErrorKind::Transient);
    assert_eq!(err.code.as_deref(), Some("SlowDown"));
    assert_eq!(err.request_id.as_deref(), Some("RID-BIG"));
}
