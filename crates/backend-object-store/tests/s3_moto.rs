//! The S3 client against a real S3 server: moto (PyPI `moto[server]`), started by each test
//! on 127.0.0.1 with an ephemeral port, path-style, plain HTTP, fake credentials. No PyPI
//! fails the test.
//!
//! Two tests, each with its own server (so each one's server dies with it, and they run in
//! parallel): the conformance suite plus S3 specifics, and the 64 MiB end-to-end download
//! with faults and a crash.

mod common;

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_object_store::ObjectStoreSource;
use backend_object_store::object_store::ObjectStoreExt;
use backend_object_store::object_store::path::Path as StorePath;
use checkpoint::FileCheckpointStore;
use common::{Moto, StoreFixture};
use futures::StreamExt;
use resume_core::conformance::{self, Fixture};
use resume_core::{
    Downloader, Event, ObjectMeta, RangeRead, RangeSource, ReadConditions, RetryPolicy,
    SourceError, SourceErrorKind,
};
use tokio::sync::Notify;

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3_passes_the_conformance_suite_and_honours_versions() {
    let moto = Moto::start();
    moto.create_bucket("conformance");
    let source = moto.source("conformance");
    assert_eq!(
        source.identity(),
        format!("s3://conformance@{}", moto.endpoint)
    );
    common::assert_store_conforms("S3 (moto)", &source).await;
    let scratch = tempfile::tempdir().unwrap();

    // Past the end: 416 → InvalidRange.
    let key = "conformance/object with spaces+plus/ü.bin";
    let size = source.stat(key, None).await.unwrap().size;
    let err = source
        .read_range(key, size..size + 10, &ReadConditions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (SourceErrorKind::InvalidRange, Some(416)),
        "{err}"
    );
    // An http:// endpoint without allow_http is refused at once, not retried.
    let o = moto.options().allow_http(false);
    let (plain, _) = backend_object_store::from_url("s3://conformance/k", &o).unwrap();
    let err = plain.stat(key, None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Other, "{err}");
    assert!(err.to_string().contains("allow_http"), "{err}");

    // A missing bucket is NotFound too; a GET's error body names the S3 error code (a
    // HEAD's has no body).
    let nowhere = moto.source("no-such-bucket");
    let err = nowhere.stat("k", None).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (SourceErrorKind::NotFound, Some(404)),
        "{err}"
    );
    let err = nowhere
        .read_range("k", 0..1, &ReadConditions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("NoSuchBucket"), "{err}");

    // Versions: stat and reads pin the version they are given.
    moto.create_bucket("versioned");
    moto.enable_versioning("versioned");
    let source = moto.source("versioned");
    let fixture = StoreFixture(source.store().clone());
    let (old, new) = (conformance::content(7, 1000), conformance::content(8, 2000));
    fixture.put("v/obj", old.clone()).await.unwrap();
    let v1 = source.stat("v/obj", None).await.unwrap();
    let v1_id = v1
        .version_id
        .clone()
        .expect("a versioned bucket reports versions");
    fixture.put("v/obj", new.clone()).await.unwrap();
    let v2 = source.stat("v/obj", None).await.unwrap();
    assert_ne!(v2.version_id, v1.version_id);
    assert_eq!(v2.size, 2000);
    let again = source.stat("v/obj", Some(&v1_id)).await.unwrap();
    assert_eq!((again.size, &again.etag), (1000, &v1.etag));
    let pinned = ReadConditions {
        if_match: v1.etag.clone(),
        version_id: Some(v1_id.clone()),
        ..Default::default()
    };
    let read = source.read_range("v/obj", 100..300, &pinned).await.unwrap();
    assert_eq!(
        (read.range.clone(), read.total_size),
        (100..300, Some(1000))
    );
    assert_eq!(collect(read).await, old[100..300]);
    // The old etag without the version: the current object no longer matches.
    let stale = ReadConditions {
        if_match: v1.etag.clone(),
        version_id: None,
        ..Default::default()
    };
    let err = source.read_range("v/obj", 0..10, &stale).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (SourceErrorKind::Changed, Some(412)),
        "{err}"
    );
    let dest = scratch.path().join("v1.bin");
    Downloader::new(source.clone())
        .version_id(v1_id)
        .part_size(300)
        .download("v/obj", &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), old[..]);
}

