//! [`MockSource`]: an in-memory bucket implementing [`RangeSource`], driven by a [`FaultPlan`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::Stream;
use resume_core::{
    Algorithm, Checksum, DescribedRead, ObjectMeta, Origin, RangeRead, RangeSource, ReadConditions,
    SourceError, SourceErrorKind,
};
use tokio::sync::watch;

use crate::fault::{Fault, FaultPlan, error_code};
use crate::rng::{SplitMix64, fnv1a, mix64};

/// Body chunk size used unless [`MockSource::with_chunk_size`] says otherwise.
pub const DEFAULT_CHUNK_SIZE: usize = 16 * 1024;

/// Seconds after the Unix epoch of generation 0's default `last_modified`; generation `g`
/// gets this plus `g` seconds, so every version has a distinct, deterministic timestamp.
const BASE_MTIME_SECS: u64 = 1_700_000_000;

/// What to store under a key, with the attributes a test wants to pin.
///
/// Exists because most attributes (etag, last-modified) are best derived deterministically,
/// while some (the whole-object CRC-64, which this crate does not compute) must come from the
/// test. Use [`MockSource::put`] when the defaults are fine.
#[derive(Clone, PartialEq, Eq)]
pub struct MockObject {
    content: Bytes,
    checksums: Vec<Checksum>,
    last_modified: Option<SystemTime>,
    etag: Option<String>,
}

impl MockObject {
    /// An object with this content and derived attributes.
    pub fn new(content: impl Into<Bytes>) -> Self {
        Self {
            content: content.into(),
            checksums: Vec::new(),
            last_modified: None,
            etag: None,
        }
    }

    /// A whole-object CRC-64/XZ that `stat` publishes (in `ObjectMeta::checksums`, as the
    /// store `mock`). Without it (and without [`MockSource::with_crc64_fn`] or
    /// [`with_checksum`](Self::with_checksum)) the object publishes none.
    pub fn with_crc64(self, crc64: u64) -> Self {
        self.with_checksum(Checksum::crc(
            Algorithm::Crc64Xz,
            crc64,
            Origin::Store("mock".into()),
        ))
    }

    /// A checksum that `stat` publishes for this object (any algorithm; the mock does not
    /// check that it matches the content). May be given several times.
    pub fn with_checksum(mut self, checksum: Checksum) -> Self {
        self.checksums.push(checksum);
        self
    }

    /// Overrides the derived last-modified time (default: a fixed epoch plus the generation
    /// in seconds).
    pub fn with_last_modified(mut self, at: SystemTime) -> Self {
        self.last_modified = Some(at);
        self
    }

    /// Overrides the derived etag (default: `"<32 hex digits>"`, quotes included, from the
    /// content and the generation). Use it to mimic a backend's etag format; the mock does
    /// not check that etags stay unique.
    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }
}

impl fmt::Debug for MockObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockObject")
            .field("len", &self.content.len())
            .field("checksums", &self.checksums)
            .field("last_modified", &self.last_modified)
            .field("etag", &self.etag)
            .finish()
    }
}

/// One version of an object, as the mock stores it.
///
/// Exists so tests can fetch every version's bytes and metadata (see
/// [`MockSource::history`]) and assert that a download equals exactly one of them.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// What `stat` reports for this version.
    pub meta: ObjectMeta,
    /// Source-wide put counter (1-based) at which this version was created.
    pub generation: u64,
    /// The version's bytes.
    pub content: Bytes,
}

impl fmt::Debug for StoredVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredVersion")
            .field("meta", &self.meta)
            .field("generation", &self.generation)
            .field("content_len", &self.content.len())
            .finish()
    }
}

