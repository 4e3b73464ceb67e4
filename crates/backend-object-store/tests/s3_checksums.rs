//! S3 checksums against moto (PyPI `moto[server]`, with `crc32c` and `awscrt` so that it
//! computes CRC-32C and CRC-64/NVME for real): objects uploaded by boto3 with each checksum
//! algorithm, single-part and multipart (composite and full-object), and without any (MD5
//! ETag). The source publishes what S3 says; downloads are verified by it, fresh and resumed;
//! a byte flipped in one part's body fails naming the algorithm and both values.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use backend_object_store::ObjectStoreSource;
use bytes::Bytes;
use common::{Fault, Faulty, MOTO, Moto, StoreFixture};
use resume_core::conformance::{self, Fixture};
use resume_core::{Checksum, Downloader, ErrorKind, RangeSource, SourceErrorKind};
use test_support::python_with;
use test_support::relay::{Action, Relay};

/// Packages moto needs to compute CRC-32C (`crc32c`) and CRC-64/NVME (`awscrt`) rather than
/// fall back to CRC-32, and boto3 to send them.
const CHECKSUM_LIBS: [&str; 2] = ["crc32c==2.9.post0", "awscrt==0.38.0"];

/// Upload parts of 64 KiB (moto is told to accept parts that small).
const UPLOAD_PART: usize = 64 << 10;
/// 3 full upload parts and a short one.
const SIZE: usize = 3 * UPLOAD_PART + 8_315;

/// Uploads with boto3: `put ALG` (single part; ALG `none` sends no checksum header at all),
/// or `multipart ALG TYPE` (64 KiB parts; TYPE COMPOSITE / FULL_OBJECT / default).
const UPLOADER: &str = r#"
import sys, boto3
from botocore.config import Config
endpoint, bucket, key, path, mode, alg, kind = sys.argv[1:8]
config = Config(request_checksum_calculation="when_required" if alg == "none" else "when_supported")
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing", config=config)
data = open(path, "rb").read()
extra = {} if alg == "none" else {"ChecksumAlgorithm": alg}
if mode == "put":
    s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)
else:
    create = dict(extra)
    if kind != "default":
        create["ChecksumType"] = kind
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    parts = []
    size = 64 * 1024
    for n, off in enumerate(range(0, len(data), size), start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n,
                           Body=data[off:off + size], **extra)
        part = {"PartNumber": n, "ETag": r["ETag"]}
        for k, v in r.items():
            if k.startswith("Checksum") and k != "ChecksumType":
                part[k] = v
        parts.append(part)
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                 MultipartUpload={"Parts": parts})
"#;

struct Uploaded {
    key: &'static str,
    content: Bytes,
    /// What the download's last line must say.
    verification: &'static str,
}

