//! The job against the mock bucket and its lister: many small objects and a few large ones
//! over several pages, failures, crashes (the job dropped mid-way) and reruns, with every
//! request counted in the mock's logs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use backend_mock::{MockSource, SplitMix64, pseudo_random_bytes};
use futures::StreamExt;
use resume_batch::{Job, JobError, JobEvent, PlanAction, Shard, SkipReason, SkipRule, Unmappable};
use resume_core::{
    Downloader, ErrorKind, Lister, ObjectMeta, RangeRead, RangeSource, ReadConditions, RetryPolicy,
    SourceError, SourceErrorKind, crc64,
};

const PART: u64 = 16 * 1024;

/// A bucket of `small` objects of 0–3 000 bytes and `large` objects of 5–12 parts under
/// `data/`, plus keys outside the prefix; pages of 7 keys.
fn bucket(seed: u64, small: usize, large: usize) -> (MockSource, BTreeMap<String, Vec<u8>>) {
    let src = MockSource::new("b")
        .with_chunk_size(4096)
        .with_crc64_fn(crc64)
        .with_page_size(7);
    let mut rng = SplitMix64::new(seed);
    let mut want = BTreeMap::new();
    for i in 0..small {
        let key = format!("data/d{}/s{i:04}.bin", i % 5);
        let c = pseudo_random_bytes(seed ^ i as u64, rng.below(3000) as usize).to_vec();
        src.put(&key, c.clone());
        want.insert(key, c);
    }
    for i in 0..large {
        let key = format!("data/big/l{i}.bin");
        let len = PART * (5 + rng.below(8)) + rng.below(PART);
        let c = pseudo_random_bytes(seed ^ (1000 + i as u64), len as usize).to_vec();
        src.put(&key, c.clone());
        want.insert(key, c);
    }
    src.put("other/x.bin", b"not in the prefix".to_vec());
    (src, want)
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(5),
        ..RetryPolicy::default()
    }
}

fn job(src: &impl Source, dest: &Path) -> Job {
    let lister: Arc<dyn Lister> = Arc::new(src.lister());
    let source: Arc<dyn RangeSource> = Arc::new(src.clone());
    Job::new(lister, source.clone(), "data/", dest)
        .downloader(Downloader::from_arc(source).retry(quick_retry()))
        .part_size(PART)
        .jobs(4)
}

trait Source: RangeSource + Clone + 'static {
    fn lister(&self) -> MockSource;
}
impl Source for MockSource {
    fn lister(&self) -> MockSource {
        self.clone()
    }
}

/// Every file below `dir` (relative path → bytes), the job's state directory left out.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == ".resume-get" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn expected(want: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    want.iter()
        .map(|(k, v)| (k.strip_prefix("data/").unwrap().to_owned(), v.clone()))
        .collect()
}

fn reads_per_key(src: &MockSource, from: usize) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in &src.log()[from..] {
        *m.entry(e.key.clone()).or_default() += 1;
    }
    m
}

#[tokio::test(start_paused = true)]
async fn a_prefix_becomes_an_identical_tree_with_one_get_per_small_object_and_no_stat() {
    let (src, want) = bucket(1, 60, 3);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let s = job(&src, &dest).run().await.unwrap();
    assert_eq!(tree(&dest), expected(&want));
    assert_eq!((s.listed, s.done, s.failed, s.skipped), (63, 63, 0, 0));
    assert!(s.complete);
    assert_eq!(s.bytes, want.values().map(|v| v.len() as u64).sum::<u64>());
    assert_eq!(
        src.stat_requests(),
        0,
        "size and etag come from the listing"
    );
    let reads = reads_per_key(&src, 0);
    for (k, v) in &want {
        let parts = (v.len() as u64).div_ceil(PART).max(1) as usize;
        let got = reads.get(k).copied().unwrap_or(0);
        if v.is_empty() {
            assert_eq!(got, 0, "{k}: an empty object needs no read");
        } else {
            assert_eq!(got, parts, "{k}");
        }
    }
    assert!(
        src.log().iter().all(|e| e.if_match.is_some()),
        "every GET pinned"
    );
    assert!(!reads.contains_key("other/x.bin"));
    // 63 objects over pages of 7 keys, prefix filtered by the lister: 9 or 10 requests.
    assert!(src.list_requests() >= 9 && src.list_requests() <= 10);
    // The journal and its directory are gone; no temp file or checkpoint anywhere.
    assert!(!dest.join(".resume-get").exists());
}

/// A listing without etags or checksums (s3s-fs lists none), over the mock bucket.
#[derive(Debug)]
struct NoEtags(MockSource);

#[async_trait::async_trait]
impl Lister for NoEtags {
    fn identity(&self) -> String {
        Lister::identity(&self.0)
    }
    async fn list_page(
        &self,
        prefix: &str,
        token: Option<&str>,
    ) -> Result<resume_core::ListPage, SourceError> {
        let mut page = self.0.list_page(prefix, token).await?;
        for o in &mut page.objects {
            o.meta.etag = None;
            o.meta.checksums.clear();
        }
        Ok(page)
    }
}

