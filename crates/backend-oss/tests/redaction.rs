//! Secrets never appear in `Debug` output, error messages or trace-level logs: the AccessKey
//! secret and the STS token are checked for in every value a user might print.

mod support;

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_oss::credentials::{ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SESSION_TOKEN};
use backend_oss::error::{ErrorBody, source_error};
use backend_oss::{
    CachingProvider, Client, Credentials, CredentialsProvider, DownloadOption, Endpoint,
    EnvCredentials, ReadOptions, SignError, SignableRequest, SignatureVersion, Signer,
    StaticCredentials,
};
use bytes::Bytes;
use resume_core::{RangeSource, ReadConditions};
use support::{Reply, TestServer};

const SECRET: &str = "SK-very-secret-5f2c";
const TOKEN: &str = "STS-token-value-9a7e";

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} leaks the secret: {text}");
    assert!(!text.contains(TOKEN), "{what} leaks the token: {text}");
}

fn check(what: &str, v: &impl std::fmt::Debug) {
    assert_clean(what, &format!("{v:?}"));
    assert_clean(what, &format!("{v:#?}"));
}

fn sts() -> Credentials {
    Credentials::new("AKID", SECRET)
        .with_security_token(TOKEN)
        .with_expiry(at(2_000_000_000))
}

#[test]
fn credentials_debug_redacts_secret_and_token_but_shows_the_key_id() {
    let c = sts();
    check("Credentials", &c);
    let shown = format!("{c:?}");
    assert!(
        shown.contains("AKID") && shown.contains("<redacted>"),
        "{shown}"
    );
    check(
        "Credentials without token",
        &Credentials::new("AKID", SECRET),
    );
}

#[tokio::test]
async fn providers_debug_redacts_before_and_after_use() {
    let s = StaticCredentials::with_security_token("AKID", SECRET, TOKEN);
    check("StaticCredentials", &s);
    let dynp: Arc<dyn CredentialsProvider> = Arc::new(s.clone());
    check("Arc<dyn CredentialsProvider>", &dynp);

    let caching = CachingProvider::new(s, Duration::from_secs(60));
    check("CachingProvider (empty)", &caching);
    caching.credentials().await.unwrap();
    check("CachingProvider (filled)", &caching);

    let vars: HashMap<&str, &str> = [
        (ENV_ACCESS_KEY_ID, "AKID"),
        (ENV_ACCESS_KEY_SECRET, SECRET),
        (ENV_SESSION_TOKEN, TOKEN),
    ]
    .into();
    let envp = EnvCredentials::with_lookup(move |n| vars.get(n).map(OsString::from));
    let loaded = envp.credentials().await.unwrap();
    check("EnvCredentials", &envp);
    check("Credentials from env", &loaded);
}

#[test]
fn signer_and_signing_outputs_redact_the_token() {
    let creds = sts();
    let headers = vec![
        ("x-oss-security-token".to_string(), TOKEN.to_string()),
        ("content-type".to_string(), "text/plain".to_string()),
    ];
    let query = vec![("security-token".to_string(), TOKEN.to_string())];
    let req = SignableRequest::new("GET", Some("bucket"), Some("key"))
        .headers(&headers)
        .query(&query);
    check("SignableRequest", &req);

    for signer in [Signer::v1(), Signer::v4("cn-hangzhou").unwrap()] {
        check("Signer", &signer);
        let signed = signer
            .sign_headers(&creds, &req, at(1_700_000_000))
            .unwrap();
        check("SignedHeaders", &signed);
        // The token must still be sent.
        assert_eq!(signed.get("x-oss-security-token"), Some(TOKEN));

        let req = SignableRequest::new("GET", Some("bucket"), Some("key"));
        let presigned = signer
            .presign(&creds, &req, at(1_700_000_000), Duration::from_secs(60))
            .unwrap();
        check("PresignedQuery", &presigned);
        assert!(presigned.to_query_string().contains(TOKEN));
    }
}

#[test]
fn errors_never_carry_secrets() {
    let req = SignableRequest::new("GET", Some("b"), Some("k"));
    let expired = sts().with_expiry(at(10));
    for signer in [Signer::v1(), Signer::v4("cn-hangzhou").unwrap()] {
        let err = signer.sign_headers(&expired, &req, at(10)).unwrap_err();
        assert!(matches!(err, SignError::Expired { .. }));
        assert_clean("SignError", &format!("{err} {err:?}"));
        let err = signer
            .sign_headers(&Credentials::new("", SECRET), &req, at(10))
            .unwrap_err();
        assert_clean("SignError", &format!("{err} {err:?}"));
    }

    let e = Endpoint::parse(&format!(
        "https://AKID:{SECRET}@oss-cn-hangzhou.aliyuncs.com"
    ))
    .unwrap_err();
    assert_clean("ConfigError", &format!("{e} {e:?}"));

    let xml = format!(
        "<Error><Code>SignatureDoesNotMatch</Code><Message>mismatch</Message><StringToSign>x-oss-security-token:{TOKEN}</StringToSign></Error>"
    );
    let body = ErrorBody::parse(xml.as_bytes());
    let e = source_error("GetObject oss://b/k", 403, &body, Some("rid"));
    assert_clean("SourceError", &format!("{e} {e:?} {body:?}"));
}

