//! What the client sends: signatures a verifying server accepts (V1 and V4, with and without
//! STS), and the headers and query every HEAD and ranged GET must carry.

mod support;

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use backend_oss::{
    Client, Credentials, CredentialsError, CredentialsProvider, EnvCredentials, ReadOptions,
    SignatureVersion,
};
use bytes::Bytes;
use futures::StreamExt as _;
use resume_core::{RangeSource, ReadConditions, SourceErrorKind};
use support::{Recorded, TestServer, object_bytes, serve_object};

const AK: &str = "AKIDtest";
const SK: &str = "secret-key-for-tests";
const TOKEN: &str = "sts-token-for-tests";
const BUCKET: &str = "test-bucket";
const ETAG: &str = "\"0123456789ABCDEF0123456789ABCDEF\"";

async fn object_server(data: Bytes) -> TestServer {
    TestServer::start(move |r| serve_object(r, &data, ETAG, &[])).await
}

fn client(server: &TestServer, version: SignatureVersion, sts: bool) -> Client {
    let b = Client::builder()
        .endpoint(server.endpoint())
        .region("cn-hangzhou")
        .signature_version(version);
    let b = if sts {
        b.sts_credentials(AK, SK, TOKEN)
    } else {
        b.credentials(AK, SK)
    };
    b.build().unwrap()
}