fn upload(moto: &Moto, bucket: &str, key: &str, content: &[u8], args: [&str; 3]) {
    let python = python_with(&[MOTO, CHECKSUM_LIBS[0], CHECKSUM_LIBS[1]]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body");
    std::fs::write(&path, content).unwrap();
    let out = Command::new(python)
        .arg("-c")
        .arg(UPLOADER)
        .args([&moto.endpoint, bucket, key])
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 upload of {key} ({args:?}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every kind of object the tests download, uploaded to `bucket`.
async fn upload_all(moto: &Moto, source: &ObjectStoreSource, bucket: &str) -> Vec<Uploaded> {
    let cases: [(&'static str, [&str; 3], &'static str); 11] = [
        (
            "put/crc32",
            ["put", "CRC32", "-"],
            "verified: CRC-32 full-object (S3)",
        ),
        (
            "put/crc32c",
            ["put", "CRC32C", "-"],
            "verified: CRC-32C full-object (S3)",
        ),
        (
            "put/crc64nvme",
            ["put", "CRC64NVME", "-"],
            "verified: CRC-64/NVME full-object (S3)",
        ),
        (
            "put/sha256",
            ["put", "SHA256", "-"],
            "verified: SHA-256 full-object (S3)",
        ),
        (
            "put/sha1",
            ["put", "SHA1", "-"],
            "verified: SHA-1 full-object (S3)",
        ),
        (
            "put/none",
            ["put", "none", "-"],
            "verified: MD5 full-object (S3 ETag)",
        ),
        (
            "mpu/crc32-composite",
            ["multipart", "CRC32", "COMPOSITE"],
            "verified: CRC-32 composite of 4 parts (S3)",
        ),
        (
            "mpu/crc32c-default",
            ["multipart", "CRC32C", "default"],
            "verified: CRC-32C composite of 4 parts (S3)",
        ),
        (
            "mpu/crc32-full",
            ["multipart", "CRC32", "FULL_OBJECT"],
            "verified: CRC-32 full-object (S3)",
        ),
        (
            "mpu/crc64nvme",
            ["multipart", "CRC64NVME", "FULL_OBJECT"],
            "verified: CRC-64/NVME full-object (S3)",
        ),
        (
            "mpu/sha256-composite",
            ["multipart", "SHA256", "COMPOSITE"],
            "verified: SHA-256 composite of 4 parts (S3)",
        ),
    ];
    let mut out = Vec::new();
    for (i, (key, args, verification)) in cases.into_iter().enumerate() {
        let content = conformance::content(100 + i as u8, SIZE);
        upload(moto, bucket, key, &content, args);
        out.push(Uploaded {
            key,
            content,
            verification,
        });
    }
    // Written by object_store (no checksum header): an MD5 ETag.
    let content = conformance::content(200, SIZE);
    StoreFixture(source.store().clone())
        .put("os/plain", content.clone())
        .await
        .unwrap();
    out.push(Uploaded {
        key: "os/plain",
        content,
        verification: "verified: MD5 full-object (S3 ETag)",
    });
    // A multipart upload without checksums: its ETag is not an MD5, nothing to verify with.
    let content = conformance::content(201, SIZE);
    upload(
        moto,
        bucket,
        "mpu/none",
        &content,
        ["multipart", "none", "default"],
    );
    out.push(Uploaded {
        key: "mpu/none",
        content,
        verification: "not verified: the store publishes no checksum for this object",
    });
    out
}

fn start() -> Moto {
    Moto::start_with(
        &[MOTO, CHECKSUM_LIBS[0], CHECKSUM_LIBS[1]],
        &[("S3_UPLOAD_PART_MIN_SIZE", "1024")],
    )
}

/// What each upload publishes, and that every download is verified by it (fresh, then resumed
/// after a failure partway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_checksum_s3_publishes_verifies_fresh_and_resumed_downloads() {
    let moto = start();
    moto.create_bucket("sums");
    let source = moto.source("sums");
    let objects = upload_all(&moto, &source, "sums").await;
    let scratch = tempfile::tempdir().unwrap();
    for o in &objects {
        let meta = source.stat(o.key, None).await.unwrap();
        let published: Vec<String> = meta.checksums.iter().map(Checksum::describe).collect();
        println!("{}: {published:?}", o.key);
        assert_eq!(meta.checksum_note, None, "{}", o.key);
        let dest = scratch.path().join(o.key.replace('/', "_"));
        let report = Downloader::new(source.clone())
            .part_size(50_000)
            .download(o.key, &dest)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", o.key));
        assert_eq!(std::fs::read(&dest).unwrap(), o.content, "{}", o.key);
        assert_eq!(report.verification.to_string(), o.verification, "{}", o.key);
        if o.verification.contains("CRC-32") && o.verification.contains("composite") {
            // Download parts fitted to the 64 KiB upload parts: 32 KiB (SHA composites are
            // hashed in order, with the parts asked for).
            assert_eq!(report.parts, SIZE.div_ceil(32 << 10) as u64, "{}", o.key);
        }

        // Resumed: the first run is denied after 3 reads (progress kept), the second reuses
        // those parts and is verified the same way.
        let dest = scratch
            .path()
            .join(format!("{}.resumed", o.key.replace('/', "_")));
        let failing = Faulty::new(source.clone(), Fault::DenyAfter(3));
        let err = Downloader::new(failing)
            .part_size(50_000)
            .concurrency(1)
            .download(o.key, &dest)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{}: {err}", o.key);
        let report = Downloader::new(source.clone())
            .part_size(50_000)
            .download(o.key, &dest)
            .await
            .unwrap_or_else(|e| panic!("{} resumed: {e}", o.key));
        assert_eq!(report.parts_reused, 3, "{}", o.key);
        assert_eq!(std::fs::read(&dest).unwrap(), o.content, "{}", o.key);
        assert_eq!(report.verification.to_string(), o.verification, "{}", o.key);
    }
}

/// One byte flipped in the body of one part (length intact): the download fails with an
/// integrity error naming the algorithm and both values, and DEST is never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_flipped_in_flight_fails_naming_the_algorithm_and_both_values() {
    let moto = start();
    moto.create_bucket("flips");
    let source = moto.source("flips");
    let objects = upload_all(&moto, &source, "flips").await;
    let scratch = tempfile::tempdir().unwrap();
    for o in objects
        .iter()
        .filter(|o| o.verification.starts_with("verified"))
    {
        let dest = scratch.path().join(o.key.replace('/', "_"));
        std::fs::write(&dest, b"precious").unwrap();
        let flipping = Faulty::new(source.clone(), Fault::FlipOnRead(2, 99));
        let err = Downloader::new(flipping)
            .part_size(50_000)
            .concurrency(1)
            .download(o.key, &dest)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{}: {err}", o.key);
        let msg = err.to_string();
        let meta = source.stat(o.key, None).await.unwrap();
        let expected = &meta.checksums[0];
        let algorithm = expected.algorithm.name();
        assert!(
            msg.contains(algorithm),
            "{}: {algorithm} missing from {msg}",
            o.key
        );
        assert!(
            msg.contains(&expected.hex()),
            "{}: expected value missing: {msg}",
            o.key
        );
        assert!(msg.contains("the store (S3"), "{}: {msg}", o.key);
        // The computed value is there too: two hex values of the algorithm's length.
        let hex_len = 2 * expected.algorithm.value_len();
        let values = msg
            .split(|c: char| !c.is_ascii_hexdigit())
            .filter(|w| w.len() == hex_len)
            .count();
        assert!(values >= 2, "{}: both values in {msg}", o.key);
        assert_eq!(std::fs::read(&dest).unwrap(), b"precious", "{}", o.key);
        for secret in ["testing/", "Signature="] {
            assert!(!msg.contains(secret), "{}: {msg}", o.key);
        }
    }
}

/// S3 refusing checksum mode (403, as for a KMS-encrypted object without `kms:Decrypt`):
/// the stat falls back to the plain HEAD's metadata, and the report says why nothing verified
/// the file; `require_checksum` refuses it before any byte is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mode_refused_falls_back_to_the_plain_head_and_the_report_says_so() {
    let moto = start();
    moto.create_bucket("kms");
    let content = conformance::content(7, SIZE);
    upload(&moto, "kms", "obj", &content, ["put", "CRC32C", "-"]);
    // Every request carrying `x-amz-checksum-mode` is answered 403, the others forwarded.
    let refused = Arc::new(AtomicU64::new(0));
    let count = refused.clone();
    let proxy = Relay::start(moto.addr, move |head| {
        if head.header("x-amz-checksum-mode").is_some() {
            count.fetch_add(1, Ordering::Relaxed);
            Action::forbidden()
        } else {
            Action::Forward
        }
    });
    let options = moto.options().endpoint(proxy.url());
    let (source, _) = backend_object_store::from_url("s3://kms/obj", &options).unwrap();
    let meta = source.stat("obj", None).await.unwrap();
    assert!(meta.checksums.is_empty(), "{:?}", meta.checksums);
    let note = meta.checksum_note.clone().expect("a note");
    assert!(
        note.contains("HTTP 403") && note.contains("kms:Decrypt"),
        "{note}"
    );
    assert!(refused.load(Ordering::Relaxed) >= 1);

    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("obj");
    let report = Downloader::new(source.clone())
        .download("obj", &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(
        report.verification.to_string(),
        format!("not verified: {note}")
    );

    let dest = scratch.path().join("required");
    let err = Downloader::new(source)
        .require_checksum(true)
        .download("obj", &dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.to_string().contains("kms:Decrypt"), "{err}");
    assert!(!dest.exists());
}

/// With moto checking signatures (IAM authentication on, a user with an S3 policy), the
/// checksum requests signed with the store's credentials are accepted: the checksums are
/// published and the download verified. With a wrong secret the store refuses everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_requests_carry_a_signature_s3_accepts() {
    // The first three actions (creating the user, its key and its policy) are not checked.
    let moto = Moto::start_with(
        &[MOTO, CHECKSUM_LIBS[0], CHECKSUM_LIBS[1]],
        &[
            ("S3_UPLOAD_PART_MIN_SIZE", "1024"),
            ("INITIAL_NO_AUTH_ACTION_COUNT", "3"),
        ],
    );
    let python = python_with(&[MOTO, CHECKSUM_LIBS[0], CHECKSUM_LIBS[1]]);
    let script = r#"
import sys, json, boto3
endpoint = sys.argv[1]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
iam.create_user(UserName="reader")
key = iam.create_access_key(UserName="reader")["AccessKey"]
iam.put_user_policy(UserName="reader", PolicyName="s3", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
s3.create_bucket(Bucket="signed")
data = open(sys.argv[2], "rb").read()
s3.put_object(Bucket="signed", Key="obj", Body=data, ChecksumAlgorithm="CRC32C")
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let content = conformance::content(11, SIZE);
    std::fs::write(&body, &content).unwrap();
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&moto.endpoint)
        .arg(&body)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = String::from_utf8(out.stdout).unwrap();
    let (id, secret) = keys.trim().split_once(' ').unwrap();
    let options = |secret: &str| {
        moto.options()
            .config("aws_access_key_id", id)
            .config("aws_secret_access_key", secret)
    };
    let (source, _) = backend_object_store::from_url("s3://signed/obj", &options(secret)).unwrap();
    let meta = source.stat("obj", None).await.unwrap();
    assert_eq!(meta.checksum_note, None);
    let published: Vec<String> = meta.checksums.iter().map(Checksum::describe).collect();
    assert_eq!(published, ["CRC-32C full-object (S3)"]);
    let dest = dir.path().join("obj");
    let report = Downloader::new(source)
        .download("obj", &dest)
        .await
        .unwrap();
    assert_eq!(
        report.verification.to_string(),
        "verified: CRC-32C full-object (S3)"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), content);

    // The server does check: a wrong secret is refused.
    let (wrong, _) = backend_object_store::from_url("s3://signed/obj", &options("wrong")).unwrap();
    let err = wrong.stat("obj", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Denied, "{err}");
}