/// One `read_range` call, as the mock saw and answered it.
///
/// Exists so tests can assert what the engine asked for (ranges, `If-Match` on every read,
/// retries) and compare whole runs for determinism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogEntry {
    /// Read request number (0-based, in call order).
    pub n: u64,
    /// The key requested.
    pub key: String,
    /// The range requested (not the one declared under a fault).
    pub range: Range<u64>,
    /// `ReadConditions::if_match` as sent.
    pub if_match: Option<String>,
    /// `ReadConditions::version_id` as sent.
    pub version_id: Option<String>,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
    /// The kind of the error `read_range` returned, if it failed before the body.
    pub error: Option<SourceErrorKind>,
    /// Body bytes yielded so far for this request (grows while the body is read).
    pub bytes_served: u64,
}

/// One `stat` call, as the mock saw and answered it.
///
/// Exists so tests can count and inspect stats separately from reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatLogEntry {
    /// Stat request number (0-based, in call order).
    pub n: u64,
    /// The key requested.
    pub key: String,
    /// The version asked for.
    pub version_id: Option<String>,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
    /// The kind of the error `stat` returned, if any.
    pub error: Option<SourceErrorKind>,
}

/// A deterministic in-memory bucket implementing [`RangeSource`], with injected faults.
///
/// Exists so the engine can be tested against every failure a real store produces, exactly
/// reproducibly, without a network. Cloning gives another handle to the *same* bucket (state,
/// plan, log, counters are shared), so a test keeps one clone for inspection while the engine
/// owns another.
///
/// Reads are strict: a range that is empty or ends past the object's end fails with
/// `InvalidRange` (416) rather than being clipped as HTTP servers do, so an engine bug shows up
/// as an error. Bodies are slices of the stored `Bytes` (no copies), cut into chunks of at most
/// the chunk size.
#[derive(Clone)]
pub struct MockSource {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    state: Mutex<State>,
    /// Total body bytes served, for crash triggers.
    served: watch::Sender<u64>,
}

struct ObjectEntry {
    versions: Vec<StoredVersion>,
    /// Index into `versions` of the current version; `None` once removed.
    current: Option<usize>,
}

struct TriggerSlot {
    id: u64,
    threshold: u64,
    observed: bool,
}

struct State {
    chunk_size: usize,
    versioning: bool,
    /// `read_described` describes the object served (as S3 does with checksum mode).
    described_reads: bool,
    crc64_fn: Option<fn(&[u8]) -> u64>,
    objects: BTreeMap<String, ObjectEntry>,
    generations: u64,
    plan: FaultPlan,
    random_injected: u32,
    faults_injected: u64,
    reads: u64,
    stats: u64,
    bytes_served: u64,
    log: Vec<RequestLogEntry>,
    stat_log: Vec<StatLogEntry>,
    triggers: Vec<TriggerSlot>,
    next_trigger_id: u64,
    frozen: Vec<Waker>,
    /// Listing (see `list.rs`): keys per page, pages served, and which page requests fail.
    pub(crate) listing: crate::list::ListingState,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn error(
    kind: SourceErrorKind,
    status: Option<u16>,
    message: String,
    request_id: String,
) -> SourceError {
    let mut e = SourceError::new(kind, message).with_request_id(request_id);
    if let Some(status) = status {
        e = e.with_status(status);
        if let Some(code) = error_code(status) {
            e = e.with_code(code);
        }
    }
    e
}

fn make_etag(content: &[u8], generation: u64) -> String {
    let a = mix64(fnv1a(content) ^ mix64(generation));
    let b = mix64(a ^ 0x5851_F42D_4C95_7F2D);
    format!("\"{a:016x}{b:016x}\"")
}

fn wrong_etag(etag: Option<&str>) -> String {
    let h = mix64(fnv1a(etag.unwrap_or("").as_bytes()) ^ 0xBAD);
    let wrong = format!("\"{:016x}{:016x}\"", h, mix64(h));
    if Some(wrong.as_str()) == etag {
        "\"wrong\"".to_owned()
    } else {
        wrong
    }
}

impl State {
    fn insert(&mut self, key: &str, object: MockObject) -> ObjectMeta {
        self.generations += 1;
        let generation = self.generations;
        let content = object.content;
        let meta =
            ObjectMeta {
                size: content.len() as u64,
                etag: Some(
                    object
                        .etag
                        .unwrap_or_else(|| make_etag(&content, generation)),
                ),
                last_modified: Some(object.last_modified.unwrap_or_else(|| {
                    UNIX_EPOCH + Duration::from_secs(BASE_MTIME_SECS + generation)
                })),
                version_id: self.versioning.then(|| format!("v{generation}")),
                checksums: if object.checksums.is_empty() {
                    self.crc64_fn
                        .map(|f| {
                            Checksum::crc(
                                Algorithm::Crc64Xz,
                                f(&content),
                                Origin::Store("mock".into()),
                            )
                        })
                        .into_iter()
                        .collect()
                } else {
                    object.checksums
                },
                checksum_note: None,
            };
        let entry = self
            .objects
            .entry(key.to_owned())
            .or_insert_with(|| ObjectEntry {
                versions: Vec::new(),
                current: None,
            });
        entry.versions.push(StoredVersion {
            meta: meta.clone(),
            generation,
            content,
        });
        entry.current = Some(entry.versions.len() - 1);
        meta
    }

