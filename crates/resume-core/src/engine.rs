//! One download, from stat to rename. See `docs/ARCHITECTURE.md` for the lifecycle and the
//! invariants each step enforces.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use checkpoint::{
    Checkpoint, CheckpointId, CheckpointStore, ObjectFingerprint, PartDigest, PartLayout, Timestamp,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::digest::{Crc64Appender, PartHasher, crc64_combine};
use crate::downloader::{Downloader, OnChange};
use crate::error::Error;
use crate::event::{Event, Report};
use crate::part_file::{PART_SUFFIX, PartFile, with_suffix};
use crate::plan::{format_range, plan, resolve_range};
use crate::rate::RateLimiter;
use crate::retry::JitterRng;
use crate::source::{ObjectMeta, RangeRead, ReadConditions, SourceError, SourceErrorKind};

/// Runs a download to completion, restarting on object change per policy.
pub(crate) async fn run(
    dl: &Downloader,
    key: &str,
    dest: &Path,
    store: Option<Arc<dyn CheckpointStore>>,
) -> Result<Report, Error> {
    let started = Instant::now();
    let part_path = with_suffix(dest, PART_SUFFIX);
    let id = CheckpointId {
        source: dl.source.identity(),
        key: key.to_owned(),
        version_id: dl.version_id.clone(),
        range: dl.range,
        destination: dest.to_string_lossy().into_owned(),
    };
    if let Some(cp_path) = store.as_ref().and_then(|s| s.path(&id))
        && (cp_path == dest || cp_path == part_path)
    {
        return Err(Error::Config(format!(
            "destination {} is the checkpoint file of this download; choose another destination \
             or checkpoint location",
            dest.display()
        )));
    }
    // A DEST holding a checkpoint (e.g. `out.bin.rgcp` typed for `out.bin`) is another
    // download's saved progress: replacing it would silently lose that progress.
    if is_checkpoint_file(dest) {
        return Err(Error::Config(format!(
            "destination {} is a checkpoint file (the saved progress of another download); \
             choose another destination, or delete it if that download is abandoned",
            dest.display()
        )));
    }

    // Lock before reading or writing any state: a second download into DEST stops here.
    let file = PartFile::open_locked(&part_path, dest)?;
    let rng = Mutex::new(JitterRng::new(dl.retry.jitter_seed));
    let limiter = dl.rate_limit.map(RateLimiter::new);
    // Whether the checkpoint holds at least one done part (reused or recorded in this run).
    let recorded = AtomicBool::new(false);
    let background = BackgroundSync::default();
    let mut restarts = 0u32;
    let result = loop {
        let attempt = Attempt {
            dl,
            key,
            id: &id,
            store: store.as_deref(),
            shared_store: store.clone(),
            background: &background,
            file: &file,
            rng: &rng,
            limiter: limiter.as_ref(),
            recorded: &recorded,
            halt: dl.cancel.child_token(),
            counters: Counters::default(),
        };
        match attempt.run(restarts, started).await {
            Err(Failure::Changed(detail)) => {
                if let Some(s) = &store {
                    s.delete(&id)?;
                }
                if dl.on_change == OnChange::Restart && restarts < dl.max_restarts {
                    restarts += 1;
                    tracing::warn!(key, restarts, %detail, "object changed; restarting");
                    dl.emit(&Event::Restarted {
                        reason: format!("{key} changed {detail}"),
                        restart: restarts,
                    });
                    continue;
                }
                let advice = if dl.on_change == OnChange::Restart {
                    format!(
                        "gave up after {restarts} restart(s); the object is being rewritten, \
                         try again once it is stable"
                    )
                } else {
                    "the partial download of the old version was discarded; run again to \
                     download the current version"
                        .to_string()
                };
                break Err(Error::Changed {
                    key: key.to_owned(),
                    detail,
                    advice,
                });
            }
            Err(Failure::Fatal(e)) => break Err(e),
            Err(Failure::Stopped) => {
                // Only reachable when the caller cancelled: workers stop on their own failures
                // by returning them, and `halt` is otherwise only cancelled by such a failure.
                break Err(Error::Cancelled {
                    key: key.to_owned(),
                    done_bytes: 0,
                    total_bytes: 0,
                });
            }
            Ok(report) => break Ok(report),
        }
    };
    // Leave state behind only if a later run can resume from it: not without a checkpoint,
    // not when no part was ever recorded (e.g. the stat was refused, every request failed),
    // and not the old version's bytes after the object changed.
    if let Err(e) = &result {
        let resumable = store.is_some()
            && recorded.load(Ordering::Relaxed)
            && !matches!(e, Error::Changed { .. } | Error::Integrity { .. });
        if !resumable {
            if let Some(s) = &store {
                let _ = s.delete(&id);
            }
            let _ = std::fs::remove_file(file.path());
        }
    }
    result
}

