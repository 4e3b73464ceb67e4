//! The two engine hooks a batch job uses: metadata from a listing instead of a stat
//! (`Downloader::listed`), and one connection limit shared by several downloads
//! (`Downloader::connection_limit`).

mod common;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use backend_mock::{Fault, FaultPlan, MockObject, MockSource, pseudo_random_bytes};
use common::{Fixture, KEY, quick_retry};
use futures::StreamExt;
use resume_core::{
    ConnectionLimit, Downloader, ErrorKind, ObjectMeta, OnChange, RangeRead, RangeSource,
    ReadConditions, SourceError,
};

#[tokio::test(start_paused = true)]
async fn a_listed_object_is_downloaded_without_any_stat_and_pinned_to_the_listed_etag() {
    // Without a published checksum (nothing verifies the file), as from a file:// or HTTP
    // store: the stat before the rename is skipped too, the etag pinned every read.
    let source = MockSource::new("b").with_chunk_size(4096);
    let content = pseudo_random_bytes(3, 40_000).to_vec();
    let meta = source.put(KEY, content.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    for (part_size, reads) in [(1 << 20, 1), (10_000, 4)] {
        let before = source.read_requests();
        let r = Downloader::new(source.clone())
            .no_checkpoint()
            .part_size(part_size)
            .listed(meta.clone())
            .download(KEY, &dest)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), content);
        assert_eq!(source.stat_requests(), 0, "no stat at all");
        assert_eq!(source.read_requests() - before, reads);
        assert!(
            source.log()[before as usize..]
                .iter()
                .all(|e| e.if_match == meta.etag)
        );
        assert!(!r.verification.is_verified());
    }
}

#[tokio::test(start_paused = true)]
async fn a_listed_object_without_etag_is_stat_ed_first_and_downloaded_once() {
    let f = Fixture::new(5_000, 4);
    let mut meta = f.source.meta(KEY).unwrap();
    meta.etag = None;
    meta.checksums.clear();
    let r = f
        .downloader()
        .listed(meta)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    // The listing carried neither the CRC-64 nor an etag: nothing could pin the reads, so the
    // object is stat'ed first, as a single download is; its etag pins every read and its
    // CRC-64 verifies the file. (Before, the stat before the rename saw an etag the listing
    // never had, took it for a change and downloaded the object a second time.)
    assert_eq!(f.source.stat_requests(), 1);
    assert_eq!(f.source.stat_log()[0].key, KEY);
    assert_eq!(r.restarts, 0);
    assert!(r.verification.is_verified());
}

/// Issue 12: a listed object that fits one part costs one request, with or without a listed
/// etag, from a source whose reads describe the object (S3 with checksum mode): the response
/// gives the etag the listing lacked and the checksums, so no stat is sent and the file is
/// verified. A byte flipped in that response, or a wrong published checksum, fails the
/// download as an integrity error with DEST untouched. (Before: a stat, then the read; with a
/// listed etag the file was not verified at all.)
#[tokio::test(start_paused = true)]
async fn a_one_part_listed_object_costs_one_described_read_and_is_verified_by_it() {
    let source = MockSource::new("b")
        .with_chunk_size(4096)
        .with_crc64_fn(resume_core::crc64)
        .with_described_reads(true);
    let content = pseudo_random_bytes(9, 40_000).to_vec();
    let meta = source.put(KEY, content.clone());
    let listed = |etag: Option<String>| ObjectMeta {
        etag,
        checksums: Vec::new(),
        ..meta.clone()
    };
    let downloader = |listed: ObjectMeta| {
        Downloader::new(source.clone())
            .no_checkpoint()
            .part_size(1 << 20)
            .retry(quick_retry(12))
            .listed(listed)
    };
    let dir = tempfile::tempdir().unwrap();
    for (n, etag) in [None, meta.etag.clone()].into_iter().enumerate() {
        let dest = dir.path().join(format!("out{n}.bin"));
        let before = source.read_requests();
        let r = downloader(listed(etag.clone()))
            .download(KEY, &dest)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), content);
        assert_eq!(source.stat_requests(), 0, "no stat");
        assert_eq!(source.read_requests() - before, 1, "one read");
        assert_eq!(
            source.log().last().unwrap().if_match,
            etag,
            "pinned to a listed etag"
        );
        assert_eq!(r.object.etag, meta.etag, "the etag the response described");
        assert!(r.verification.is_verified(), "{:?}", r.verification);
    }

    // A byte flipped in the one response: the integrity error, DEST untouched.
    let dest = dir.path().join("precious.bin");
    std::fs::write(&dest, b"precious").unwrap();
    source
        .set_fault_plan(FaultPlan::new().on_request(source.read_requests(), Fault::FlipByte(100)));
    let err = downloader(listed(None))
        .download(KEY, &dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");
    // A wrong published checksum: the same.
    source.set_fault_plan(FaultPlan::new());
    let wrong = source.put_object(
        KEY,
        MockObject::new(content.clone()).with_crc64(resume_core::crc64(&content) ^ 1),
    );
    let err = downloader(ObjectMeta {
        etag: None,
        checksums: Vec::new(),
        ..wrong
    })
    .download(KEY, &dest)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");
    assert_eq!(source.stat_requests(), 0, "never a stat");
}