/// Nothing about the credentials or the signature of the checksum requests appears in the
/// source's `Debug`, its errors or the download's errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_signatures_never_appear_in_debug_or_errors() {
    let moto = start();
    moto.create_bucket("secret");
    let content = conformance::content(9, SIZE);
    upload(
        &moto,
        "secret",
        "obj",
        &content,
        ["multipart", "CRC32", "COMPOSITE"],
    );
    let (key_id, secret) = ("AKIDSECRETKEYID7777", "SeCrEtAcCeSsKeY-9x9x9x");
    let options = moto
        .options()
        .config("aws_access_key_id", key_id)
        .config("aws_secret_access_key", secret)
        .config("aws_session_token", "SeSsIoNtOkEn-5y5y5y");
    let (source, _) = backend_object_store::from_url("s3://secret/obj", &options).unwrap();
    let mut shown = vec![format!("{source:?}"), format!("{options:?}")];
    let meta = source.stat("obj", None).await.unwrap();
    assert_eq!(meta.checksums.len(), 1, "{meta:?}");
    shown.push(format!("{meta:?}"));
    shown.push(source.stat("missing", None).await.unwrap_err().to_string());
    let scratch = tempfile::tempdir().unwrap();
    let err = Downloader::new(Faulty::new(source, Fault::FlipOnRead(0, 5)))
        .download("obj", &scratch.path().join("obj"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    shown.push(err.to_string());
    shown.push(format!("{err:?}"));
    for text in &shown {
        for needle in [
            key_id,
            secret,
            "SeSsIoNtOkEn",
            "Signature=",
            "AWS4-HMAC-SHA256",
        ] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
    }
}