/// Start a background sync after this many bytes, so the final fsync has only the tail to
/// write instead of the whole file (on a fast link, seconds of dirty pages).
const SYNC_EVERY_BYTES: u64 = 64 << 20;

/// At most one fsync of the temp file and checkpoint runs on the blocking pool while the
/// download goes on; its failure stops the download at the next part.
#[derive(Debug, Default, Clone)]
struct BackgroundSync {
    in_flight: Arc<AtomicBool>,
    error: Arc<Mutex<Option<Error>>>,
}

/// Why an attempt stopped early.
#[derive(Debug)]
enum Failure {
    /// Report this error.
    Fatal(Error),
    /// The object is not the version being downloaded.
    Changed(String),
    /// Asked to stop (caller cancellation, or another worker failed).
    Stopped,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

impl From<checkpoint::CheckpointError> for Failure {
    fn from(e: checkpoint::CheckpointError) -> Self {
        Failure::Fatal(Error::Checkpoint(e))
    }
}

#[derive(Debug, Default)]
struct Counters {
    done_bytes: AtomicU64,
    fetched_bytes: AtomicU64,
    retries: AtomicU64,
}

/// One pass over one version of the object.
struct Attempt<'a> {
    dl: &'a Downloader,
    key: &'a str,
    id: &'a CheckpointId,
    store: Option<&'a dyn CheckpointStore>,
    /// The same store, for the background sync (which outlives a borrow).
    shared_store: Option<Arc<dyn CheckpointStore>>,
    background: &'a BackgroundSync,
    file: &'a PartFile,
    rng: &'a Mutex<JitterRng>,
    limiter: Option<&'a RateLimiter>,
    recorded: &'a AtomicBool,
    /// Cancelled by the caller's token or by the first worker that fails.
    halt: CancellationToken,
    counters: Counters,
}