    fn current(&self, key: &str) -> Option<&StoredVersion> {
        let entry = self.objects.get(key)?;
        entry.current.map(|i| &entry.versions[i])
    }

    /// Replaces the current version of `key` (if any) with `content`, or with derived content
    /// of the same length that differs from the old content at every byte.
    fn change_object(&mut self, key: &str, content: Option<Bytes>) {
        let Some(old) = self.current(key) else {
            return;
        };
        let content = content.unwrap_or_else(|| {
            let seed = mix64(fnv1a(old.meta.etag.as_deref().unwrap_or("").as_bytes()))
                ^ mix64(self.generations + 1);
            let mut rng = SplitMix64::new(seed);
            let new: Vec<u8> = old
                .content
                .iter()
                .map(|&b| b ^ (1 + rng.below(255) as u8))
                .collect();
            Bytes::from(new)
        });
        self.insert(key, MockObject::new(content));
    }

    fn lookup(
        &self,
        key: &str,
        version_id: Option<&str>,
        request_id: &str,
    ) -> Result<&StoredVersion, SourceError> {
        let not_found = |what: String| {
            error(
                SourceErrorKind::NotFound,
                Some(404),
                what,
                request_id.to_owned(),
            )
        };
        let no_key = || not_found(format!("no object {key:?} in mock bucket"));
        let entry = self.objects.get(key).ok_or_else(no_key)?;
        match version_id {
            None => entry.current.map(|i| &entry.versions[i]).ok_or_else(no_key),
            Some(v) => {
                let found = self.versioning.then(|| {
                    entry
                        .versions
                        .iter()
                        .find(|x| x.meta.version_id.as_deref() == Some(v))
                });
                found.flatten().ok_or_else(|| {
                    not_found(format!("no version {v:?} of object {key:?}"))
                        .with_code("NoSuchVersion")
                })
            }
        }
    }

    fn frozen(&self) -> bool {
        self.triggers
            .iter()
            .any(|t| !t.observed && t.threshold <= self.bytes_served)
    }
}

/// What a body still has to yield.
struct Body {
    shared: Arc<Shared>,
    /// Log index (= read request number).
    n: usize,
    chunk: usize,
    /// The declared part still to yield.
    main: Bytes,
    /// Surplus bytes (`Fault::ExtraBytes`), taken cyclically from the object after the range.
    extra: Option<Extra>,
    end: BodyEnd,
}

struct Extra {
    content: Bytes,
    pos: usize,
    remaining: u64,
}

enum BodyEnd {
    Finish,
    Error,
    Stall,
    Done,
}

impl Body {
    fn next_len(&self) -> usize {
        if !self.main.is_empty() {
            return self.main.len().min(self.chunk);
        }
        match &self.extra {
            Some(x) if x.remaining > 0 && !x.content.is_empty() => (x.content.len() - x.pos)
                .min(self.chunk)
                .min(usize::try_from(x.remaining).unwrap_or(usize::MAX)),
            _ => 0,
        }
    }

