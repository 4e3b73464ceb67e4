//! Azure blobs' `Content-MD5` against Azurite: a blob uploaded in one request has one (the
//! service computes it) and downloads are verified by it, fresh and resumed; a blob made of
//! blocks has none ("not verified"); a byte flipped in flight fails naming MD5 and both values.

mod common;

use backend_object_store::object_store::path::Path as StorePath;
use backend_object_store::object_store::{ObjectStoreExt, PutPayload};
use common::{Azurite, Fault, Faulty, StoreFixture};
use md5::Digest as _;
use resume_core::conformance::{self, Fixture};
use resume_core::{Checksum, Downloader, ErrorKind, RangeSource};

const SIZE: usize = 300_000;

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blobs_content_md5_verifies_downloads_and_catches_a_flipped_byte() {
    let az = Azurite::start();
    az.create_container("sums");
    let source = az.source("sums");
    let content = conformance::content(21, SIZE);
    StoreFixture(source.store().clone())
        .put("one/put", content.clone())
        .await
        .unwrap();
    let meta = source.stat("one/put", None).await.unwrap();
    let published: Vec<String> = meta.checksums.iter().map(Checksum::describe).collect();
    assert_eq!(published, ["MD5 full-object (Azure)"]);
    assert_eq!(meta.checksums[0].value, md5::Md5::digest(&content).to_vec());

    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("put");
    let report = Downloader::new(source.clone())
        .part_size(64 << 10)
        .download("one/put", &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(
        report.verification.to_string(),
        "verified: MD5 full-object (Azure)"
    );

    // Resumed after a failure partway: verified the same way.
    let dest = scratch.path().join("resumed");
    let err = Downloader::new(Faulty::new(source.clone(), Fault::DenyAfter(2)))
        .part_size(64 << 10)
        .concurrency(1)
        .download("one/put", &dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    let report = Downloader::new(source.clone())
        .part_size(64 << 10)
        .download("one/put", &dest)
        .await
        .unwrap();
    assert_eq!(report.parts_reused, 2);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(
        report.verification.to_string(),
        "verified: MD5 full-object (Azure)"
    );

    // A byte flipped in one part's body: MD5 and both values named, DEST untouched.
    let dest = scratch.path().join("flipped");
    std::fs::write(&dest, b"precious").unwrap();
    let err = Downloader::new(Faulty::new(source.clone(), Fault::FlipOnRead(1, 500)))
        .part_size(64 << 10)
        .concurrency(1)
        .download("one/put", &dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    let mut bad = content.to_vec();
    bad[(64 << 10) + 500] ^= 0x01;
    let msg = err.to_string();
    for needle in [
        "MD5".to_owned(),
        "the store (Azure)".to_owned(),
        hex(&md5::Md5::digest(&content)),
        hex(&md5::Md5::digest(&bad)),
    ] {
        assert!(msg.contains(&needle), "{needle} missing from {msg}");
    }
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");

    // A blob put together from blocks has no Content-MD5: nothing to verify with.
    let path = StorePath::parse("blocks/obj").unwrap();
    let mut upload = source.store().put_multipart(&path).await.unwrap();
    upload
        .put_part(PutPayload::from(content.slice(..200_000)))
        .await
        .unwrap();
    upload
        .put_part(PutPayload::from(content.slice(200_000..)))
        .await
        .unwrap();
    upload.complete().await.unwrap();
    let meta = source.stat("blocks/obj", None).await.unwrap();
    assert!(meta.checksums.is_empty(), "{:?}", meta.checksums);
    let dest = scratch.path().join("blocks");
    let report = Downloader::new(source)
        .download("blocks/obj", &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(
        report.verification.to_string(),
        "not verified: the store publishes no checksum for this object"
    );
}
