//! `gs://` sources against a real GCS server: PyPI `gcp-storage-emulator`, started by each
//! test on 127.0.0.1, behind test-support's `gcs::Shim` (GCS's download semantics the emulator
//! leaves out: `ifGenerationMatch`, `x-goog-generation`, gzip-stored objects). The source
//! stats, reads and lists through the JSON API; downloads are verified by the object's
//! CRC-32C; a byte flipped in flight names CRC-32C and both values; a transcoded body is never
//! data; the RangeSource and Lister conformance suites pass.

mod common;

use std::sync::Arc;

use backend_object_store::{ObjectStoreLister, ObjectStoreSource, StoreOptions, from_url};
use bytes::Bytes;
use common::assert_report;
use resume_core::conformance::list::{self, ListCapabilities, ListFixture};
use resume_core::conformance::{self, Capabilities, Fixture};
use resume_core::{Checksum, Downloader, ErrorKind, Lister, RangeSource, ReadConditions};
use test_support::gcs::{Emulator, Shim};

const SIZE: usize = 300_000;
const TOKEN: &str = "ya29.test-bearer-SECRET-3f9a1c";

fn crc32c(v: &[u8]) -> String {
    format!(
        "{:08x}",
        crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, v)
    )
}

fn source(endpoint: &str, url: &str) -> (ObjectStoreSource, String) {
    let options = StoreOptions::new()
        .endpoint(endpoint)
        .allow_http(true)
        .config("google_bearer_token", TOKEN);
    from_url(url, &options).unwrap()
}

struct Put<'a>(&'a Emulator);