    fn take(&mut self, n: usize) -> Bytes {
        if !self.main.is_empty() {
            return self.main.split_to(n);
        }
        let x = self.extra.as_mut().expect("next_len saw extra bytes");
        let out = x.content.slice(x.pos..x.pos + n);
        x.pos += n;
        if x.pos == x.content.len() {
            x.pos = 0;
        }
        x.remaining -= n as u64;
        out
    }
}

impl Stream for Body {
    type Item = Result<Bytes, SourceError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let want = this.next_len();
        if want > 0 {
            return match this.shared.account(this.n, want, cx.waker()) {
                Some(n) => Poll::Ready(Some(Ok(this.take(n)))),
                None => Poll::Pending,
            };
        }
        match std::mem::replace(&mut this.end, BodyEnd::Done) {
            BodyEnd::Finish | BodyEnd::Done => Poll::Ready(None),
            BodyEnd::Error => Poll::Ready(Some(Err(error(
                SourceErrorKind::Transient,
                None,
                "connection reset while reading the body".to_owned(),
                format!("mock-r{}", this.n),
            )))),
            BodyEnd::Stall => {
                // Never woken: like a peer that stopped sending without closing.
                this.end = BodyEnd::Stall;
                Poll::Pending
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Grants up to `want` bytes to body `n`, cut so the total never jumps over a crash
    /// trigger's threshold; `None` (waker kept) while a fired trigger has not been observed.
    fn account(&self, n: usize, want: usize, waker: &Waker) -> Option<usize> {
        let mut st = self.lock();
        if st.frozen() {
            if !st.frozen.iter().any(|w| w.will_wake(waker)) {
                st.frozen.push(waker.clone());
            }
            return None;
        }
        let total = st.bytes_served;
        let cap = st
            .triggers
            .iter()
            .filter(|t| !t.observed)
            .map(|t| t.threshold - total)
            .min()
            .unwrap_or(u64::MAX);
        let take = usize::try_from(cap).map_or(want, |cap| want.min(cap));
        st.bytes_served += take as u64;
        st.log[n].bytes_served += take as u64;
        let total = st.bytes_served;
        drop(st);
        self.served.send_replace(total);
        Some(take)
    }

    /// Releases bodies frozen at a trigger's threshold.
    fn release(&self, id: u64, remove: bool) {
        let mut st = self.lock();
        if remove {
            st.triggers.retain(|t| t.id != id);
        } else if let Some(t) = st.triggers.iter_mut().find(|t| t.id == id) {
            t.observed = true;
        }
        let wakers = std::mem::take(&mut st.frozen);
        drop(st);
        for w in wakers {
            w.wake();
        }
    }
}

impl MockSource {
    /// Runs `f` on the bucket's current objects (key → current version's metadata, in key
    /// order) and its listing state, under the lock.
    pub(crate) fn with_listing<R>(
        &self,
        f: impl FnOnce(
            &mut dyn Iterator<Item = (&String, &ObjectMeta)>,
            &mut crate::list::ListingState,
        ) -> R,
    ) -> R {
        let mut st = self.shared.lock();
        let State {
            objects, listing, ..
        } = &mut *st;
        let mut current = objects
            .iter()
            .filter_map(|(k, e)| e.current.map(|i| (k, &e.versions[i].meta)));
        f(&mut current, listing)
    }

    /// An empty bucket whose identity is `mock://<name>`, with no faults, no versioning and
    /// [`DEFAULT_CHUNK_SIZE`]-byte body chunks.
    pub fn new(name: impl Into<String>) -> Self {
        let (served, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                name: name.into(),
                served,
                state: Mutex::new(State {
                    chunk_size: DEFAULT_CHUNK_SIZE,
                    versioning: false,
                    described_reads: false,
                    crc64_fn: None,
                    objects: BTreeMap::new(),
                    generations: 0,
                    plan: FaultPlan::new(),
                    random_injected: 0,
                    faults_injected: 0,
                    reads: 0,
                    stats: 0,
                    bytes_served: 0,
                    log: Vec::new(),
                    stat_log: Vec::new(),
                    triggers: Vec::new(),
                    next_trigger_id: 0,
                    frozen: Vec::new(),
                    listing: crate::list::ListingState::default(),
                }),
            }),
        }
    }