/// Regression: a listed object without an etag was read, then the stat before the rename saw
/// the etag the listing lacked, took it for a change and downloaded the object again (two
/// stats and two GETs per object). Now it gets one stat (its etag pins the read, its checksum
/// verifies the file) and one GET per part, from a source whose reads do not describe the
/// object (from one whose reads do, a one-part object costs its GET alone: below).
#[tokio::test(start_paused = true)]
async fn a_listing_without_etags_costs_one_stat_and_one_get_per_small_object() {
    let (src, want) = bucket(11, 30, 2);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let lister: Arc<dyn Lister> = Arc::new(NoEtags(src.clone()));
    let source: Arc<dyn RangeSource> = Arc::new(src.clone());
    let s = Job::new(lister, source.clone(), "data/", &dest)
        .downloader(Downloader::from_arc(source).retry(quick_retry()))
        .part_size(PART)
        .jobs(4)
        .run()
        .await
        .unwrap();
    assert_eq!(tree(&dest), expected(&want));
    assert_eq!((s.done, s.failed, s.skipped), (32, 0, 0));
    let mut stats: HashMap<String, usize> = HashMap::new();
    for e in src.stat_log() {
        *stats.entry(e.key).or_default() += 1;
    }
    let reads = reads_per_key(&src, 0);
    for (k, v) in &want {
        let parts = (v.len() as u64).div_ceil(PART) as usize;
        assert_eq!(stats.get(k).copied(), Some(1), "{k}: one stat");
        assert_eq!(
            reads.get(k).copied().unwrap_or(0),
            parts,
            "{k}: one GET per part"
        );
    }
    // A one-part object is read before its stat (a source whose reads do not describe the
    // object: the stat follows) and the response's etag is compared with the stat's; every
    // other GET is pinned to the stat's etag.
    let one_part = |k: &str| want[k].len() as u64 <= PART;
    assert!(
        src.log()
            .iter()
            .all(|e| e.if_match.is_some() || one_part(&e.key)),
        "every GET of a larger object pinned to the stat's etag"
    );
}

/// Issue 12: from a store whose reads describe the object (S3 with `x-amz-checksum-mode:
/// ENABLED`, as `s3s-fs` answers), the same listing without etags costs ONE request per
/// one-part object: its GET, whose response gives the etag and the checksum that verifies the
/// file (before: a stat, then the GET). Larger objects are stat'ed once, as before.
#[tokio::test(start_paused = true)]
async fn a_listing_without_etags_costs_one_get_per_one_part_object_when_reads_describe_it() {
    let (src, want) = bucket(12, 30, 2);
    let src = src.with_described_reads(true);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let lister: Arc<dyn Lister> = Arc::new(NoEtags(src.clone()));
    let source: Arc<dyn RangeSource> = Arc::new(src.clone());
    let s = Job::new(lister, source.clone(), "data/", &dest)
        .downloader(Downloader::from_arc(source).retry(quick_retry()))
        .part_size(PART)
        .jobs(4)
        .run()
        .await
        .unwrap();
    assert_eq!(tree(&dest), expected(&want));
    assert_eq!((s.done, s.failed, s.skipped), (32, 0, 0));
    let mut stats: HashMap<String, usize> = HashMap::new();
    for e in src.stat_log() {
        *stats.entry(e.key).or_default() += 1;
    }
    let reads = reads_per_key(&src, 0);
    let mut one_part = 0;
    for (k, v) in &want {
        let parts = (v.len() as u64).div_ceil(PART) as usize;
        // An empty object has no byte to read: it is stat'ed, as before.
        let (stat, gets) = match parts {
            1 => (0, 1),
            n => (1, n),
        };
        one_part += usize::from(parts == 1);
        assert_eq!(stats.get(k).copied().unwrap_or(0), stat, "{k}: stats");
        assert_eq!(reads.get(k).copied().unwrap_or(0), gets, "{k}: GETs");
    }
    assert!(
        one_part >= 25,
        "the bucket has one-part objects: {one_part}"
    );
}