#[tokio::test(start_paused = true)]
async fn an_object_changed_since_the_listing_restarts_from_a_fresh_stat_or_fails() {
    let f = Fixture::new(20_000, 5);
    let listed = f.source.meta(KEY).unwrap();
    let new = pseudo_random_bytes(6, 12_345).to_vec();
    f.source.put(KEY, new.clone());
    let r = f
        .downloader()
        .listed(listed.clone())
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), new, "only the current version");
    assert_eq!(r.restarts, 1);
    assert_eq!(r.object.etag, f.source.meta(KEY).unwrap().etag);
    assert!(
        f.source.stat_requests() >= 1,
        "the restart asked the source"
    );

    let dest = f.dir.path().join("fail.bin");
    let err = f
        .downloader()
        .listed(listed)
        .on_change(OnChange::Fail)
        .download(KEY, &dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Changed, "{err}");
    assert!(!dest.exists());
}

/// Counts `read_range` bodies alive at once; each body yields to the scheduler between
/// chunks, so downloads interleave on a current-thread runtime.
#[derive(Debug, Clone)]
struct Counting {
    inner: MockSource,
    live: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

struct Live(Arc<AtomicUsize>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl RangeSource for Counting {
    fn identity(&self) -> String {
        self.inner.identity()
    }
    async fn stat(&self, key: &str, version: Option<&str>) -> Result<ObjectMeta, SourceError> {
        self.inner.stat(key, version).await
    }
    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let guard = Live(self.live.clone());
        let read = match self.inner.read_range(key, range, conditions).await {
            Ok(r) => r,
            Err(e) => {
                drop(guard);
                return Err(e);
            }
        };
        let body = read
            .body
            .then(move |chunk| {
                let _alive = &guard;
                async move {
                    tokio::task::yield_now().await;
                    chunk
                }
            })
            .boxed();
        Ok(RangeRead { body, ..read })
    }
}

#[tokio::test(start_paused = true)]
async fn downloads_sharing_a_connection_limit_never_exceed_it_together() {
    let inner = MockSource::new("b").with_chunk_size(1024);
    let mut contents = Vec::new();
    for i in 0..4u64 {
        let c = pseudo_random_bytes(i, 64 * 1024).to_vec();
        inner.put(&format!("k{i}"), c.clone());
        contents.push(c);
    }
    let source = Counting {
        inner: inner.clone(),
        live: Arc::default(),
        peak: Arc::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    for (limit, expect_peak) in [(3, 3), (16, 16)] {
        source.peak.store(0, Ordering::SeqCst);
        let shared = ConnectionLimit::new(limit);
        let dl = Downloader::new(source.clone())
            .no_checkpoint()
            .retry(quick_retry(1))
            .part_size(4096)
            .concurrency(4)
            .connection_limit(shared.clone());
        let runs = (0..4).map(|i| {
            let dl = dl.clone();
            let dest = dir.path().join(format!("{limit}-{i}"));
            async move { dl.download(&format!("k{i}"), &dest).await }
        });
        for r in futures::future::join_all(runs).await {
            r.unwrap();
        }
        for (i, c) in contents.iter().enumerate() {
            assert_eq!(
                &std::fs::read(dir.path().join(format!("{limit}-{i}"))).unwrap(),
                c
            );
        }
        // 4 downloads × 4 workers want 16 connections: a limit below that caps them all
        // together, one above it lets every worker run.
        assert_eq!(
            source.peak.load(Ordering::SeqCst),
            expect_peak,
            "limit {limit}"
        );
        assert_eq!(shared.available(), limit, "every permit given back");
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_download_takes_every_permit_of_the_limit() {
    // The tail of a job: one large object left gets all the connections.
    let inner = MockSource::new("b").with_chunk_size(1024);
    let content = pseudo_random_bytes(9, 100 * 1024).to_vec();
    inner.put(KEY, content.clone());
    let source = Counting {
        inner,
        live: Arc::default(),
        peak: Arc::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    Downloader::new(source.clone())
        .no_checkpoint()
        .part_size(4096)
        .concurrency(6)
        .connection_limit(ConnectionLimit::new(6))
        .download(KEY, dir.path().join("x"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), content);
    assert_eq!(source.peak.load(Ordering::SeqCst), 6);
}

#[tokio::test(start_paused = true)]
async fn keep_modified_time_gives_dest_the_objects_time_before_the_rename() {
    let f = Fixture::new(30_000, 8);
    let meta = f.source.meta(KEY).unwrap();
    let at = meta.last_modified.unwrap();
    f.downloader()
        .part_size(8192)
        .keep_modified_time(true)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!(std::fs::metadata(&f.dest).unwrap().modified().unwrap(), at);
    // Without it, the time of the download (not the object's, which is in 2023).
    let other = f.dir.path().join("plain.bin");
    f.downloader().download(KEY, &other).await.unwrap();
    assert_ne!(std::fs::metadata(&other).unwrap().modified().unwrap(), at);
}