    /// Sets the largest chunk a body yields (values below 1 count as 1); applies to reads
    /// started afterwards.
    pub fn with_chunk_size(self, chunk_size: usize) -> Self {
        self.shared.lock().chunk_size = chunk_size.max(1);
        self
    }

    /// Turns bucket versioning on or off for later puts. With versioning on, every put gets
    /// version id `v<generation>` and older versions stay readable by id (`stat` and
    /// `ReadConditions::version_id`); with it off, versions carry no id and a request for
    /// any version id fails with `NotFound` (`NoSuchVersion`).
    pub fn with_versioning(self, on: bool) -> Self {
        self.shared.lock().versioning = on;
        self
    }

    /// Makes [`RangeSource::read_described`] describe the version it serves (its size, etag,
    /// version, last-modified and checksums, as `stat` would), like an S3 GET with
    /// `x-amz-checksum-mode: ENABLED`; off by default (a plain read, `object: None`).
    /// Described reads are logged as reads.
    pub fn with_described_reads(self, on: bool) -> Self {
        self.shared.lock().described_reads = on;
        self
    }

    /// Computes `ObjectMeta::crc64` with `f` for every later version that has no explicit
    /// [`MockObject::with_crc64`], including versions created by [`Fault::ChangeObject`].
    /// Pass the engine's CRC-64/XZ function; this crate does not implement one.
    pub fn with_crc64_fn(self, f: fn(&[u8]) -> u64) -> Self {
        self.shared.lock().crc64_fn = Some(f);
        self
    }

    /// Installs `plan` (see [`MockSource::set_fault_plan`]).
    pub fn with_fault_plan(self, plan: FaultPlan) -> Self {
        self.set_fault_plan(plan);
        self
    }

    /// Replaces the fault plan, e.g. with `FaultPlan::new()` before resuming after a crash.
    /// Request numbering continues (see [`FaultPlan`]); the random-fault budget restarts.
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        let mut st = self.shared.lock();
        st.plan = plan;
        st.random_injected = 0;
    }

    /// Stores `content` as a new version of `key` with derived attributes; returns its
    /// metadata (as `stat` will report it).
    pub fn put(&self, key: &str, content: impl Into<Bytes>) -> ObjectMeta {
        self.put_object(key, MockObject::new(content))
    }

    /// Stores `object` as a new version of `key`; returns its metadata.
    pub fn put_object(&self, key: &str, object: MockObject) -> ObjectMeta {
        self.shared.lock().insert(key, object)
    }

    /// Deletes the current version of `key` (older versions stay readable by id when
    /// versioning is on); returns whether there was one.
    pub fn remove(&self, key: &str) -> bool {
        let mut st = self.shared.lock();
        st.objects
            .get_mut(key)
            .is_some_and(|e| e.current.take().is_some())
    }

    /// The current metadata of `key`, without counting a request or applying faults.
    pub fn meta(&self, key: &str) -> Option<ObjectMeta> {
        self.shared.lock().current(key).map(|v| v.meta.clone())
    }

    /// The current content of `key`, without counting a request or applying faults.
    pub fn content(&self, key: &str) -> Option<Bytes> {
        self.shared.lock().current(key).map(|v| v.content.clone())
    }

    /// Every version ever stored under `key`, oldest first, whether or not versioning is on
    /// (so a test can check that a download equals exactly one of them).
    pub fn history(&self, key: &str) -> Vec<StoredVersion> {
        self.shared
            .lock()
            .objects
            .get(key)
            .map(|e| e.versions.clone())
            .unwrap_or_default()
    }

    /// Every `read_range` call so far, in call order (`log()[n].n == n`).
    pub fn log(&self) -> Vec<RequestLogEntry> {
        self.shared.lock().log.clone()
    }

    /// Every `stat` call so far, in call order.
    pub fn stat_log(&self) -> Vec<StatLogEntry> {
        self.shared.lock().stat_log.clone()
    }