/// State shared by the workers of one attempt.
struct Transfer<'a> {
    meta: &'a ObjectMeta,
    layout: PartLayout,
    conditions: ReadConditions,
    digests: Mutex<Vec<Option<PartDigest>>>,
    last_progress: Mutex<Option<Instant>>,
    last_sync: Mutex<Instant>,
    /// Bytes of parts done since the last sync started.
    unsynced: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Attempt<'_> {
    async fn run(&self, restarts: u32, started: Instant) -> Result<Report, Failure> {
        let dl = self.dl;
        let meta = self.stat().await?;
        let range = resolve_range(dl.range, meta.size).map_err(|p| Error::InvalidRange {
            key: self.key.to_owned(),
            range: format_range(dl.range),
            size: meta.size,
            reason: p.0,
        })?;
        let layout = plan(range.clone(), dl.part_size)
            .ok_or_else(|| Error::Config("part size is 0 bytes".into()))?;
        let fingerprint = fingerprint(&meta);

        let mut checkpoint = match self.load_checkpoint(&fingerprint, &layout)? {
            Some(cp) => cp,
            None => {
                self.file.reset(layout.len)?;
                Checkpoint::new(self.id.clone(), fingerprint, layout)
            }
        };
        let resumed = !checkpoint.done.is_empty();
        let mut verified_on_resume = false;
        if resumed && dl.verify_on_resume {
            let done: Vec<u64> = checkpoint.done.keys().copied().collect();
            let damaged = self.find_damaged(&layout, &checkpoint, &done, true).await?;
            if !damaged.is_empty() {
                for p in &damaged {
                    checkpoint.done.remove(p);
                }
                dl.emit(&Event::PartsDamaged {
                    parts: damaged,
                    reason: "their bytes in the temp file no longer match the checkpoint's BLAKE3"
                        .into(),
                });
            }
            verified_on_resume = true;
        }
        if let Some(store) = self.store {
            // A fresh snapshot: compacts the journal and starts this run's records.
            store.save(&checkpoint)?;
        }

        let reused_parts: Vec<u64> = checkpoint.done.keys().copied().collect();
        self.recorded
            .store(!reused_parts.is_empty(), Ordering::Relaxed);
        let reused_bytes = checkpoint.done_bytes();
        self.counters
            .done_bytes
            .store(reused_bytes, Ordering::Relaxed);
        dl.emit(&Event::Started {
            key: self.key.to_owned(),
            total_bytes: layout.len,
            reused_bytes,
            part_size: layout.part_size,
            parts: layout.part_count,
            parts_reused: reused_parts.len() as u64,
            resumed,
        });
        tracing::info!(
            key = self.key,
            total = layout.len,
            parts = layout.part_count,
            reused = reused_parts.len(),
            "download started"
        );

        let mut digests = vec![None; usize_of(layout.part_count)?];
        for (&i, d) in &checkpoint.done {
            digests[usize_of(i)?] = Some(*d);
        }
        drop(checkpoint);
        let transfer = Transfer {
            meta: &meta,
            layout,
            conditions: ReadConditions {
                if_match: meta.etag.clone(),
                version_id: meta.version_id.clone().or_else(|| dl.version_id.clone()),
            },
            digests: Mutex::new(digests),
            last_progress: Mutex::new(None),
            last_sync: Mutex::new(Instant::now()),
            unsynced: AtomicU64::new(0),
        };

        let missing: Vec<u64> = {
            let d = lock(&transfer.digests);
            (0..layout.part_count)
                .filter(|&i| d[i as usize].is_none())
                .collect()
        };
        self.run_workers(&transfer, &missing).await?;

        // Reused parts were hashed when received, but the temp file may have been damaged
        // since: check their bytes on disk (CRC-64, cheap) and re-fetch what no longer matches.
        if !verified_on_resume && !reused_parts.is_empty() {
            let snapshot = self.snapshot(&transfer);
            let damaged = self
                .find_damaged(&layout, &snapshot, &reused_parts, false)
                .await?;
            if !damaged.is_empty() {
                {
                    let mut d = lock(&transfer.digests);
                    for &p in &damaged {
                        d[p as usize] = None;
                    }
                }
                let bytes: u64 = damaged.iter().map(|&p| layout.part_len(p)).sum();
                self.counters.done_bytes.fetch_sub(bytes, Ordering::Relaxed);
                dl.emit(&Event::PartsDamaged {
                    parts: damaged.clone(),
                    reason: "their bytes in the temp file no longer match the checkpoint's CRC-64"
                        .into(),
                });
                self.run_workers(&transfer, &damaged).await?;
            }
        }

        let crc = self.combined_crc(&transfer)?;
        let whole_object = range.start == 0 && range.end == meta.size;
        let crc64_verified = match (whole_object, meta.crc64) {
            (true, Some(expected)) => {
                if crc != expected {
                    // The checkpoint and temp file hold bytes that cannot be trusted: drop both
                    // so the next run starts from zero instead of repeating the failure.
                    if let Some(store) = self.store {
                        store.delete(self.id)?;
                    }
                    self.file.reset(0)?;
                    return Err(Error::Integrity {
                        key: self.key.to_owned(),
                        expected,
                        actual: crc,
                    }
                    .into());
                }
                true
            }
            _ => false,
        };

        let dest = Path::new(&self.id.destination);
        self.file.commit(dest)?;
        if let Some(store) = self.store {
            store.delete(self.id)?;
        }
        let report = Report {
            key: self.key.to_owned(),
            destination: dest.to_path_buf(),
            object: meta.clone(),
            range,
            fetched_bytes: self.counters.fetched_bytes.load(Ordering::Relaxed),
            reused_bytes,
            parts: layout.part_count,
            parts_reused: reused_parts.len() as u64,
            retries: self.counters.retries.load(Ordering::Relaxed),
            restarts,
            crc64: crc,
            crc64_verified,
            elapsed: started.elapsed(),
        };
        self.emit_progress(&transfer, true);
        dl.emit(&Event::Completed(Arc::new(report.clone())));
        tracing::info!(key = self.key, crc64 = crc, "download complete");
        Ok(report)
    }

    /// HEAD the object, retrying transient failures like any other request.
    async fn stat(&self) -> Result<ObjectMeta, Failure> {
        let dl = self.dl;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = tokio::select! {
                biased;
                _ = self.halt.cancelled() => return Err(Failure::Stopped),
                r = tokio::time::timeout(
                    dl.idle_timeout,
                    dl.source.stat(self.key, dl.version_id.as_deref()),
                ) => r,
            };
            let err = match outcome {
                Ok(Ok(meta)) => return Ok(meta),
                Ok(Err(e)) => e,
                Err(_) => SourceError::transient(format!(
                    "no answer to the metadata request within {:?}",
                    dl.idle_timeout
                )),
            };
            if !err.kind.is_retryable() || attempts >= dl.retry.max_attempts {
                return Err(Error::Stat {
                    key: self.key.to_owned(),
                    attempts,
                    source: Box::new(err),
                }
                .into());
            }
            self.backoff(None, attempts, attempts, 0, &err).await?;
        }
    }

    /// Loads the checkpoint and decides whether it may be trusted (DESIGN invariant 5).
    fn load_checkpoint(
        &self,
        fingerprint: &ObjectFingerprint,
        layout: &PartLayout,
    ) -> Result<Option<Checkpoint>, Failure> {
        let Some(store) = self.store else {
            return Ok(None);
        };
        let location = store.location(self.id);
        let discard = |reason: String| {
            tracing::warn!(%location, %reason, "discarding checkpoint");
            self.dl.emit(&Event::CheckpointDiscarded {
                location: location.clone(),
                reason,
            });
            Ok(None)
        };
        let loaded = match store.load(self.id) {
            Ok(None) => return Ok(None),
            Ok(Some(l)) => l,
            Err(e) => return discard(e.to_string()),
        };
        let cp = loaded.checkpoint;
        if cp.id != *self.id {
            return discard(format!(
                "it belongs to another download ({} {} into {})",
                cp.id.source, cp.id.key, cp.id.destination
            ));
        }
        if cp.object != *fingerprint {
            let detail = format!(
                "since the checkpoint was written (then: {}; now: {})",
                describe(&cp.object),
                describe(fingerprint)
            );
            if self.dl.on_change == OnChange::Fail {
                return Err(Failure::Changed(detail));
            }
            return discard(format!("the object changed {detail}"));
        }
        if cp.layout != *layout {
            return discard(format!(
                "it was taken with {} parts of {} bytes, this download uses {} parts of {} bytes",
                cp.layout.part_count, cp.layout.part_size, layout.part_count, layout.part_size
            ));
        }
        let have = self.file.len()?;
        if have != layout.len {
            return discard(format!(
                "the temp file {} has {have} bytes, the checkpoint expects {}",
                self.file.path().display(),
                layout.len
            ));
        }
        for note in loaded.notes {
            self.dl.emit(&Event::CheckpointNote {
                location: location.clone(),
                note,
            });
        }
        Ok(Some(cp))
    }

    /// Runs `concurrency` workers that claim parts from `queue` in order.
    ///
    /// Workers are futures polled by this one (not spawned tasks), so dropping the download
    /// stops every request at once, exactly like a crash, with nothing left running.
    async fn run_workers(&self, t: &Transfer<'_>, queue: &[u64]) -> Result<(), Failure> {
        let next = AtomicUsize::new(0);
        let n = self.dl.concurrency.min(queue.len());
        let mut workers: FuturesUnordered<_> =
            (0..n).map(|_| self.worker(t, queue, &next)).collect();
        let mut first: Option<Failure> = None;
        while let Some(result) = workers.next().await {
            if let Err(f) = result {
                if first.is_none() || matches!(first, Some(Failure::Stopped)) {
                    first = Some(f);
                }
                self.halt.cancel();
            }
        }
        drop(workers);
        self.sync(t)?;
        match first {
            None if self.halt.is_cancelled() => Err(self.cancelled(t)),
            None => Ok(()),
            Some(Failure::Stopped) => Err(self.cancelled(t)),
            Some(f) => Err(f),
        }
    }

    fn cancelled(&self, t: &Transfer<'_>) -> Failure {
        Failure::Fatal(Error::Cancelled {
            key: self.key.to_owned(),
            done_bytes: self.counters.done_bytes.load(Ordering::Relaxed),
            total_bytes: t.layout.len,
        })
    }

    async fn worker(
        &self,
        t: &Transfer<'_>,
        queue: &[u64],
        next: &AtomicUsize,
    ) -> Result<(), Failure> {
        let mut buf = Vec::with_capacity(self.dl.buffer_size);
        loop {
            if self.halt.is_cancelled() {
                return Err(Failure::Stopped);
            }
            let Some(&part) = queue.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(());
            };
            let digest = self.fetch_part(t, part, &mut buf).await?;
            self.part_done(t, part, digest)?;
        }
    }

    /// Records a part whose bytes are all written (DESIGN invariant 3: data before record).
    fn part_done(&self, t: &Transfer<'_>, part: u64, digest: PartDigest) -> Result<(), Failure> {
        if let Some(store) = self.store {
            store.record(self.id, part, digest)?;
            store.flush(self.id)?;
            self.recorded.store(true, Ordering::Relaxed);
        }
        lock(&t.digests)[part as usize] = Some(digest);
        self.dl.emit(&Event::PartDone {
            part,
            range: t.layout.part_range(part),
        });
        if let Some(interval) = self.dl.sync_interval {
            if let Some(e) = lock(&self.background.error).take() {
                return Err(e.into());
            }
            let len = t.layout.part_len(part);
            let unsynced = t.unsynced.fetch_add(len, Ordering::Relaxed) + len;
            let due = unsynced >= SYNC_EVERY_BYTES || lock(&t.last_sync).elapsed() >= interval;
            if due && !self.background.in_flight.swap(true, Ordering::AcqRel) {
                t.unsynced.store(0, Ordering::Relaxed);
                *lock(&t.last_sync) = Instant::now();
                self.sync_in_background();
            }
        }
        Ok(())
    }

    /// Group commit off the download's thread: data first, then the records that claim it.
    ///
    /// The temp file is opened anew (read-only): the sync must not share the download's
    /// lock, so a download dropped while a sync runs does not hold its DEST any longer.
    fn sync_in_background(&self) {
        let path = self.file.path().to_owned();
        let store = self.shared_store.clone();
        let id = self.id.clone();
        let background = self.background.clone();
        tokio::task::spawn_blocking(move || {
            let result = std::fs::File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(|e| Error::io("sync temp file", &path, e))
                .and_then(|()| match &store {
                    Some(s) => s.sync(&id).map_err(Error::from),
                    None => Ok(()),
                });
            if let Err(e) = result {
                *lock(&background.error) = Some(e);
            }
            background.in_flight.store(false, Ordering::Release);
        });
    }

    /// Group commit for power-loss durability: data first, then the records that claim it.
    fn sync(&self, t: &Transfer<'_>) -> Result<(), Failure> {
        if self.dl.sync_interval.is_some() {
            self.file.sync_data()?;
            if let Some(store) = self.store {
                store.sync(self.id)?;
            }
        }
        *lock(&t.last_sync) = Instant::now();
        Ok(())
    }

    /// Fetches one part, retrying and resuming from the byte where a request broke.
    async fn fetch_part(
        &self,
        t: &Transfer<'_>,
        part: u64,
        buf: &mut Vec<u8>,
    ) -> Result<PartDigest, Failure> {
        let range = t.layout.part_range(part);
        let mut pos = range.start;
        let mut hasher = PartHasher::new();
        let (mut failures, mut requests) = (0u32, 0u32);
        loop {
            requests += 1;
            let before = pos;
            let err = match self
                .attempt_range(t, pos..range.end, &mut pos, &mut hasher, buf)
                .await
            {
                Ok(()) => return Ok(hasher.finish()),
                Err(AttemptError::Source(e)) => e,
                Err(AttemptError::Malformed(e)) => {
                    // Nothing this response delivered can be trusted: start the part over.
                    self.counters
                        .done_bytes
                        .fetch_sub(pos - range.start, Ordering::Relaxed);
                    pos = range.start;
                    hasher = PartHasher::new();
                    e
                }
                Err(AttemptError::Failure(f)) => return Err(f),
            };
            let part_error = |source| Error::Part {
                key: self.key.to_owned(),
                part,
                range: range.clone(),
                attempts: requests,
                source: Box::new(source),
            };
            match err.kind {
                SourceErrorKind::Changed => {
                    return Err(Failure::Changed(format!(
                        "while part {part} was downloaded: {err}"
                    )));
                }
                kind if !kind.is_retryable() => return Err(part_error(err).into()),
                _ => {}
            }
            failures = if pos > before { 1 } else { failures + 1 };
            if failures >= self.dl.retry.max_attempts
                || requests >= self.dl.retry.max_requests_per_part
            {
                return Err(part_error(err).into());
            }
            self.backoff(Some(part), requests, failures, pos, &err)
                .await?;
        }
    }

    async fn backoff(
        &self,
        part: Option<u64>,
        attempt: u32,
        failures: u32,
        resume_at: u64,
        cause: &SourceError,
    ) -> Result<(), Failure> {
        let delay = self.dl.retry.backoff(failures, &mut lock(self.rng));
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(key = self.key, ?part, attempt, ?delay, %cause, "retrying");
        self.dl.emit(&Event::Retry {
            part,
            attempt,
            resume_at,
            delay,
            cause: cause.to_string(),
        });
        tokio::select! {
            biased;
            _ = self.halt.cancelled() => Err(Failure::Stopped),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// One request for `want`; writes and hashes every byte it accepts and advances `pos`
    /// past them, also when the request then fails, so a retry resumes where this one broke.
    async fn attempt_range(
        &self,
        t: &Transfer<'_>,
        want: Range<u64>,
        pos: &mut u64,
        hasher: &mut PartHasher,
        buf: &mut Vec<u8>,
    ) -> Result<(), AttemptError> {
        let dl = self.dl;
        let idle = dl.idle_timeout;
        let response = tokio::select! {
            biased;
            _ = self.halt.cancelled() => return Err(Failure::Stopped.into()),
            r = tokio::time::timeout(idle, dl.source.read_range(self.key, want.clone(), &t.conditions)) => r,
        };
        let read = match response {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Err(AttemptError::Source(e)),
            Err(_) => {
                return Err(AttemptError::Source(SourceError::transient(format!(
                    "no response within the idle timeout of {idle:?}"
                ))));
            }
        };
        self.check_response(t, &read, &want)?;
        let mut body = read.body;
        let file_base = t.layout.start; // object offset of temp-file byte 0
        buf.clear();
        let mut buf_start = *pos;
        let mut cur = *pos;
        let outcome = loop {
            let item = tokio::select! {
                biased;
                _ = self.halt.cancelled() => break Err(AttemptError::Failure(Failure::Stopped)),
                r = tokio::time::timeout(idle, body.next()) => r,
            };
            let chunk = match item {
                Err(_) => {
                    break Err(AttemptError::Source(SourceError::transient(format!(
                        "no data for {idle:?} (idle timeout) at byte {cur}"
                    ))));
                }
                Ok(None) if cur == want.end => break Ok(()),
                Ok(None) => {
                    break Err(AttemptError::Source(SourceError::transient(format!(
                        "body ended after {} of {} bytes",
                        cur - want.start,
                        want.end - want.start
                    ))));
                }
                Ok(Some(Err(e))) => break Err(AttemptError::Source(e)),
                Ok(Some(Ok(chunk))) => chunk,
            };
            if chunk.len() as u64 > want.end - cur {
                // A body longer than its declared range is malformed; nothing past the range
                // is written, and the caller discards what this response delivered.
                break Err(AttemptError::Malformed(SourceError::transient(format!(
                    "the source sent more than the {} bytes it declared",
                    want.end - want.start
                ))));
            }
            if let Some(limiter) = self.limiter {
                // Reserve before accepting: a chunk counts (hashed, written, reported) only
                // once the shared bucket has paid for it, so accepted bytes follow the limit.
                tokio::select! {
                    biased;
                    _ = self.halt.cancelled() => break Err(AttemptError::Failure(Failure::Stopped)),
                    _ = limiter.take(chunk.len() as u64) => {}
                }
            }
            hasher.update(&chunk);
            if buf.len() + chunk.len() > dl.buffer_size && !buf.is_empty() {
                if let Err(e) = self.file.write_all_at(buf, buf_start - file_base) {
                    break Err(Failure::Fatal(e).into());
                }
                buf_start += buf.len() as u64;
                buf.clear();
            }
            if chunk.len() >= dl.buffer_size {
                if let Err(e) = self.file.write_all_at(&chunk, buf_start - file_base) {
                    break Err(Failure::Fatal(e).into());
                }
                buf_start += chunk.len() as u64;
            } else {
                buf.extend_from_slice(&chunk);
            }
            cur += chunk.len() as u64;
            self.counters
                .fetched_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.counters
                .done_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.emit_progress(t, false);
        };
        // Bytes accepted before a failure are valid: they belong to the declared range of the
        // pinned object. Keep them so the retry continues from `cur`.
        if !buf.is_empty() {
            self.file
                .write_all_at(buf, buf_start - file_base)
                .map_err(|e| AttemptError::Failure(e.into()))?;
            buf.clear();
        }
        *pos = cur;
        outcome
    }

    /// A response that declares anything other than what was asked is an error, never data.
    fn check_response(
        &self,
        t: &Transfer<'_>,
        read: &RangeRead,
        want: &Range<u64>,
    ) -> Result<(), AttemptError> {
        let meta = t.meta;
        if let (Some(expected), Some(got)) = (&meta.etag, &read.etag)
            && strip_etag(expected) != strip_etag(got)
        {
            return Err(AttemptError::Source(SourceError::new(
                SourceErrorKind::Changed,
                format!("the source served etag {got}, the download started with {expected}"),
            )));
        }
        if let Some(total) = read.total_size
            && total != meta.size
        {
            return Err(AttemptError::Source(SourceError::new(
                SourceErrorKind::Changed,
                format!("the object is now {total} bytes, it was {}", meta.size),
            )));
        }
        if read.range == *want {
            return Ok(());
        }
        if read.range == (0..meta.size) {
            return Err(Failure::Fatal(Error::BadSource {
                key: self.key.to_owned(),
                detail: format!(
                    "the source ignored the request for bytes {}-{} and sent the whole object \
                     (HTTP 200 instead of 206); it does not support ranged reads, so use a part \
                     size of at least the object's size ({} bytes) with one job, or a server \
                     that honours Range",
                    want.start,
                    want.end - 1,
                    meta.size
                ),
            })
            .into());
        }
        Err(AttemptError::Source(SourceError::transient(format!(
            "asked for bytes {}-{}, the source declared bytes {}-{}",
            want.start,
            want.end - 1,
            read.range.start,
            read.range.end.saturating_sub(1)
        ))))
    }

    fn emit_progress(&self, t: &Transfer<'_>, force: bool) {
        if self.dl.progress.is_none() {
            return;
        }
        let now = Instant::now();
        {
            let mut last = lock(&t.last_progress);
            if !force && last.is_some_and(|l| now - l < self.dl.progress_interval) {
                return;
            }
            *last = Some(now);
        }
        self.dl.emit(&Event::Progress {
            done_bytes: self.counters.done_bytes.load(Ordering::Relaxed),
            total_bytes: t.layout.len,
        });
    }

    fn snapshot(&self, t: &Transfer<'_>) -> Checkpoint {
        let d = lock(&t.digests);
        let mut cp = Checkpoint::new(self.id.clone(), fingerprint(t.meta), t.layout);
        cp.done = d
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (i as u64, d)))
            .collect();
        cp
    }

    /// Re-reads `parts` from the temp file; returns those whose bytes no longer match their
    /// recorded digest (`full`: BLAKE3 and CRC-64; otherwise CRC-64 only, which is much cheaper).
    async fn find_damaged(
        &self,
        layout: &PartLayout,
        cp: &Checkpoint,
        parts: &[u64],
        full: bool,
    ) -> Result<Vec<u64>, Failure> {
        let mut damaged = Vec::new();
        let mut buf = vec![0u8; self.dl.buffer_size.min(4 << 20)];
        for &part in parts {
            let Some(expected) = cp.done.get(&part) else {
                continue;
            };
            let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Xz);
            let mut blake = full.then(blake3::Hasher::new);
            let (mut off, end) = (
                layout.part_offset(part),
                layout.part_offset(part) + layout.part_len(part),
            );
            while off < end {
                if self.halt.is_cancelled() {
                    return Err(Failure::Stopped);
                }
                let n = usize::try_from(end - off)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                self.file.read_exact_at(&mut buf[..n], off)?;
                crc.update(&buf[..n]);
                if let Some(b) = blake.as_mut() {
                    b.update(&buf[..n]);
                }
                off += n as u64;
                // Long verifications must not starve the rest of the runtime.
                tokio::task::yield_now().await;
            }
            let ok = crc.finalize() == expected.crc64
                && blake.is_none_or(|b| *b.finalize().as_bytes() == expected.blake3);
            if !ok {
                damaged.push(part);
            }
        }
        Ok(damaged)
    }

    fn combined_crc(&self, t: &Transfer<'_>) -> Result<u64, Failure> {
        let d = lock(&t.digests);
        let full = Crc64Appender::new(t.layout.part_size);
        let mut crc = 0u64;
        for (i, digest) in d.iter().enumerate() {
            let digest = digest.ok_or_else(|| {
                Failure::Fatal(Error::Config(format!(
                    "internal error: part {i} finished without a digest; please report this"
                )))
            })?;
            let len = t.layout.part_len(i as u64);
            crc = if len == t.layout.part_size {
                full.append(crc, digest.crc64)
            } else {
                crc64_combine(crc, digest.crc64, len)
            };
        }
        Ok(crc)
    }
}