async fn collect(read: RangeRead) -> Vec<u8> {
    let mut body = read.body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Wraps a real source: counts body bytes, fires `crash` once `crash_after` bytes went by,
/// and injects seeded faults — an error instead of a response, or a body cut off part-way
/// (the real HTTP body is dropped there) — on a fixed set of request numbers.
struct Instrumented {
    inner: ObjectStoreSource,
    bytes: Arc<AtomicU64>,
    crash_after: Option<u64>,
    crash: Arc<Notify>,
    seed: u64,
    requests: AtomicU64,
    injected: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumented")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// At most this many faults per run, so the engine's retries (10 consecutive) always win.
const MAX_FAULTS: usize = 6;

fn mix(seed: u64, n: u64) -> u64 {
    let mut x = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Instrumented {
    fn new(inner: ObjectStoreSource, seed: u64, crash_after: Option<u64>) -> Self {
        Self {
            inner,
            bytes: Arc::new(AtomicU64::new(0)),
            crash_after,
            crash: Arc::new(Notify::new()),
            seed,
            requests: AtomicU64::new(0),
            injected: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn fault(&self, what: String) -> bool {
        let mut injected = self.injected.lock().unwrap();
        if injected.len() >= MAX_FAULTS {
            return false;
        }
        injected.push(what);
        true
    }
}

#[async_trait::async_trait]
impl RangeSource for Instrumented {
    fn identity(&self) -> String {
        self.inner.identity()
    }

    async fn stat(&self, key: &str, version_id: Option<&str>) -> Result<ObjectMeta, SourceError> {
        self.inner.stat(key, version_id).await
    }

    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let roll = mix(self.seed, n);
        if roll.is_multiple_of(7) && self.fault(format!("request {n}: reset before the response")) {
            return Err(SourceError::transient("injected: connection reset"));
        }
        let mut read = self.inner.read_range(key, range, conditions).await?;
        let len = read.range.end - read.range.start;
        let cut_at = if roll % 7 == 1 && len > 1 && self.fault(format!("request {n}: body cut")) {
            Some((roll >> 8) % len)
        } else {
            None
        };
        let (bytes, crash, crash_after) =
            (self.bytes.clone(), self.crash.clone(), self.crash_after);
        let body = match cut_at {
            Some(cut) => truncate(read.body, cut),
            None => read.body,
        };
        read.body = body
            .map(move |chunk| {
                let chunk = chunk?;
                let total =
                    bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
                if crash_after.is_some_and(|at| total >= at) {
                    crash.notify_one();
                }
                Ok(chunk)
            })
            .boxed();
        Ok(read)
    }
}

/// The first `cut` bytes of `body`, then a transient error; the rest of the real body is
/// dropped with the stream (the HTTP connection goes with it).
fn truncate(body: resume_core::ByteStream, cut: u64) -> resume_core::ByteStream {
    futures::stream::unfold(
        (body, 0u64, false),
        move |(mut body, mut sent, finished)| async move {
            if finished {
                return None;
            }
            if sent >= cut {
                return Some((
                    Err(SourceError::transient("injected: body cut off")),
                    (body, sent, true),
                ));
            }
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if sent + chunk.len() as u64 > cut {
                        chunk = chunk.slice(..(cut - sent) as usize);
                    }
                    sent += chunk.len() as u64;
                    Some((Ok(chunk), (body, sent, false)))
                }
                Some(Err(e)) => Some((Err(e), (body, sent, true))),
                None => None,
            }
        },
    )
    .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_download_from_s3_survives_faults_and_a_crash_and_resumes() {
    const SIZE: u64 = 64 * MIB;
    const PART: u64 = 4 * MIB;
    const JOBS: usize = 4;
    let started = Instant::now();
    let moto = Moto::start();
    moto.create_bucket("e2e");
    let source = moto.source("e2e");
    let key = "big/object 64MiB.bin";
    let data = conformance::content(42, SIZE as usize);
    source
        .store()
        .put(&StorePath::parse(key).unwrap(), data.clone().into())
        .await
        .unwrap();
    let want = blake3::hash(&data);
    let setup = started.elapsed();

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.bin");
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        jitter_seed: Some(11),
        ..RetryPolicy::default()
    };
    let downloader = |src: Arc<Instrumented>, retries: Arc<AtomicU64>| {
        Downloader::from_arc(src)
            .part_size(PART)
            .concurrency(JOBS)
            .retry(retry.clone())
            .checkpoint(FileCheckpointStore::beside(&dest))
            .on_progress(move |ev| {
                if matches!(ev, Event::Retry { .. }) {
                    retries.fetch_add(1, Ordering::Relaxed);
                }
            })
    };

    // Run 1: crash (drop the download future, like a kill) after half the bytes arrived.
    let first = Arc::new(Instrumented::new(
        moto.source("e2e"),
        0x5EED_0001,
        Some(SIZE / 2),
    ));
    let crash = first.crash.clone();
    let retries1 = Arc::new(AtomicU64::new(0));
    let run1 = downloader(first.clone(), retries1.clone());
    let t1 = Instant::now();
    tokio::select! {
        r = run1.download(key, &dest) => {
            panic!("the first run finished before the crash: {r:?}")
        }
        _ = crash.notified() => {}
    }
    let run1_time = t1.elapsed();
    let run1_bytes = first.bytes.load(Ordering::Relaxed);
    assert!(!dest.exists(), "DEST appears only when complete");
    assert!(
        resume_core::with_suffix(&dest, ".rgcp").exists(),
        "the checkpoint survives the crash"
    );

    // Run 2: a fresh downloader and source, the same checkpoint beside DEST.
    let second = Arc::new(Instrumented::new(moto.source("e2e"), 0x5EED_0002, None));
    let retries2 = Arc::new(AtomicU64::new(0));
    let t2 = Instant::now();
    let report = downloader(second.clone(), retries2.clone())
        .download(key, &dest)
        .await
        .unwrap();
    let run2_time = t2.elapsed();

    let got = std::fs::read(&dest).unwrap();
    assert_eq!(got.len() as u64, SIZE);
    assert_eq!(
        blake3::hash(&got),
        want,
        "downloaded bytes differ from the object"
    );
    assert!(report.reused_bytes > 0, "nothing reused: {report:?}");
    assert_eq!(
        report.reused_bytes + report.fetched_bytes,
        SIZE,
        "{report:?}"
    );
    let refetched = run1_bytes.saturating_sub(report.reused_bytes);
    assert!(
        refetched <= JOBS as u64 * PART,
        "re-fetched {refetched} bytes, more than {JOBS} parts in flight: run 1 got {run1_bytes}, \
         run 2 reused {}",
        report.reused_bytes
    );
    let faults1 = first.injected.lock().unwrap().clone();
    let faults2 = second.injected.lock().unwrap().clone();
    let (retried1, retried2) = (
        retries1.load(Ordering::Relaxed),
        retries2.load(Ordering::Relaxed),
    );
    assert!(
        !faults1.is_empty() && !faults2.is_empty(),
        "the seeds inject faults in both runs: {faults1:?} {faults2:?}"
    );
    assert!(retried1 > 0, "run 1 retried its faults before the crash");
    assert_eq!(
        report.retries,
        faults2.len() as u64,
        "run 2 retried exactly its injected faults: {faults2:?}"
    );
    assert_eq!(retried2, report.retries);
    println!(
        "e2e: setup (moto start + 64 MiB upload) {setup:?}; run 1 {run1_time:?}, {run1_bytes} \
         bytes before the crash; run 2 {run2_time:?}, reused {} fetched {} (parts {}/{} \
         reused), re-fetched {refetched}; retries {retried1} + {retried2} for injected faults \
         {faults1:?} + {faults2:?}",
        report.reused_bytes, report.fetched_bytes, report.parts_reused, report.parts,
    );
}