    /// Number of `read_range` calls so far (= the number the next one gets).
    pub fn read_requests(&self) -> u64 {
        self.shared.lock().reads
    }

    /// Number of `stat` calls so far.
    pub fn stat_requests(&self) -> u64 {
        self.shared.lock().stats
    }

    /// Body bytes actually yielded by all bodies so far (bytes the engine received).
    pub fn bytes_served(&self) -> u64 {
        self.shared.lock().bytes_served
    }

    /// Faults injected so far (explicit and random, reads and stats), over all plans.
    pub fn faults_injected(&self) -> u64 {
        self.shared.lock().faults_injected
    }

    /// A trigger that fires once the total body bytes served since the source was created
    /// reaches `n` (use `bytes_served() + k` for "k more bytes").
    ///
    /// Bodies are cut so the total lands exactly on `n`; then every body pends until the
    /// trigger's [`CrashTrigger::fired`] has completed (or the trigger is dropped). So when a
    /// test drops the download on `fired()`, exactly `n` bytes had been served — a crash point
    /// that depends only on `n`, not on task scheduling. Keep the trigger only while something
    /// awaits `fired()`: an unobserved, fired trigger stalls every read.
    pub fn crash_trigger_after_bytes(&self, n: u64) -> CrashTrigger {
        let mut st = self.shared.lock();
        let id = st.next_trigger_id;
        st.next_trigger_id += 1;
        st.triggers.push(TriggerSlot {
            id,
            threshold: n,
            observed: false,
        });
        CrashTrigger {
            shared: Arc::clone(&self.shared),
            id,
            threshold: n,
        }
    }

    fn begin_read(
        &self,
        key: &str,
        range: &Range<u64>,
        conditions: &ReadConditions,
    ) -> (u64, Option<Fault>, usize) {
        let mut st = self.shared.lock();
        let n = st.reads;
        st.reads += 1;
        let len = range.end.saturating_sub(range.start);
        let fault = if let Some(f) = st.plan.explicit_read(n) {
            Some(f.clone())
        } else if st.plan.random_budget_left(st.random_injected) {
            let f = st.plan.draw_read(n, len);
            if f.is_some() {
                st.random_injected += 1;
            }
            f
        } else {
            None
        };
        if fault.is_some() {
            st.faults_injected += 1;
        }
        st.log.push(RequestLogEntry {
            n,
            key: key.to_owned(),
            range: range.clone(),
            if_match: conditions.if_match.clone(),
            version_id: conditions.version_id.clone(),
            fault: fault.clone(),
            error: None,
            bytes_served: 0,
        });
        (n, fault, st.chunk_size)
    }

    fn finish_read(
        &self,
        n: u64,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
        fault: Option<Fault>,
        chunk: usize,
    ) -> Result<DescribedRead, SourceError> {
        let mut st = self.shared.lock();
        let result = serve_read(&mut st, n, key, range, conditions, fault);
        let idx = usize::try_from(n).expect("log index fits in memory");
        let described = st.described_reads;
        match result {
            Err(e) => {
                st.log[idx].error = Some(e.kind);
                Err(e)
            }
            Ok(plan) => Ok(DescribedRead {
                object: described.then(|| plan.meta.clone()),
                read: RangeRead {
                    range: plan.declared,
                    total_size: Some(plan.size),
                    etag: plan.etag,
                    body: Box::pin(Body {
                        shared: Arc::clone(&self.shared),
                        n: idx,
                        chunk,
                        main: plan.main,
                        extra: plan.extra,
                        end: plan.end,
                    }),
                },
            }),
        }
    }

    fn begin_stat(&self, key: &str, version_id: Option<&str>) -> (u64, Option<Fault>) {
        let mut st = self.shared.lock();
        let n = st.stats;
        st.stats += 1;
        let fault = st.plan.explicit_stat(n).cloned();
        if fault.is_some() {
            st.faults_injected += 1;
        }
        st.stat_log.push(StatLogEntry {
            n,
            key: key.to_owned(),
            version_id: version_id.map(str::to_owned),
            fault: fault.clone(),
            error: None,
        });
        (n, fault)
    }