async fn drain(read: resume_core::RangeRead) -> Vec<u8> {
    let mut body = read.body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn every_request_is_signed_correctly_for_v1_and_v4_with_and_without_sts() {
    let data = object_bytes(1000);
    let server = object_server(data.clone()).await;
    // A key and options that exercise encoding: spaces, '+', '%', unicode, '//', a version id
    // with reserved characters, signed x-oss-* headers and an unsigned custom header.
    let key = "/dir//a b+c%d/é 中.txt";
    let options = ReadOptions {
        version_id: Some("CAEQ+/=&?v1".into()),
        request_payer: true,
        traffic_limit: Some(819_200),
        headers: vec![
            ("x-oss-meta-trace".into(), "t1".into()),
            ("x-custom".into(), "plain".into()),
        ],
    };
    for version in [SignatureVersion::V4, SignatureVersion::V1] {
        for sts in [false, true] {
            server.clear();
            let bucket = client(&server, version, sts)
                .bucket(BUCKET)
                .unwrap()
                .with_options(options.clone())
                .unwrap();
            let meta = bucket.stat(key, None).await.unwrap();
            assert_eq!(meta.size, 1000);
            let read = bucket
                .read_range(
                    key,
                    10..20,
                    &ReadConditions {
                        if_match: meta.etag.clone(),
                        version_id: None,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(drain(read).await, &data[10..20]);

            let requests = server.requests();
            assert_eq!(requests.len(), 2, "{version:?} sts={sts}");
            for r in &requests {
                let what = format!("{} {version:?} sts={sts}", r.method);
                assert_eq!(r.key(BUCKET), key, "{what}");
                r.verify_signature(BUCKET, SK)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                // The verifier is not vacuous: another secret fails.
                assert!(
                    r.verify_signature(BUCKET, "other-secret").is_err(),
                    "{what}"
                );
                let auth = r.header("authorization").unwrap();
                match version {
                    SignatureVersion::V4 => {
                        assert!(auth.starts_with(&format!("OSS4-HMAC-SHA256 Credential={AK}/")));
                        assert_eq!(r.header("x-oss-content-sha256"), Some("UNSIGNED-PAYLOAD"));
                    }
                    SignatureVersion::V1 => assert!(auth.starts_with(&format!("OSS {AK}:"))),
                }
                assert_eq!(
                    r.header("x-oss-security-token"),
                    sts.then_some(TOKEN),
                    "{what}"
                );
                assert_eq!(r.query_value("versionId").as_deref(), Some("CAEQ+/=&?v1"));
            }
        }
    }
}

#[tokio::test]
async fn ranged_get_carries_range_standard_behaviour_if_match_version_and_identity_encoding() {
    let server = object_server(object_bytes(1000)).await;
    let bucket = client(&server, SignatureVersion::V4, false)
        .bucket(BUCKET)
        .unwrap();
    let read = bucket
        .read_range(
            "k",
            100..200,
            &ReadConditions {
                if_match: Some(ETAG.into()),
                version_id: Some("v9".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    drain(read).await;
    let r = &server.requests()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.header("range"), Some("bytes=100-199"));
    assert_eq!(r.header("x-oss-range-behavior"), Some("standard"));
    assert_eq!(r.header("if-match"), Some(ETAG));
    assert_eq!(r.query_value("versionId").as_deref(), Some("v9"));
    assert_eq!(r.header("accept-encoding"), Some("identity"));
    assert!(r.header("user-agent").unwrap().starts_with("resume-get"));
    // Path style for an IP endpoint.
    assert_eq!(r.path, format!("/{BUCKET}/k"));
}

#[tokio::test]
async fn head_carries_identity_encoding_and_the_version_asked_for() {
    let server = object_server(object_bytes(10)).await;
    let bucket = client(&server, SignatureVersion::V4, false)
        .bucket(BUCKET)
        .unwrap();
    bucket.stat("k", Some("v1")).await.unwrap();
    bucket.stat("k", None).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests[0].method, "HEAD");
    assert_eq!(requests[0].header("accept-encoding"), Some("identity"));
    assert_eq!(requests[0].query_value("versionId").as_deref(), Some("v1"));
    assert_eq!(requests[0].header("range"), None);
    assert_eq!(requests[1].query, "");
}

#[tokio::test]
async fn requester_pays_traffic_limit_and_extra_headers_go_on_head_and_get() {
    let server = object_server(object_bytes(100)).await;
    let bucket = client(&server, SignatureVersion::V4, false)
        .bucket(BUCKET)
        .unwrap()
        .with_options(ReadOptions {
            request_payer: true,
            traffic_limit: Some(838_860_800),
            headers: vec![("x-oss-meta-a".into(), "b".into())],
            ..Default::default()
        })
        .unwrap();
    bucket.stat("k", None).await.unwrap();
    drain(
        bucket
            .read_range("k", 0..1, &ReadConditions::default())
            .await
            .unwrap(),
    )
    .await;
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(r.header("x-oss-request-payer"), Some("requester"));
        assert_eq!(r.header("x-oss-traffic-limit"), Some("838860800"));
        assert_eq!(r.header("x-oss-meta-a"), Some("b"));
        r.verify_signature(BUCKET, SK).unwrap();
    }
}

/// A provider handing out short-lived STS credentials, counting its calls.
#[derive(Debug)]
struct CountingSts {
    calls: Arc<AtomicUsize>,
    lifetime: Duration,
}

#[async_trait::async_trait]
impl CredentialsProvider for CountingSts {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Credentials::new(AK, SK)
            .with_security_token(TOKEN)
            .with_expiry(SystemTime::now() + self.lifetime))
    }
}

#[tokio::test]
async fn a_refreshing_provider_is_cached_while_valid_and_near_expiry_credentials_are_refused() {
    let server = object_server(object_bytes(100)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let bucket = Client::builder()
        .endpoint(server.endpoint())
        .region("cn-hangzhou")
        .credentials_provider(CountingSts {
            calls: calls.clone(),
            lifetime: Duration::from_secs(3600),
        })
        .build()
        .unwrap()
        .bucket(BUCKET)
        .unwrap();
    for _ in 0..3 {
        bucket.stat("k", None).await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "cached while valid");
    for r in server.requests() {
        assert_eq!(r.header("x-oss-security-token"), Some(TOKEN));
        r.verify_signature(BUCKET, SK).unwrap();
    }

    // Credentials that expire within the headroom are never used to sign.
    server.clear();
    let bucket = Client::builder()
        .endpoint(server.endpoint())
        .region("cn-hangzhou")
        .credentials_provider(CountingSts {
            calls: calls.clone(),
            lifetime: Duration::from_secs(30),
        })
        .credentials_headroom(Duration::from_secs(60))
        .build()
        .unwrap()
        .bucket(BUCKET)
        .unwrap();
    let err = bucket.stat("k", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Denied, "{err}");
    let err = bucket
        .read_range("k", 0..1, &ReadConditions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Denied, "{err}");
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn environment_credentials_are_read_before_every_request() {
    let server = object_server(object_bytes(100)).await;
    let reads = Arc::new(AtomicUsize::new(0));
    let counter = reads.clone();
    let env = EnvCredentials::with_lookup(move |name| {
        counter.fetch_add(1, Ordering::SeqCst);
        match name {
            "OSS_ACCESS_KEY_ID" => Some(OsString::from(AK)),
            "OSS_ACCESS_KEY_SECRET" => Some(OsString::from(SK)),
            "OSS_SESSION_TOKEN" => Some(OsString::from(TOKEN)),
            _ => None,
        }
    });
    let bucket = Client::builder()
        .endpoint(server.endpoint())
        .region("cn-hangzhou")
        .env_credentials_from(env)
        .build()
        .unwrap()
        .bucket(BUCKET)
        .unwrap();
    bucket.stat("k", None).await.unwrap();
    let after_one = reads.load(Ordering::SeqCst);
    bucket.stat("k", None).await.unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 2 * after_one);
    for r in server.requests() {
        assert_eq!(r.header("x-oss-security-token"), Some(TOKEN));
        r.verify_signature(BUCKET, SK).unwrap();
    }
}

#[tokio::test]
async fn every_attempt_is_signed_afresh() {
    // Two identical reads a second apart carry different dates and signatures: a retry never
    // replays an old signature.
    let server = object_server(object_bytes(100)).await;
    for version in [SignatureVersion::V4, SignatureVersion::V1] {
        server.clear();
        let bucket = client(&server, version, true).bucket(BUCKET).unwrap();
        let cond = ReadConditions::default();
        drain(bucket.read_range("k", 0..10, &cond).await.unwrap()).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        drain(bucket.read_range("k", 0..10, &cond).await.unwrap()).await;
        let r: Vec<Recorded> = server.requests();
        assert_ne!(r[0].header("date"), r[1].header("date"));
        assert_ne!(r[0].header("authorization"), r[1].header("authorization"));
        for r in &r {
            r.verify_signature(BUCKET, SK).unwrap();
        }
    }
}

#[tokio::test]
async fn sequential_requests_share_one_pooled_http11_connection() {
    let server = object_server(object_bytes(100)).await;
    let bucket = client(&server, SignatureVersion::V4, false)
        .bucket(BUCKET)
        .unwrap();
    for _ in 0..3 {
        bucket.stat("k", None).await.unwrap();
        drain(
            bucket
                .read_range("k", 0..100, &ReadConditions::default())
                .await
                .unwrap(),
        )
        .await;
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 6);
    for r in &requests {
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(r.peer, requests[0].peer, "one connection, reused");
    }
}