#[derive(Debug)]
struct StsProvider;

#[async_trait::async_trait]
impl CredentialsProvider for StsProvider {
    async fn credentials(&self) -> Result<Credentials, backend_oss::CredentialsError> {
        Ok(Credentials::new("AKID", SECRET)
            .with_security_token(TOKEN)
            .with_expiry(SystemTime::now() + Duration::from_secs(3600)))
    }
}

fn clients(endpoint: &str) -> Vec<(String, backend_oss::ClientBuilder)> {
    let base = || Client::builder().endpoint(endpoint).region("cn-hangzhou");
    let vars: HashMap<&str, &str> = [
        (ENV_ACCESS_KEY_ID, "AKID"),
        (ENV_ACCESS_KEY_SECRET, SECRET),
        (ENV_SESSION_TOKEN, TOKEN),
    ]
    .into();
    vec![
        ("static".into(), base().credentials("AKID", SECRET)),
        ("sts".into(), base().sts_credentials("AKID", SECRET, TOKEN)),
        (
            "sts v1".into(),
            base()
                .sts_credentials("AKID", SECRET, TOKEN)
                .signature_version(SignatureVersion::V1),
        ),
        (
            "env".into(),
            base().env_credentials_from(EnvCredentials::with_lookup(move |n| {
                vars.get(n).map(OsString::from)
            })),
        ),
        ("provider".into(), base().credentials_provider(StsProvider)),
    ]
}

#[tokio::test]
async fn client_bucket_and_builder_debug_never_show_secret_or_token() {
    for (what, builder) in clients("https://oss-cn-hangzhou.aliyuncs.com") {
        check(&format!("ClientBuilder {what}"), &builder);
        let client = builder.build().unwrap();
        check(&format!("Client {what}"), &client);
        let bucket = client
            .bucket("bkt")
            .unwrap()
            .with_options(ReadOptions {
                headers: vec![("x-oss-meta-note".into(), TOKEN.into())],
                ..Default::default()
            })
            .unwrap();
        check(&format!("Bucket {what}"), &bucket);
        check(
            &format!("Downloader {what}"),
            &backend_oss::Bucket::downloader(&bucket),
        );
        let shown = format!("{client:?}");
        if what.starts_with("s") {
            assert!(
                shown.contains("AKID") && shown.contains("<redacted>"),
                "{shown}"
            );
        }
    }
    check(
        "DownloadOption",
        &[
            DownloadOption::Header("x-oss-meta-note", TOKEN),
            DownloadOption::Checkpoint(true, ""),
        ],
    );
}

/// Captures everything logged at trace level.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn request_errors_and_trace_logs_never_show_secret_or_token() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // OSS echoes what it signed on SignatureDoesNotMatch, token included.
    // HEAD answers carry the document base64-encoded in `x-oss-err`.
    let server = TestServer::start(|r| {
        if r.path.ends_with("/drop") {
            return Reply::Drop;
        }
        let xml = format!(
            "<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message>\
             <StringToSign>GET\nx-oss-security-token:{TOKEN}</StringToSign>\
             <CanonicalRequest>x-oss-security-token:{TOKEN}</CanonicalRequest></Error>"
        );
        let head = r.method == "HEAD";
        let mut headers = vec![("x-oss-request-id".to_string(), "RID-1".to_string())];
        if head {
            use base64::Engine as _;
            headers.push((
                "x-oss-err".into(),
                base64::engine::general_purpose::STANDARD.encode(&xml),
            ));
        }
        Reply::Full {
            status: 403,
            headers,
            body: if head { Bytes::new() } else { Bytes::from(xml) },
        }
    })
    .await;
    let mut messages = Vec::new();
    for (what, builder) in clients(&server.endpoint()) {
        let bucket = builder.build().unwrap().bucket("bkt").unwrap();
        let err = bucket
            .read_range("k", 0..10, &ReadConditions::default())
            .await
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("SignatureDoesNotMatch"), "{what}");
        messages.push(format!("{what}: {err} {err:?}"));
        let err = bucket.stat("k", None).await.unwrap_err();
        assert_eq!(err.code.as_deref(), Some("SignatureDoesNotMatch"), "{what}");
        messages.push(format!("{what}: {err} {err:?}"));
        let err = bucket.stat("drop", None).await.unwrap_err();
        messages.push(format!("{what}: {err} {err:?}"));
        let dir = tempfile::tempdir().unwrap();
        let err = bucket
            .download_file("k", dir.path().join("f"), 1024, &[])
            .await
            .unwrap_err();
        messages.push(format!("{what}: {err} {err:?}"));
    }
    for m in &messages {
        assert_clean("error", m);
    }
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    // The request log's lines and headers were captured (and the credential header shown
    // only as redacted).
    assert!(
        logs.contains("resume_get::request") && logs.contains("> authorization: <redacted>"),
        "trace logs were captured:\n{logs}"
    );
    assert_clean("trace logs", &logs);
}