    fn finish_stat(
        &self,
        n: u64,
        key: &str,
        version_id: Option<&str>,
        fault: Option<Fault>,
    ) -> Result<ObjectMeta, SourceError> {
        let mut st = self.shared.lock();
        let result = serve_stat(&mut st, n, key, version_id, fault);
        if let Err(e) = &result {
            let idx = usize::try_from(n).expect("log index fits in memory");
            st.stat_log[idx].error = Some(e.kind);
        }
        result
    }
}

/// Applies the faults that act before a response: object changes and failed requests.
fn before_response(
    st: &mut State,
    key: &str,
    fault: Option<&Fault>,
    request_id: &str,
) -> Result<(), SourceError> {
    match fault {
        Some(Fault::ChangeObject) => st.change_object(key, None),
        Some(Fault::ReplaceObject(b)) => st.change_object(key, Some(b.clone())),
        Some(Fault::Status(kind, status)) => {
            return Err(error(
                *kind,
                Some(*status),
                format!("injected status {status} for {key:?}"),
                request_id.to_owned(),
            ));
        }
        Some(Fault::Reset) => {
            return Err(error(
                SourceErrorKind::Transient,
                None,
                "connection reset".to_owned(),
                request_id.to_owned(),
            ));
        }
        _ => {}
    }
    Ok(())
}

fn serve_stat(
    st: &mut State,
    n: u64,
    key: &str,
    version_id: Option<&str>,
    fault: Option<Fault>,
) -> Result<ObjectMeta, SourceError> {
    let request_id = format!("mock-s{n}");
    before_response(st, key, fault.as_ref(), &request_id)?;
    let mut meta = st.lookup(key, version_id, &request_id)?.meta.clone();
    if fault == Some(Fault::WrongEtag) {
        meta.etag = Some(wrong_etag(meta.etag.as_deref()));
    }
    Ok(meta)
}

/// What `serve_read` decided to send.
struct ServePlan {
    /// The version served, as a stat would describe it.
    meta: ObjectMeta,
    declared: Range<u64>,
    size: u64,
    etag: Option<String>,
    main: Bytes,
    extra: Option<Extra>,
    end: BodyEnd,
}

fn serve_read(
    st: &mut State,
    n: u64,
    key: &str,
    range: Range<u64>,
    conditions: &ReadConditions,
    fault: Option<Fault>,
) -> Result<ServePlan, SourceError> {
    let request_id = format!("mock-r{n}");
    before_response(st, key, fault.as_ref(), &request_id)?;
    let version = st.lookup(key, conditions.version_id.as_deref(), &request_id)?;
    let etag = version.meta.etag.clone();
    if let Some(want) = &conditions.if_match
        && etag.as_ref() != Some(want)
    {
        return Err(error(
            SourceErrorKind::Changed,
            Some(412),
            format!(
                "If-Match {want} does not match etag {} of {key:?}",
                etag.as_deref().unwrap_or("(none)")
            ),
            request_id,
        ));
    }
    let size = version.meta.size;
    if range.start >= range.end || range.end > size {
        return Err(error(
            SourceErrorKind::InvalidRange,
            Some(416),
            format!(
                "range {}..{} of {key:?} is empty or ends past its size {size}",
                range.start, range.end
            ),
            request_id,
        ));
    }
    let content = version.content.clone();
    let slice = |r: &Range<u64>| content.slice(r.start as usize..r.end as usize);
    let len = range.end - range.start;
    let prefix = |k: u64| range.start..range.start + k.min(len);
    let mut plan = ServePlan {
        meta: version.meta.clone(),
        declared: range.clone(),
        size,
        etag,
        main: Bytes::new(),
        extra: None,
        end: BodyEnd::Finish,
    };
    let served = match fault {
        Some(Fault::ResetAfter(k)) => {
            plan.end = BodyEnd::Error;
            prefix(k)
        }
        Some(Fault::ShortBody(k)) => prefix(k),
        Some(Fault::Stall(k)) => {
            plan.end = BodyEnd::Stall;
            prefix(k)
        }
        Some(Fault::WrongRange) => {
            plan.declared = if range.end < size {
                range.start + 1..range.end + 1
            } else if range.start > 0 {
                range.start - 1..range.end - 1
            } else {
                1..size
            };
            plan.declared.clone()
        }
        Some(Fault::IgnoreRange) => {
            plan.declared = 0..size;
            0..size
        }
        Some(Fault::WrongEtag) => {
            plan.etag = Some(wrong_etag(plan.etag.as_deref()));
            range
        }
        Some(Fault::ExtraBytes(k)) => {
            plan.extra = Some(Extra {
                pos: (range.end % size) as usize,
                content: content.clone(),
                remaining: k,
            });
            range
        }
        _ => range,
    };
    plan.main = slice(&served);
    if let Some(Fault::FlipByte(at)) = fault
        && let Ok(at) = usize::try_from(at)
        && at < plan.main.len()
    {
        let mut flipped = plan.main.to_vec();
        flipped[at] ^= 0x01;
        plan.main = Bytes::from(flipped);
    }
    Ok(plan)
}

