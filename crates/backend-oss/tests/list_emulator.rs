//! [`OssLister`] against the oss-emulator over HTTP with strict signature checks: the lister
//! conformance suite (resume-core, feature `conformance`) with V1 and V4 signatures and with
//! STS credentials, then what the emulator's log says about the requests sent.

use std::sync::Arc;

use backend_oss::{Bucket, Client, OssLister, SignatureVersion};
use bytes::Bytes;
use oss_emulator::{AccessKey, AuthMethod, Emulator, EmulatorConfig};
use resume_core::conformance::Fixture;
use resume_core::conformance::list::{self, ListCapabilities, ListFixture};
use resume_core::{Lister, SourceErrorKind};

const REGION: &str = "cn-hangzhou";
const BUCKET: &str = "list-bucket";
const AK: &str = "list-ak";
const SK: &str = "list/secret+Key=0b1c";
const STS_AK: &str = "STS.list-ak";
const STS_SK: &str = "list-sts/secret+Key=9f8e";
const STS_TOKEN: &str = "CAIS+list/sts-token==";

struct EmulatorFixture<'a>(&'a Emulator);

#[async_trait::async_trait]
impl Fixture for EmulatorFixture<'_> {
    async fn put(&self, key: &str, content: Bytes) -> Result<(), String> {
        self.0
            .put_object(BUCKET, key, &content)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

struct Listers {
    bucket: Bucket,
    missing: Bucket,
}

impl ListFixture for Listers {
    fn lister(&self, page_size: Option<usize>) -> Arc<dyn Lister> {
        let l = self.bucket.lister();
        Arc::new(match page_size {
            Some(n) => l.with_page_size(u16::try_from(n).unwrap_or(u16::MAX)),
            None => l,
        })
    }
    fn missing_bucket(&self) -> Option<Arc<dyn Lister>> {
        Some(Arc::new(self.missing.lister()))
    }
}

fn client(emu: &Emulator, version: SignatureVersion, sts: bool) -> Client {
    let b = Client::builder()
        .endpoint(emu.endpoint())
        .region(REGION)
        .signature_version(version);
    let b = if sts {
        b.sts_credentials(STS_AK, STS_SK, STS_TOKEN)
    } else {
        b.credentials(AK, SK)
    };
    b.build().expect("client")
}

async fn lister_conforms(version: SignatureVersion, sts: bool) {
    let (key, ak) = if sts {
        (AccessKey::sts(STS_AK, STS_SK, STS_TOKEN), STS_AK)
    } else {
        (AccessKey::new(AK, SK), AK)
    };
    let emu = Emulator::start(
        EmulatorConfig::new()
            .access_key(key)
            .verify_signatures(true)
            .anonymous_read(false)
            .region(Some(REGION)),
    )
    .expect("emulator");
    emu.create_bucket(BUCKET).unwrap();
    let client = client(&emu, version, sts);
    let listers = Listers {
        bucket: client.bucket(BUCKET).unwrap(),
        missing: client.bucket("no-such-bucket").unwrap(),
    };
    let source = Arc::new(listers.bucket.clone());
    // OSS holds any key: `a` next to `a/b`, and folder markers ending in `/`.
    let caps = ListCapabilities {
        file_and_prefix: true,
        trailing_slash: true,
    };
    for prefix in ["p/", ""] {
        let report = list::run(
            source.clone(),
            &EmulatorFixture(&emu),
            &listers,
            caps,
            prefix,
        )
        .await;
        println!("{version:?} sts={sts} prefix {prefix:?}: {report:#?}");
        report.assert_clean();
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    }

    // Every request was signed as expected and authenticated; listings asked for URL-encoded
    // keys; the only refusals are the missing bucket's.
    let want = match version {
        SignatureVersion::V1 => AuthMethod::V1Header,
        SignatureVersion::V4 => AuthMethod::V4Header,
    };
    let log = emu.request_log();
    let mut lists = 0;
    for r in &log {
        assert_eq!(r.auth, want, "{r:?}");
        assert_eq!(r.access_key_id.as_deref(), Some(ak), "{r:?}");
        if r.key.is_none() {
            lists += 1;
            for q in ["list-type", "prefix", "max-keys", "encoding-type"] {
                assert!(r.query_keys.iter().any(|k| k == q), "{q} missing: {r:?}");
            }
        }
        match (r.status, r.error_code.as_deref(), r.bucket.as_deref()) {
            (Some(200), None, Some(BUCKET)) => {}
            (Some(404), Some("NoSuchBucket"), Some("no-such-bucket")) => {}
            _ => panic!("unexpected answer: {r:?}"),
        }
    }
    assert!(lists > 50, "only {lists} listing requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_lister_passes_the_lister_conformance_suite() {
    lister_conforms(SignatureVersion::V1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_lister_passes_the_lister_conformance_suite() {
    lister_conforms(SignatureVersion::V4, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_sts_lister_passes_the_lister_conformance_suite() {
    lister_conforms(SignatureVersion::V4, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_errors_carry_code_request_id_and_no_secret() {
    let emu = Emulator::start(
        EmulatorConfig::new()
            .access_key(AccessKey::new(AK, SK))
            .verify_signatures(true)
            .anonymous_read(false)
            .region(Some(REGION)),
    )
    .expect("emulator");
    emu.create_bucket(BUCKET).unwrap();
    let good = client(&emu, SignatureVersion::V4, false);
    let err = good
        .bucket("no-such-bucket")
        .unwrap()
        .lister()
        .list_page("x/", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("NoSuchBucket"), "{err}");
    assert!(err.request_id.is_some(), "{err}");
    assert!(
        err.to_string()
            .contains("ListObjectsV2 oss://no-such-bucket/x/"),
        "{err}"
    );

    let wrong = Client::builder()
        .endpoint(emu.endpoint())
        .region(REGION)
        .credentials(AK, "wrong-secret-value")
        .build()
        .unwrap();
    let lister: OssLister = wrong.bucket(BUCKET).unwrap().lister();
    let err = lister.list_page("", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Denied, "{err}");
    assert_eq!(err.code.as_deref(), Some("SignatureDoesNotMatch"), "{err}");
    let shown = format!("{err} {err:?} {lister:?}");
    assert!(!shown.contains("wrong-secret-value"), "{shown}");
    assert!(!shown.contains(SK), "{shown}");

    // A token the server does not know: refused, not a silent restart.
    let err = good
        .bucket(BUCKET)
        .unwrap()
        .lister()
        .list_page("", Some("***"))
        .await
        .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("InvalidArgument"), "{err}");
}