enum AttemptError {
    /// The source failed; retried if its kind allows.
    Source(SourceError),
    /// The response broke the protocol (e.g. a body longer than declared): retried, but the
    /// part restarts from its first byte.
    Malformed(SourceError),
    /// Stop fetching this part with this outcome.
    Failure(Failure),
}

impl From<Failure> for AttemptError {
    fn from(f: Failure) -> Self {
        AttemptError::Failure(f)
    }
}

fn usize_of(n: u64) -> Result<usize, Failure> {
    usize::try_from(n).map_err(|_| {
        Failure::Fatal(Error::Config(format!(
            "{n} parts do not fit in memory on this platform; use a larger part size"
        )))
    })
}

/// Whether `path` is an existing file that starts with the checkpoint format's magic bytes.
fn is_checkpoint_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; checkpoint::codec::MAGIC.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == checkpoint::codec::MAGIC)
}

fn strip_etag(e: &str) -> &str {
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.trim_matches('"')
}

pub(crate) fn fingerprint(meta: &ObjectMeta) -> ObjectFingerprint {
    ObjectFingerprint {
        size: meta.size,
        etag: meta.etag.clone(),
        last_modified: meta.last_modified.map(timestamp),
        version_id: meta.version_id.clone(),
        crc64: meta.crc64,
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        },
        Err(e) => {
            let d: Duration = e.duration();
            let (secs, nanos) = if d.subsec_nanos() == 0 {
                (-(d.as_secs() as i64), 0)
            } else {
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
            };
            Timestamp { secs, nanos }
        }
    }
}

fn describe(f: &ObjectFingerprint) -> String {
    let mut s = format!("{} bytes", f.size);
    if let Some(e) = &f.etag {
        s.push_str(&format!(", etag {e}"));
    }
    if let Some(v) = &f.version_id {
        s.push_str(&format!(", version {v}"));
    }
    if let Some(t) = &f.last_modified {
        s.push_str(&format!(", modified at {}s", t.secs));
    }
    s
}