impl fmt::Debug for MockSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("MockSource")
            .field("name", &self.shared.name)
            .field("objects", &st.objects.len())
            .field("versioning", &st.versioning)
            .field("chunk_size", &st.chunk_size)
            .field("reads", &st.reads)
            .field("stats", &st.stats)
            .field("bytes_served", &st.bytes_served)
            .field("plan", &st.plan)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl RangeSource for MockSource {
    /// `mock://<name>`.
    fn identity(&self) -> String {
        format!("mock://{}", self.shared.name)
    }

    async fn stat(&self, key: &str, version_id: Option<&str>) -> Result<ObjectMeta, SourceError> {
        let (n, fault) = self.begin_stat(key, version_id);
        if let Some(Fault::Delay(d)) = &fault {
            tokio::time::sleep(*d).await;
        }
        self.finish_stat(n, key, version_id, fault)
    }

    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        Ok(self.read_described(key, range, conditions).await?.read)
    }

    async fn read_described(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<DescribedRead, SourceError> {
        let (n, fault, chunk) = self.begin_read(key, &range, conditions);
        if let Some(Fault::Delay(d)) = &fault {
            tokio::time::sleep(*d).await;
        }
        self.finish_read(n, key, range, conditions, fault, chunk)
    }
}

/// Fires when a [`MockSource`] has served a given number of body bytes, so a test can "crash"
/// a download (drop its future) at a seeded point.
///
/// Exists because crash-safety tests need crash points that are reproducible from a seed;
/// see [`MockSource::crash_trigger_after_bytes`] for the exact semantics.
pub struct CrashTrigger {
    shared: Arc<Shared>,
    id: u64,
    threshold: u64,
}

impl CrashTrigger {
    /// Completes once the source's total body bytes served reaches the threshold; from then
    /// on bodies frozen at the threshold resume. Never completes if it is never reached.
    /// Cancel-safe; may be awaited again (completes at once).
    pub async fn fired(&self) {
        let mut rx = self.shared.served.subscribe();
        let threshold = self.threshold;
        // The sender lives in `self.shared`, which we hold, so this cannot fail.
        let _ = rx.wait_for(|&total| total >= threshold).await;
        self.shared.release(self.id, false);
    }

    /// Whether the threshold has been reached (whether or not `fired` was awaited).
    pub fn has_fired(&self) -> bool {
        self.shared.lock().bytes_served >= self.threshold
    }

    /// The total byte count the trigger waits for.
    pub fn threshold(&self) -> u64 {
        self.threshold
    }
}

impl Drop for CrashTrigger {
    fn drop(&mut self) {
        self.shared.release(self.id, true);
    }
}

impl fmt::Debug for CrashTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashTrigger")
            .field("threshold", &self.threshold)
            .field("fired", &self.has_fired())
            .finish()
    }
}