#[tokio::test(start_paused = true)]
async fn rerunning_a_completed_job_sends_no_object_request() {
    let (src, want) = bucket(2, 40, 2);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    job(&src, &dest).run().await.unwrap();
    let reads = src.read_requests();
    let s = job(&src, &dest).run().await.unwrap();
    assert_eq!(src.read_requests(), reads, "no GET");
    assert_eq!(src.stat_requests(), 0, "no HEAD");
    assert_eq!((s.done, s.up_to_date), (0, 42));
    assert_eq!(tree(&dest), expected(&want));
    // An object rewritten since (same size, new etag and time) is fetched again, alone.
    let key = "data/d1/s0001.bin";
    let new = vec![7u8; want[key].len()];
    src.put(key, new.clone());
    let s = job(&src, &dest).run().await.unwrap();
    assert_eq!((s.done, s.up_to_date), (1, 41));
    assert_eq!(std::fs::read(dest.join("d1/s0001.bin")).unwrap(), new);
    assert_eq!(reads_per_key(&src, reads as usize).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn skip_rules_size_only_update_and_overwrite() {
    let (src, want) = bucket(3, 10, 0);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    std::fs::create_dir_all(dest.join("d0")).unwrap();
    // A local file of the right size but other bytes, written "now" (newer than the object).
    let key = "data/d0/s0000.bin";
    std::fs::write(dest.join("d0/s0000.bin"), vec![0u8; want[key].len()]).unwrap();
    let before = src.read_requests();
    let s = job(&src, &dest)
        .skip_rule(SkipRule::SizeOnly)
        .run()
        .await
        .unwrap();
    assert_eq!((s.done, s.up_to_date), (9, 1));
    assert!(!reads_per_key(&src, before as usize).contains_key(key));
    let s = job(&src, &dest)
        .skip_rule(SkipRule::Update)
        .run()
        .await
        .unwrap();
    // Files the job wrote carry the object's time; the hand-written one is newer.
    assert_eq!((s.done, s.up_to_date), (0, 10));
    let s = job(&src, &dest)
        .skip_rule(SkipRule::Default)
        .run()
        .await
        .unwrap();
    assert_eq!((s.done, s.up_to_date), (1, 9), "the time tells it apart");
    assert_eq!(tree(&dest), expected(&want));
    let before = src.read_requests();
    let s = job(&src, &dest)
        .skip_rule(SkipRule::Overwrite)
        .run()
        .await
        .unwrap();
    assert_eq!(s.done, 10);
    assert_eq!(reads_per_key(&src, before as usize).len(), 10);
}

/// Runs the job until the bucket has served `bytes` bytes, then drops it like a crash.
async fn crash_after(job: Job, src: &MockSource, bytes: u64) {
    let trigger = src.crash_trigger_after_bytes(src.bytes_served() + bytes);
    tokio::select! {
        r = job.run() => panic!("finished before the crash point: {r:?}"),
        _ = trigger.fired() => {}
    }
    drop(trigger);
    // Let the runtime drop the aborted download tasks (as a dead process would have).
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_killed_at_seeded_moments_resumes_without_requesting_any_done_object() {
    for seed in 0..10u64 {
        let (src, want) = bucket(10 + seed, 80, 3);
        let total: u64 = want.values().map(|v| v.len() as u64).sum();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let mut rng = SplitMix64::new(seed);
        // Two crashes (20 seeded kill points over the seeds), then a run to the end.
        for _ in 0..2 {
            let at = 1 + rng.below(total / 2);
            crash_after(job(&src, &dest), &src, at).await;
        }
        // What is complete on disk now must not be asked for again.
        let exp = expected(&want);
        let done: HashSet<String> = tree(&dest)
            .into_iter()
            .filter(|(k, v)| exp.get(k) == Some(v))
            .map(|(k, _)| format!("data/{k}"))
            .collect();
        let from = src.read_requests() as usize;
        let s = job(&src, &dest).run().await.unwrap();
        assert!(s.complete, "seed {seed}: {s:?}");
        assert_eq!(tree(&dest), exp, "seed {seed}: byte-identical tree");
        let again: Vec<_> = reads_per_key(&src, from)
            .into_keys()
            .filter(|k| done.contains(k))
            .collect();
        assert!(
            again.is_empty(),
            "seed {seed}: done objects requested again: {again:?}"
        );
        assert_eq!(src.stat_requests(), 0);
        assert!(!dest.join(".resume-get").exists(), "seed {seed}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_large_object_interrupted_resumes_from_its_part_checkpoint() {
    let (src, want) = bucket(5, 0, 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let len = want["data/big/l0.bin"].len() as u64;
    crash_after(job(&src, &dest).jobs(1), &src, len / 2).await;
    let served = src.bytes_served();
    let s = job(&src, &dest).jobs(1).run().await.unwrap();
    assert_eq!(tree(&dest), expected(&want));
    // Only what was in flight (at most one part with one connection) is fetched twice.
    assert!(
        s.fetched_bytes <= len - served + PART,
        "fetched {} of {len} after {served} served",
        s.fetched_bytes
    );
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_left_beside_a_finished_object_is_removed_without_a_request() {
    // The state of a run killed after the rename and before the checkpoint's deletion: the
    // journal says started (not done), the file is complete, its checkpoint still there.
    let (src, want) = bucket(17, 0, 1);
    let key = "data/big/l0.bin";
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let len = want[key].len() as u64;
    crash_after(job(&src, &dest).jobs(1), &src, len / 3).await;
    let file = dest.join("big/l0.bin");
    let cp = dest.join("big/l0.bin.rgcp");
    let saved = dir.path().join("saved-checkpoint");
    let parts = len.div_ceil(PART);
    let (cp2, saved2) = (cp.clone(), saved.clone());
    Downloader::new(src.clone())
        .listed(src.meta(key).unwrap())
        .part_size(PART)
        .keep_modified_time(true)
        .on_progress(move |e| {
            // The last part is recorded: the checkpoint is complete, the rename comes next.
            if let resume_core::Event::PartDone { part, .. } = e
                && *part + 1 == parts
            {
                std::fs::copy(&cp2, &saved2).unwrap();
            }
        })
        .download(key, &file)
        .await
        .unwrap();
    assert!(!cp.exists());
    std::fs::rename(&saved, &cp).unwrap();
    let reads = src.read_requests();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let s = job(&src, &dest)
        .jobs(1)
        .on_event(move |e| ev.lock().unwrap().push(e.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!(src.read_requests(), reads, "no request");
    assert_eq!(s.fetched_bytes, 0);
    assert!(!cp.exists(), "the leftover checkpoint is removed");
    // The events say what happened: nothing started, the object found already complete.
    let events = events.lock().unwrap();
    assert!(
        !events.iter().any(|e| matches!(e, JobEvent::Started { .. })),
        "no object_started for an object nothing is fetched for: {events:?}"
    );
    let why: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Skipped { key: k, reason, .. } if k == key && reason.is_up_to_date() => {
                Some(reason.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(why.len(), 1, "{events:?}");
    assert!(why[0].contains("already complete"), "{}", why[0]);
    assert_eq!((s.done, s.up_to_date), (0, 1));
    assert_eq!(tree(&dest), expected(&want));
    assert!(s.complete);
}

/// The mock with per-key behaviour on reads: fail some keys, delete some on first read, and
/// count bodies alive at once.
#[derive(Debug, Clone)]
struct Hooked {
    inner: MockSource,
    fail: Arc<Mutex<HashMap<String, SourceErrorKind>>>,
    delete: Arc<Mutex<HashSet<String>>>,
    live: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Hooked {
    fn new(inner: MockSource) -> Self {
        Self {
            inner,
            fail: Arc::default(),
            delete: Arc::default(),
            live: Arc::default(),
            peak: Arc::default(),
        }
    }

    /// Every read of these keys fails with `kind` until the test says otherwise.
    fn fail_keys(&self, keys: &[&str], kind: SourceErrorKind) {
        let mut fail = self.fail.lock().unwrap();
        for k in keys {
            fail.insert((*k).to_owned(), kind);
        }
    }
}

impl Source for Hooked {
    fn lister(&self) -> MockSource {
        self.inner.clone()
    }
}

struct Live(Arc<AtomicUsize>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl RangeSource for Hooked {
    fn identity(&self) -> String {
        RangeSource::identity(&self.inner)
    }
    async fn stat(&self, key: &str, v: Option<&str>) -> Result<ObjectMeta, SourceError> {
        self.inner.stat(key, v).await
    }
    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        c: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        if let Some(&kind) = self.fail.lock().unwrap().get(key) {
            return Err(SourceError::new(kind, format!("injected for {key}")).with_status(403));
        }
        if self.delete.lock().unwrap().remove(key) {
            self.inner.remove(key);
        }
        let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let guard = Live(self.live.clone());
        let read = self
            .inner
            .read_range(key, range, c)
            .await
            .inspect_err(|_| {
                let _ = &guard;
            })?;
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
async fn failures_are_per_object_written_as_json_lines_and_the_rerun_fetches_only_them() {
    let (inner, want) = bucket(6, 30, 1);
    let src = Hooked::new(inner.clone());
    let bad = ["data/d2/s0002.bin", "data/big/l0.bin"];
    src.fail_keys(&bad, SourceErrorKind::Denied);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let s = job(&src, &dest)
        .on_event(move |e| ev.lock().unwrap().push(e.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!((s.done, s.failed), (29, 2));
    assert!(!s.complete);
    let file = s.failures_file.clone().unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["data/big/l0.bin", "data/d2/s0002.bin"]);
    assert!(
        lines
            .iter()
            .all(|l| l["kind"] == "Denied" && l["error"].as_str().unwrap().contains("injected"))
    );
    let failed_events = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e,
                JobEvent::Failed {
                    kind: ErrorKind::Denied,
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed_events, 2);
    // The journal stays; fixed, the rerun asks only for the two that failed.
    src.fail.lock().unwrap().clear();
    let from = inner.read_requests() as usize;
    let s = job(&src, &dest).run().await.unwrap();
    // Their pages were settled all the same: the rerun lists nothing again and retries the
    // two by key.
    assert_eq!((s.done, s.up_to_date, s.failed), (2, 0, 0));
    let mut asked: Vec<String> = reads_per_key(&inner, from).into_keys().collect();
    asked.sort();
    assert_eq!(
        asked,
        bad.iter().rev().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(tree(&dest), expected(&want));
    assert!(!file.exists(), "no failures this time");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_stops_at_the_first_failure() {
    let (inner, _) = bucket(7, 200, 0);
    let src = Hooked::new(inner.clone());
    src.fail_keys(&["data/d0/s0005.bin"], SourceErrorKind::Denied);
    let dir = tempfile::tempdir().unwrap();
    let s = job(&src, &dir.path().join("out"))
        .fail_fast(true)
        .run()
        .await
        .unwrap();
    assert_eq!(s.failed, 1);
    assert!(!s.complete);
    assert!(s.done < 199, "stopped early: {s:?}");
}

#[tokio::test(start_paused = true)]
async fn an_object_deleted_after_listing_is_skipped_not_failed() {
    let (inner, _) = bucket(8, 12, 0);
    let src = Hooked::new(inner.clone());
    src.delete
        .lock()
        .unwrap()
        .insert("data/d3/s0003.bin".into());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let s = job(&src, &dest)
        .on_event(move |e| ev.lock().unwrap().push(e.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!((s.done, s.skipped, s.failed), (11, 1, 0));
    assert!(s.complete);
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        JobEvent::Skipped { key, reason: SkipReason::Deleted, .. } if key == "data/d3/s0003.bin"
    )));
    assert!(!dest.join("d3/s0003.bin").exists());
}

#[tokio::test(start_paused = true)]
async fn the_connection_cap_holds_across_small_and_large_objects() {
    let (inner, want) = bucket(9, 40, 3);
    let src = Hooked::new(inner);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    job(&src, &dest).jobs(3).run().await.unwrap();
    assert_eq!(tree(&dest), expected(&want));
    assert_eq!(src.peak.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn hostile_keys_are_skipped_with_reasons_and_nothing_is_written_outside_dest() {
    let src = MockSource::new("b").with_crc64_fn(crc64).with_page_size(3);
    let keys = [
        "data/../escape",
        "data/a/../../escape2",
        "data//abs",
        "data/x//y",
        "data/folder/",
        "data/t.rgpart",
        "data/.resume-get/j",
        "data/nul\0byte",
        "data/clash",
        "data/clash/inner",
        "data/link/through",
        "data/ok\\..\\name",
        "data/fine.txt",
    ];
    for k in keys {
        src.put(k, k.as_bytes().to_vec());
    }
    let long = format!("data/{}", "n".repeat(300));
    src.put(&long, b"long".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("link")).unwrap();
    let reasons = Arc::new(Mutex::new(BTreeMap::new()));
    let r = reasons.clone();
    let s = job(&src, &dest)
        .on_event(move |e| {
            if let JobEvent::Skipped { key, reason, .. } = e {
                r.lock().unwrap().insert(key.clone(), reason.clone());
            }
        })
        .run()
        .await
        .unwrap();
    let reasons = reasons.lock().unwrap().clone();
    let un = |k: &str| match &reasons[k] {
        SkipReason::Unmappable(u) => u.clone(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(un("data/../escape"), Unmappable::DotSegment);
    assert_eq!(un("data/a/../../escape2"), Unmappable::DotSegment);
    assert_eq!(un("data//abs"), Unmappable::EmptySegment);
    assert_eq!(un("data/x//y"), Unmappable::EmptySegment);
    assert_eq!(un("data/folder/"), Unmappable::FolderMarker);
    assert!(matches!(un("data/t.rgpart"), Unmappable::Reserved(_)));
    assert!(matches!(un("data/.resume-get/j"), Unmappable::Reserved(_)));
    assert_eq!(un("data/nul\0byte"), Unmappable::ForbiddenCharacter('\0'));
    assert!(matches!(
        un(&long),
        Unmappable::NameTooLong { bytes: 300, .. }
    ));
    // `clash` (a file) is listed before `clash/inner`, which then has no directory to go in.
    assert!(
        matches!(&reasons["data/clash/inner"], SkipReason::Clash(w) if w.contains("is a file")),
        "{reasons:?}"
    );
    assert!(
        matches!(&reasons["data/link/through"], SkipReason::Clash(w) if w.contains("symbolic link"))
    );
    assert_eq!(s.done, 3, "{reasons:?}");
    assert_eq!(s.skipped, 11);
    assert_eq!(std::fs::read(dest.join("clash")).unwrap(), b"data/clash");
    assert_eq!(
        std::fs::read(dest.join("ok\\..\\name")).unwrap(),
        b"data/ok\\..\\name"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing outside DEST"
    );
    assert!(!dir.path().join("escape").exists() && !dir.path().join("escape2").exists());
    assert!(s.complete, "skips are not failures");
}

#[tokio::test(start_paused = true)]
async fn keys_differing_only_in_case_on_a_case_insensitive_destination() {
    let src = MockSource::new("b").with_crc64_fn(crc64);
    src.put("data/A.txt", b"upper".to_vec());
    src.put("data/a.txt", b"lower".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let s = job(&src, &dest)
        .case_insensitive(Some(true))
        .run()
        .await
        .unwrap();
    // Listed in key order, `A.txt` first; `a.txt` would replace it there: skipped.
    assert_eq!((s.done, s.skipped), (1, 1));
    assert_eq!(std::fs::read(dest.join("A.txt")).unwrap(), b"upper");
    assert!(!dest.join("a.txt").exists());
}

#[tokio::test(start_paused = true)]
async fn a_listing_failure_stops_the_job_and_the_rerun_resumes_it() {
    let (src, want) = bucket(11, 50, 0);
    src.fail_list_request(3, SourceErrorKind::Denied);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let err = job(&src, &dest).run().await.unwrap_err();
    let JobError::Listing {
        listed, summary, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*listed, 21, "three pages of 7");
    assert_eq!(summary.done, 21, "what was listed was downloaded");
    assert!(
        err.to_string().contains("run the same command again"),
        "{err}"
    );
    let from = src.read_requests() as usize;
    let lists = src.list_log().len();
    let s = job(&src, &dest).run().await.unwrap();
    // The three pages listed were settled: the rerun continues the listing after them, from
    // the token the journal kept, and neither lists nor looks at them again.
    assert_eq!((s.done, s.up_to_date, s.earlier, s.listed), (29, 0, 21, 50));
    let rerun = &src.list_log()[lists..];
    assert!(rerun[0].token.is_some(), "{rerun:?}");
    assert_eq!(
        rerun[0].token,
        src.list_log()[3].token,
        "where the failed request was"
    );
    assert_eq!(rerun.len(), 5, "pages 4 to 8 of 7 keys: {rerun:?}");
    assert_eq!(reads_per_key(&src, from).len(), 29);
    assert_eq!(tree(&dest), expected(&want));
}

#[tokio::test(start_paused = true)]
async fn transient_listing_failures_are_retried() {
    let (src, want) = bucket(12, 20, 0);
    src.fail_list_request(1, SourceErrorKind::Transient);
    src.fail_list_request(2, SourceErrorKind::Transient);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let s = job(&src, &dest).run().await.unwrap();
    assert!(s.complete);
    assert_eq!(tree(&dest), expected(&want));
}

#[tokio::test(start_paused = true)]
async fn include_exclude_and_shards_select_keys() {
    let (src, want) = bucket(13, 50, 0);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("inc");
    let s = job(&src, &dest)
        .include("d1/*")
        .unwrap()
        .include("d2/*")
        .unwrap()
        .exclude("*5.bin")
        .unwrap()
        .run()
        .await
        .unwrap();
    let got: Vec<String> = tree(&dest).into_keys().collect();
    let exp: Vec<String> = expected(&want)
        .into_keys()
        .filter(|k| (k.starts_with("d1/") || k.starts_with("d2/")) && !k.ends_with("5.bin"))
        .collect();
    assert_eq!(got, exp);
    assert_eq!(s.excluded, 50 - exp.len() as u64);
    // Four shards into four directories cover every key exactly once.
    let mut union = BTreeMap::new();
    for k in 0..4 {
        let d = dir.path().join(format!("shard{k}"));
        job(&src, &d)
            .shard(Shard::new(k, 4).unwrap())
            .run()
            .await
            .unwrap();
        for (name, bytes) in tree(&d) {
            assert!(union.insert(name, bytes).is_none(), "a key in two shards");
        }
    }
    assert_eq!(union, expected(&want));
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_plans_every_object_and_writes_nothing() {
    let (src, want) = bucket(14, 15, 1);
    src.put("data/../bad", b"x".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let plan = Arc::new(Mutex::new(Vec::new()));
    let p = plan.clone();
    let s = job(&src, &dest)
        .dry_run(true)
        .on_event(move |e| {
            if let JobEvent::Planned {
                key, action, path, ..
            } = e
            {
                p.lock()
                    .unwrap()
                    .push((key.clone(), action.clone(), path.clone()));
            }
        })
        .run()
        .await
        .unwrap();
    assert!(!dest.exists(), "nothing created");
    assert_eq!(src.read_requests(), 0);
    let plan = plan.lock().unwrap().clone();
    assert_eq!(plan.len(), want.len() + 1);
    let downloads = plan
        .iter()
        .filter(|(_, a, _)| *a == PlanAction::Download)
        .count();
    assert_eq!(downloads, want.len());
    assert!(plan.iter().any(|(k, a, _)| k == "data/../bad"
        && matches!(
            a,
            PlanAction::Skip(SkipReason::Unmappable(Unmappable::DotSegment))
        )));
    let (_, _, path) = plan
        .iter()
        .find(|(k, _, _)| k == "data/d0/s0000.bin")
        .unwrap();
    assert_eq!(path.as_deref(), Some(dest.join("d0/s0000.bin").as_path()));
    assert_eq!(s.done, want.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn a_second_job_into_the_same_dest_is_refused_while_the_first_runs() {
    let (src, _) = bucket(15, 30, 0);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let trigger = src.crash_trigger_after_bytes(100);
    let first = job(&src, &dest).run();
    tokio::pin!(first);
    tokio::select! {
        r = &mut first => panic!("{r:?}"),
        _ = trigger.fired() => {}
    }
    // The first job is alive (frozen at the trigger), holding its journal.
    let err = job(&src, &dest).run().await.unwrap_err();
    assert!(matches!(err, JobError::Locked { .. }), "{err}");
    drop(trigger);
    first.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn another_job_into_the_same_dest_leaves_an_interrupted_jobs_journal_alone() {
    let (src, want) = bucket(16, 20, 0);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    crash_after(job(&src, &dest), &src, 5_000).await;
    let journals = |d: &Path| std::fs::read_dir(d.join(".resume-get")).unwrap().count();
    assert_eq!(journals(&dest), 1);
    let lister: Arc<dyn Lister> = Arc::new(src.clone());
    let source: Arc<dyn RangeSource> = Arc::new(src.clone());
    let s = Job::new(lister, source, "other/", &dest)
        .run()
        .await
        .unwrap();
    assert_eq!(s.done, 1);
    assert_eq!(
        journals(&dest),
        1,
        "the other job's is gone, the first one's kept"
    );
    // The interrupted job resumes: its journal still claims the temp files it left.
    let s = job(&src, &dest).run().await.unwrap();
    assert!(s.complete, "{s:?}");
    let mut exp = expected(&want);
    exp.insert("x.bin".into(), b"not in the prefix".to_vec());
    assert_eq!(tree(&dest), exp);
    assert!(!dest.join(".resume-get").exists());
}

/// Issue 17.2 in the batch path: keys named like the engine's temp and checkpoint files, or
/// the job's own state, are refused with a reason; files a user left with those names beside
/// an object's path are never overwritten or deleted (the object fails, naming the file,
/// before any request, run after run), and the job resumes normally once they are moved.
#[tokio::test(start_paused = true)]
async fn files_named_like_temp_checkpoint_or_journal_files_are_never_overwritten_or_deleted() {
    let src = MockSource::new("b")
        .with_crc64_fn(crc64)
        .with_chunk_size(4096)
        .with_page_size(3);
    let big = pseudo_random_bytes(5, (PART * 6 + 17) as usize).to_vec();
    src.put("data/big", big.clone());
    for k in [
        "data/x",
        "data/x.rgpart",
        "data/x.rgcp",
        "data/y",
        "data/.resume-get/job-0.rgjob",
    ] {
        src.put(k, k.as_bytes().to_vec());
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    std::fs::create_dir_all(&dest).unwrap();
    // A user's files that happen to have the names the engine would use.
    let foreign = [
        (dest.join("y.rgpart"), b"a user's y.rgpart".to_vec()),
        (dest.join("big.rgcp"), b"a user's big.rgcp".to_vec()),
    ];
    for (p, bytes) in &foreign {
        std::fs::write(p, bytes).unwrap();
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let run = |events: Arc<Mutex<Vec<JobEvent>>>| {
        job(&src, &dest)
            .part_size(PART)
            .on_event(move |e| events.lock().unwrap().push(e.clone()))
            .run()
    };
    for attempt in 0..2 {
        events.lock().unwrap().clear();
        let from = src.log().len();
        let s = run(events.clone()).await.unwrap();
        // The rerun retries the two failed objects by key: the pages (and their unmappable
        // keys) were settled by the first run.
        let first = u64::from(attempt == 0);
        assert_eq!((s.done, s.failed, s.skipped), (first, 2, 3 * first));
        let ev = events.lock().unwrap().clone();
        let reserved: HashSet<String> = ev
            .iter()
            .filter_map(|e| match e {
                JobEvent::Skipped {
                    key,
                    reason: SkipReason::Unmappable(Unmappable::Reserved(_)),
                    ..
                } => Some(key.clone()),
                _ => None,
            })
            .collect();
        let want: HashSet<String> = [
            "data/x.rgpart",
            "data/x.rgcp",
            "data/.resume-get/job-0.rgjob",
        ]
        .map(String::from)
        .into();
        let want = if attempt == 0 { want } else { HashSet::new() };
        assert_eq!(reserved, want, "attempt {attempt}");
        for (key, file) in [("data/y", "y.rgpart"), ("data/big", "big.rgcp")] {
            let failed = ev.iter().find_map(|e| match e {
                JobEvent::Failed {
                    key: k,
                    error,
                    kind,
                    ..
                } if k == key => Some((*kind, error.clone())),
                _ => None,
            });
            let (kind, error) = failed.unwrap_or_else(|| panic!("{key} did not fail: {ev:?}"));
            assert_eq!(kind, ErrorKind::LocalIo, "{error}");
            assert!(error.contains(file), "{key}: {error}");
        }
        // Refused before any request.
        let reads = reads_per_key(&src, from);
        assert!(
            !reads.contains_key("data/y") && !reads.contains_key("data/big"),
            "{reads:?}"
        );
        for (p, bytes) in &foreign {
            assert_eq!(&std::fs::read(p).unwrap(), bytes, "{}", p.display());
        }
        assert_eq!(std::fs::read(dest.join("x")).unwrap(), b"data/x");
    }
    // Once the user moves them away, the rerun finishes the job.
    for (p, _) in &foreign {
        std::fs::remove_file(p).unwrap();
    }
    let s = run(events.clone()).await.unwrap();
    assert_eq!((s.done, s.failed), (2, 0));
    assert!(s.complete);
    assert_eq!(std::fs::read(dest.join("big")).unwrap(), big);
    assert_eq!(std::fs::read(dest.join("y")).unwrap(), b"data/y");
    assert!(!dest.join(".resume-get").exists());
}

/// `rate_limit` caps the whole job, not each object: on tokio's paused clock (virtual time,
/// no wall-clock assertion), 16 objects of 48 KiB fetched 4 at a time at 64 KiB/s take at
/// least 768 KiB / 64 KiB/s ≈ 12 s of virtual time; a limit per object would let four
/// objects run at 64 KiB/s each and finish in about a quarter of that.
#[tokio::test(start_paused = true)]
async fn the_rate_limit_caps_the_whole_job_not_each_object() {
    let src = MockSource::new("b")
        .with_crc64_fn(crc64)
        .with_chunk_size(4096)
        .with_page_size(100);
    let size = 48 * 1024u64;
    for i in 0..16 {
        src.put(
            &format!("data/o{i:02}"),
            pseudo_random_bytes(i, size as usize).to_vec(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let rate = 64 * 1024u64;
    let started = tokio::time::Instant::now();
    let s = job(&src, &dest_of(&dir))
        .part_size(size)
        .jobs(4)
        .rate_limit(Some(rate))
        .run()
        .await
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(s.done, 16);
    let total = (16 * size) as f64;
    // The bucket starts empty and holds at most a twentieth of a second of traffic.
    let floor = (total - rate as f64 / 20.0) / rate as f64;
    assert!(
        elapsed >= floor,
        "{total} bytes in {elapsed:.2} s of virtual time: more than {rate} bytes/s"
    );
    // And the limit is not stricter than asked (generous bound: the job's own bookkeeping).
    assert!(
        elapsed <= floor * 1.5 + 1.0,
        "{elapsed:.2} s for a {floor:.2} s floor"
    );
}

fn dest_of(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("out")
}

/// `--checksum`: a same-size local file is compared by CRC (the mock's listing carries the
/// CRC-64/XZ it publishes: no stat); a file of another size is downloaded without reading it;
/// a same-size file with other bytes is downloaded; the reason names what was compared.
#[tokio::test(start_paused = true)]
async fn the_checksum_rule_compares_crcs_cheapest_first() {
    let (src, want) = bucket(21, 12, 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    job(&src, &dest).part_size(PART).run().await.unwrap();
    let files: Vec<&String> = want.keys().filter(|k| !want[*k].is_empty()).collect();
    let local = |k: &str| dest.join(k.strip_prefix("data/").unwrap());
    // Same size, other bytes (and a fresh time, which the checksum rule ignores).
    let changed = files[0].clone();
    let mut bytes = want[&changed].clone();
    bytes[0] ^= 0xff;
    std::fs::write(local(&changed), &bytes).unwrap();
    // Another size.
    let shorter = files[1].clone();
    std::fs::write(local(&shorter), b"short").unwrap();
    let stats = src.stat_requests();
    let from = src.log().len();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let r = reasons.clone();
    let s = job(&src, &dest)
        .part_size(PART)
        .skip_rule(SkipRule::Checksum)
        .on_event(move |e| {
            if let JobEvent::Skipped { reason, .. } = e {
                r.lock().unwrap().push(reason.to_string());
            }
        })
        .run()
        .await
        .unwrap();
    assert_eq!(s.done, 2);
    assert_eq!(s.up_to_date as usize, want.len() - 2);
    let reads = reads_per_key(&src, from);
    assert_eq!(
        reads.keys().cloned().collect::<HashSet<_>>(),
        HashSet::from([changed.clone(), shorter.clone()])
    );
    // The mock's listing carries the CRC-64 it publishes: no stat at all.
    assert_eq!(src.stat_requests() - stats, 0);
    let reasons = reasons.lock().unwrap();
    assert_eq!(reasons.len(), want.len() - 2);
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("same size and CRC-64/XZ") && r.contains("from the listing")),
        "{reasons:?}"
    );
    assert_eq!(tree(&dest), expected(&want));
}

/// `--files-from` with keys: each entry stat'ed once (a list has no metadata), downloaded;
/// a rerun of an interrupted job asks nothing of what its journal records done; an entry
/// deleted from the store is skipped.
#[tokio::test(start_paused = true)]
async fn a_list_of_keys_is_a_resumable_job_with_one_stat_per_entry() {
    let (src, want) = bucket(31, 30, 1);
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("keys.txt");
    let mut text = String::from("# the objects to fetch\n\n");
    for k in want.keys() {
        text.push_str(k.strip_prefix("data/").unwrap());
        text.push('\n');
    }
    text.push_str("gone.bin\n");
    std::fs::write(&list, &text).unwrap();
    let dest = dir.path().join("out");
    let files_job = || {
        let lister = resume_batch::FilesFrom::new(
            &list,
            resume_batch::EntryMode::Keys {
                prefix: "data/".into(),
            },
            &RangeSource::identity(&src),
        )
        .unwrap();
        let note = lister.note().to_owned();
        let source: Arc<dyn RangeSource> = Arc::new(src.clone());
        Job::new(Arc::new(lister), source.clone(), "data/", &dest)
            .downloader(Downloader::from_arc(source).retry(quick_retry()))
            .part_size(PART)
            .jobs(4)
            .stat_each(true)
            .identity_note(note)
    };
    // Interrupted partway (the job dropped, like a crash).
    let total: u64 = want.values().map(|v| v.len() as u64).sum();
    crash_after(files_job(), &src, total * 3 / 4).await;
    let complete: Vec<String> = want
        .iter()
        .filter(|(k, v)| {
            std::fs::read(dest.join(k.strip_prefix("data/").unwrap()))
                .ok()
                .as_ref()
                == Some(*v)
        })
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        !complete.is_empty() && complete.len() < want.len(),
        "{} of {} complete at the crash",
        complete.len(),
        want.len()
    );
    let (stats, from) = (src.stat_requests(), src.log().len());
    let s = files_job().run().await.unwrap();
    assert_eq!(s.skipped, 1, "gone.bin: deleted");
    assert_eq!(s.done + s.up_to_date + s.earlier, want.len() as u64);
    let reads = reads_per_key(&src, from);
    for k in &complete {
        assert!(!reads.contains_key(k), "{k} requested again");
    }
    // One stat per entry not recorded done: never more than the entries left.
    assert!(src.stat_requests() - stats <= (want.len() + 1 - complete.len()) as u64 + 8);
    assert_eq!(tree(&dest), expected(&want));
    // The job completed (its journal is gone): each file's own record says it is its entry's
    // object, unchanged since, so the rerun asks nothing of it (only of gone.bin, which has no
    // file).
    assert!(s.complete && !dest.join(".resume-get").exists());
    let (stats, reads) = (src.stat_requests(), src.read_requests());
    let s = files_job().run().await.unwrap();
    assert_eq!((s.up_to_date, s.skipped), (want.len() as u64, 1));
    assert_eq!(src.stat_requests() - stats, 1, "only gone.bin is stat'ed");
    assert_eq!(src.read_requests(), reads);
}

#[tokio::test(start_paused = true)]
async fn a_completed_jobs_rerun_skips_by_the_etag_recorded_with_each_file() {
    let (src, want) = bucket(47, 30, 2);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    assert!(job(&src, &dest).run().await.unwrap().complete);
    let one = dest.join("d1/s0001.bin");
    let rec = resume_core::recorded::recorded_object(&one)
        .expect("the finished file records its object (a file system with user xattrs)");
    assert_eq!(rec.etag, src.meta("data/d1/s0001.bin").unwrap().etag);
    assert_eq!(rec.crc64, crc64(&want["data/d1/s0001.bin"]));
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let reads = src.read_requests();
    let s = job(&src, &dest)
        .on_event(move |e| ev.lock().unwrap().push(e.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!(s.up_to_date, 32);
    assert_eq!((src.read_requests(), src.stat_requests()), (reads, 0));
    let reasons: HashSet<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            JobEvent::Skipped { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        HashSet::from(["up to date: same size and etag (recorded with the file)".to_owned()])
    );
    // A local file changed since (same size, new content and time): its record is stale, so
    // it is not skipped on it; downloaded again, alone.
    let changed = dest.join("d2/s0002.bin");
    let len = want["data/d2/s0002.bin"].len();
    std::fs::write(&changed, vec![b'x'; len]).unwrap();
    let reads = src.read_requests() as usize;
    let s = job(&src, &dest).run().await.unwrap();
    assert_eq!((s.done, s.up_to_date), (1, 31));
    assert_eq!(
        reads_per_key(&src, reads).into_keys().collect::<Vec<_>>(),
        ["data/d2/s0002.bin"]
    );
    assert_eq!(tree(&dest), expected(&want));
    // Rewritten in the store with the same size and the same time but another etag: the
    // record, not the time, says the object changed.
    let key = "data/d3/s0003.bin";
    let old = src.meta(key).unwrap();
    let new = vec![9u8; want[key].len()];
    let meta = src.put_object(
        key,
        backend_mock::MockObject::new(new.clone()).with_last_modified(old.last_modified.unwrap()),
    );
    assert_ne!(meta.etag, old.etag);
    let s = job(&src, &dest).run().await.unwrap();
    assert_eq!((s.done, s.up_to_date), (1, 31));
    assert_eq!(std::fs::read(dest.join("d3/s0003.bin")).unwrap(), new);
}

/// Every temp file or checkpoint below `dir` (relative paths).
fn leftovers(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = tree(dir)
        .into_keys()
        .filter(|p| p.ends_with(".rgpart") || p.ends_with(".rgcp"))
        .collect();
    out.sort();
    out
}

#[tokio::test(start_paused = true)]
async fn temp_files_of_objects_deleted_between_runs_are_removed_and_nothing_else() {
    let (src, want) = bucket(41, 40, 3);
    let total: u64 = want.values().map(|v| v.len() as u64).sum();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    // A user's file named like a temp file, beside an object the store then deletes: the
    // job never created it, so it is never removed.
    src.put("data/d4/gone.bin", b"soon deleted".to_vec());
    std::fs::create_dir_all(dest.join("d4")).unwrap();
    let users = dest.join("d4/gone.bin.rgpart");
    std::fs::write(&users, b"the user's own file").unwrap();
    crash_after(job(&src, &dest), &src, total / 2).await;
    let left: Vec<String> = leftovers(&dest)
        .into_iter()
        .filter(|p| p != "d4/gone.bin.rgpart")
        .collect();
    assert!(!left.is_empty(), "the crash left downloads in flight");
    // Those objects (and the user's neighbour's) are deleted from the store between runs.
    let mut gone = vec!["data/d4/gone.bin".to_owned()];
    for p in &left {
        let file = p.trim_end_matches(".rgpart").trim_end_matches(".rgcp");
        gone.push(format!("data/{file}"));
    }
    gone.sort();
    gone.dedup();
    for k in &gone {
        assert!(src.remove(k), "{k}");
    }
    let s = job(&src, &dest).run().await.unwrap();
    assert!(s.complete, "{s:?}");
    assert_eq!(
        leftovers(&dest),
        ["d4/gone.bin.rgpart"],
        "only the user's file is left"
    );
    assert_eq!(std::fs::read(&users).unwrap(), b"the user's own file");
}

#[tokio::test(start_paused = true)]
async fn a_rerun_after_failures_asks_only_for_the_failed_objects_not_the_listing_again() {
    // Pages of 7 keys; the objects failing are on the first page and near the end.
    let (inner, want) = bucket(43, 60, 2);
    let src = Hooked::new(inner.clone());
    let bad = ["data/big/l0.bin", "data/d0/s0000.bin", "data/d4/s0054.bin"];
    src.fail_keys(&bad, SourceErrorKind::Denied);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let s = job(&src, &dest).run().await.unwrap();
    assert_eq!((s.failed, s.done), (3, 59));
    let pages = inner.list_requests();
    assert!(pages >= 9, "{pages} list requests");
    // One still fails on the first rerun: it is retried again by the next.
    src.fail.lock().unwrap().remove("data/big/l0.bin");
    src.fail.lock().unwrap().remove("data/d0/s0000.bin");
    let (reads, stats) = (inner.read_requests() as usize, inner.stat_requests());
    let s = job(&src, &dest).run().await.unwrap();
    assert_eq!((s.done, s.failed, s.up_to_date), (2, 1, 0), "{s:?}");
    assert_eq!(inner.list_requests(), pages, "no page is listed again");
    assert_eq!(
        inner.stat_requests() - stats,
        3,
        "one stat per failed object"
    );
    let mut asked: Vec<String> = reads_per_key(&inner, reads).into_keys().collect();
    asked.sort();
    assert_eq!(asked, ["data/big/l0.bin", "data/d0/s0000.bin"]);
    src.fail.lock().unwrap().clear();
    let (reads, stats) = (inner.read_requests() as usize, inner.stat_requests());
    let s = job(&src, &dest).run().await.unwrap();
    assert_eq!((s.done, s.failed), (1, 0), "{s:?}");
    assert!(s.complete);
    assert_eq!(inner.list_requests(), pages);
    assert_eq!(inner.stat_requests() - stats, 1);
    assert_eq!(
        reads_per_key(&inner, reads).into_keys().collect::<Vec<_>>(),
        ["data/d4/s0054.bin"]
    );
    assert_eq!(tree(&dest), expected(&want));
    assert!(!dest.join(".resume-get").exists());
}