#[async_trait::async_trait]
impl Fixture for Put<'_> {
    async fn put(&self, key: &str, content: Bytes) -> Result<(), String> {
        self.0.put(key, &content);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_range_source_and_lister_conformance_suites_pass() {
    let gcs = Emulator::start("conf");
    let shim = Shim::start(&gcs);
    let (src, _) = source(&shim.url(), "gs://conf/x");
    let scratch = tempfile::tempdir().unwrap();
    let report = conformance::run(
        Arc::new(src.clone()),
        &Put(&gcs),
        Capabilities {
            etag: true,
            crc64: false,
            overwrite: true,
        },
        "rs/",
        scratch.path(),
    )
    .await;
    assert_report("gcs", &report, &["stat_reports_the_whole_object_crc64"]);

    struct Listers {
        source: ObjectStoreSource,
        missing: ObjectStoreSource,
    }
    impl ListFixture for Listers {
        fn lister(&self, page_size: Option<usize>) -> Arc<dyn Lister> {
            let l = ObjectStoreLister::new(&self.source);
            Arc::new(match page_size {
                Some(n) => l.with_page_size(n),
                None => l,
            })
        }
        fn missing_bucket(&self) -> Option<Arc<dyn Lister>> {
            Some(Arc::new(ObjectStoreLister::new(&self.missing)))
        }
    }
    let listers = Listers {
        source: src.clone(),
        missing: source(&shim.url(), "gs://no-such-bucket/x").0,
    };
    let caps = ListCapabilities {
        file_and_prefix: true,
        trailing_slash: true,
    };
    let report = list::run(Arc::new(src), &Put(&gcs), &listers, caps, "ls/").await;
    assert_report("gcs lister", &report, &[]);
    // Every request carried the token (as a bearer token), which the report never shows.
    let seen = shim.requests();
    assert!(
        seen.iter()
            .any(|l| l == &format!("authorization: Bearer {TOKEN}"))
    );
    assert!(!format!("{report:?}").contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_verified_by_crc32c_fresh_resumed_and_flipped() {
    let gcs = Emulator::start("sums");
    let shim = Shim::start(&gcs);
    let content = conformance::content(31, SIZE);
    let generation = gcs.put("dir/obj.bin", &content);
    let (src, key) = source(&shim.url(), "gs://sums/dir/obj.bin");
    assert_eq!(key, "dir/obj.bin");

    let meta = src.stat(&key, None).await.unwrap();
    assert_eq!(meta.size, SIZE as u64);
    assert_eq!(
        meta.etag.as_deref(),
        Some(format!("gs-generation:{generation}").as_str())
    );
    let published: Vec<String> = meta.checksums.iter().map(Checksum::describe).collect();
    assert_eq!(
        published,
        ["CRC-32C full-object (GCS)", "MD5 full-object (GCS)"]
    );
    assert!(!format!("{src:?} {meta:?}").contains(TOKEN));

    // Fresh: verified by the CRC-32C, combined from the parts', and the MD5, hashed in order.
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("fresh");
    let report = Downloader::new(src.clone())
        .part_size(64 << 10)
        .download(&key, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(
        report.verification.to_string(),
        "verified: CRC-32C + MD5 full-object (GCS)"
    );
    // Every read was pinned to the generation.
    let reads: Vec<String> = shim
        .requests()
        .into_iter()
        .filter(|l| l.contains("alt=media"))
        .collect();
    assert_eq!(reads.len(), 5, "{reads:?}");
    assert!(
        reads
            .iter()
            .all(|l| l.contains(&format!("ifGenerationMatch={generation}"))),
        "{reads:?}"
    );

    // Denied partway, then resumed: verified the same way.
    let dest = scratch.path().join("resumed");
    shim.deny_after(2);
    let err = Downloader::new(src.clone())
        .part_size(64 << 10)
        .concurrency(1)
        .download(&key, &dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert!(!err.to_string().contains(TOKEN));
    shim.deny_after(u64::MAX);
    let report = Downloader::new(src.clone())
        .part_size(64 << 10)
        .download(&key, &dest)
        .await
        .unwrap();
    assert_eq!(report.parts_reused, 2);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(
        report.verification.to_string(),
        "verified: CRC-32C + MD5 full-object (GCS)"
    );

    // A byte flipped in flight: CRC-32C and both values named, DEST untouched.
    let dest = scratch.path().join("flipped");
    std::fs::write(&dest, b"precious").unwrap();
    shim.flip(true);
    let err = Downloader::new(src.clone())
        .part_size(64 << 10)
        .download(&key, &dest)
        .await
        .unwrap_err();
    shim.flip(false);
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    let mut bad = content.to_vec();
    bad[100] ^= 0x01;
    let msg = err.to_string();
    for needle in [
        "CRC-32C".to_owned(),
        "the store (GCS)".to_owned(),
        crc32c(&content),
        crc32c(&bad),
    ] {
        assert!(msg.contains(&needle), "{needle} missing from {msg}");
    }
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");

    // Replaced between the stat and a read: the read is refused (412 → Changed), never data.
    let old = src.stat(&key, None).await.unwrap();
    gcs.put(&key, b"another generation");
    let conditions = ReadConditions {
        if_match: old.etag.clone(),
        ..ReadConditions::default()
    };
    let err = src.read_range(&key, 0..10, &conditions).await.unwrap_err();
    assert_eq!(err.kind, resume_core::SourceErrorKind::Changed, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_stored_object_is_downloaded_as_stored_and_a_transcoded_body_is_refused() {
    let gcs = Emulator::start("gz");
    let shim = Shim::start(&gcs);
    // The stored bytes (what GCS's checksums describe), and what transcoding would serve.
    let stored = conformance::content(41, 150_000);
    let plain = conformance::content(42, 400_000).to_vec();
    gcs.put("page.html", &stored);
    gcs.patch("page.html", r#"{"contentEncoding": "gzip"}"#);
    let (src, key) = source(&shim.url(), "gs://gz/page.html");
    let scratch = tempfile::tempdir().unwrap();

    // Asked with Accept-Encoding: gzip, GCS serves the stored bytes: ranged, verified.
    let dest = scratch.path().join("stored");
    let report = Downloader::new(src.clone())
        .part_size(64 << 10)
        .download(&key, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), stored);
    assert_eq!(
        report.verification.to_string(),
        "verified: CRC-32C + MD5 full-object (GCS)"
    );

    // Served decompressed (transcoded) anyway: an error, never data; DEST untouched.
    shim.transcode(Some(plain));
    let dest = scratch.path().join("transcoded");
    std::fs::write(&dest, b"precious").unwrap();
    let err = Downloader::new(src.clone())
        .part_size(64 << 10)
        .download(&key, &dest)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("transcoded"), "{msg}");
    assert!(msg.contains("\"gzip\""), "{msg}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("transcoded"))
        .collect();
    assert_eq!(left, ["transcoded"], "nothing kept: {left:?}");
}
