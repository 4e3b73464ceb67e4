//! One download, from stat to rename. See `docs/ARCHITECTURE.md` for the lifecycle and the
//! invariants each step enforces.

mod commit;
mod fetch;
mod in_order;
mod share;
mod tuning;
mod verify;
mod whole;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use checkpoint::{
    Checkpoint, CheckpointId, CheckpointStore, ObjectFingerprint, PartDigest, PartLayout,
    PartialPart, StoredChecksum, TempFile, Timestamp,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::downloader::{Downloader, OnChange};
use crate::error::Error;
use crate::event::{Event, PartSizeReason, Report};
use crate::integrity::{Computed, CrcCombiner, CrcHasher, CrcSet, PartCrcs, Plan};
use crate::local_state::{Disk, Found, inspect, is_checkpoint_file};
use crate::part_file::{PART_SUFFIX, PartFile, identity_at, with_suffix};
use crate::plan::{auto_part_size, bounded_part_size, format_range, plan, resolve_range};
use crate::rate::RateLimiter;
use crate::recorded::{RecordedObject, object_id};
use crate::retry::JitterRng;
use crate::source::{ObjectMeta, ReadConditions, SourceError};
use commit::{Committer, Ticker};
pub use in_order::InOrderHashing;
use in_order::InOrderStream;
use share::Tail;
use tuning::Tuning;
use verify::{combined_crcs, crc64_verified};
use whole::FirstRead;

pub use commit::PROGRESS_STEP;

/// Runs a download to completion, restarting on object change per policy.
pub(crate) async fn run(
    dl: &Downloader,
    key: &str,
    dest: &Path,
    store: Option<Arc<dyn CheckpointStore>>,
) -> Result<Report, Error> {
    let started = Instant::now();
    let part_path = with_suffix(dest, PART_SUFFIX);
    let id = checkpoint_id(dl, key, dest);
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

    // Lock before reading any state or sending any request: a second download into DEST stops
    // here. An existing temp file is only opened; whether it is ours is settled next.
    let existing = PartFile::open_existing_locked(&part_path, dest)?;
    let found = inspect(store.as_deref(), &id, existing.as_ref(), &part_path)?;
    let disk = Disk {
        part_path,
        progress: AtomicBool::new(found.has_progress()),
        found: Mutex::new(Some(found)),
        file: existing.map(OnceLock::from).unwrap_or_default(),
        touched: AtomicBool::new(false),
    };
    let rng = Mutex::new(JitterRng::new(dl.retry.jitter_seed));
    let own_limiter = dl
        .rate_limit
        .filter(|_| dl.shared_rate.is_none())
        .map(RateLimiter::new);
    let limiter = match &dl.shared_rate {
        Some(shared) => Some(&*shared.bucket),
        None => own_limiter.as_ref(),
    };
    let announced = AtomicU64::new(0);
    let warnings = Warnings::default();
    let mut restarts = 0u32;
    let mut single_stream = false;
    let result = loop {
        let attempt = Attempt {
            dl,
            key,
            id: &id,
            store: store.as_deref(),
            shared_store: store.clone(),
            background: BackgroundSync::default(),
            disk: &disk,
            rng: &rng,
            limiter,
            announced: &announced,
            halt: dl.cancel.child_token(),
            counters: Counters::default(),
            warnings: &warnings,
            single_stream,
            tuning: Tuning::new(dl),
        };
        match attempt.run(restarts, started).await {
            Err(Failure::NoRanges) if !single_stream => {
                // Nothing a part fetched is worth keeping under the new layout.
                disk.touched(false);
                single_stream = true;
                warnings.warn(
                    dl,
                    "server does not support ranges: one connection, resumes from the start".into(),
                );
                continue;
            }
            Err(Failure::NoRanges) => {
                break Err(Error::Config(
                    "internal error: the source ignored the range of the one whole-object \
                     request; please report this"
                        .into(),
                ));
            }
            Err(Failure::Changed(detail)) => {
                // What is on disk is the old version's: worth nothing to a later run.
                disk.touched(false);
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
    if let Err(e) = &result {
        disk.after_failure(store.as_deref(), &id, e);
    }
    result
}

/// Start a background sync after this many bytes, so the final fsync has only the tail to
/// write instead of the whole file (on a fast link, seconds of dirty pages).
const SYNC_EVERY_BYTES: u64 = 64 << 20;

/// At most one fsync of the temp file and checkpoint runs on the blocking pool while the
/// download goes on; its failure stops the download at the next part. Each attempt has its
/// own, and drains it before it returns: a sync still running when the checkpoint is replaced
/// or deleted would act on the next attempt's checkpoint (or on none).
#[derive(Debug, Default, Clone)]
struct BackgroundSync {
    in_flight: Arc<AtomicBool>,
    error: Arc<Mutex<Option<Error>>>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl BackgroundSync {
    /// Waits for the sync in flight, if any, and returns its failure.
    async fn drain(&self) -> Result<(), Error> {
        let task = lock(&self.task).take();
        if let Some(task) = task {
            // The closure catches every error; a panic in it (a bug) leaves nothing to undo.
            let _ = task.await;
        }
        match lock(&self.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The warnings of one download, each emitted once as [`Event::Warning`].
#[derive(Debug, Default)]
struct Warnings(Mutex<Vec<String>>);

impl Warnings {
    fn warn(&self, dl: &Downloader, message: String) {
        let mut all = lock(&self.0);
        if all.contains(&message) {
            return;
        }
        tracing::warn!(%message);
        all.push(message.clone());
        drop(all);
        dl.emit(&Event::Warning { message });
    }

    fn all(&self) -> Vec<String> {
        lock(&self.0).clone()
    }
}

/// Why an attempt stopped early.
#[derive(Debug)]
enum Failure {
    /// The source ignored a part's range and sent the whole object: download it as one
    /// stream instead.
    NoRanges,
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
    background: BackgroundSync,
    disk: &'a Disk,
    rng: &'a Mutex<JitterRng>,
    limiter: Option<&'a RateLimiter>,
    /// The part size last reported with `PartSizeChanged` (0: none), so that it is said once
    /// per download, not once per attempt.
    announced: &'a AtomicU64,
    /// Cancelled by the caller's token or by the first worker that fails.
    halt: CancellationToken,
    counters: Counters,
    warnings: &'a Warnings,
    /// The source ignores ranges: the whole object (or range) is one part.
    single_stream: bool,
    /// How many workers claim parts (`--jobs auto`), and the requests' latency.
    tuning: Tuning,
}

/// State shared by the workers of one attempt.
struct Transfer<'a> {
    file: &'a PartFile,
    meta: &'a ObjectMeta,
    layout: PartLayout,
    conditions: ReadConditions,
    /// What this download is checked against, and which CRCs each part computes.
    checks: &'a Plan,
    digests: Mutex<Vec<Option<PartDigest>>>,
    /// Each done part's CRCs (those of `checks.crcs`; CRC-64/XZ is its digest's).
    crcs: Mutex<Vec<PartCrcs>>,
    last_progress: Mutex<Option<Instant>>,
    last_sync: Mutex<Instant>,
    /// Bytes of parts done since the last sync started.
    unsynced: AtomicU64,
    /// Beginnings of parts saved by an earlier run, taken by the worker that claims the part.
    partial: Mutex<BTreeMap<u64, PartialPart>>,
    /// Records the beginnings of parts in flight.
    committer: Committer,
    /// Hashes the in-order digests as the bytes arrive (one part) or while parts complete in
    /// order (several), if the plan has any.
    in_order: Option<InOrderStream>,
    /// The response of a one-part object's first read (`whole.rs`), for part 0's worker.
    first_read: Mutex<Option<FirstRead>>,
    /// The parts in flight, whose ends workers without a part take over (`share.rs`).
    tail: Tail,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What names this download's checkpoint: the source, the key, the version and range asked
/// for, and the (resolved) destination.
pub(crate) fn checkpoint_id(dl: &Downloader, key: &str, dest: &Path) -> CheckpointId {
    CheckpointId {
        source: dl.source.identity(),
        key: key.to_owned(),
        version_id: dl.version_id.clone(),
        range: dl.range,
        destination: dest.to_string_lossy().into_owned(),
    }
}

/// What the first attempt makes of the state it found.
enum Accepted {
    /// Download every part into a new (or emptied) temp file.
    Fresh,
    /// Resume from this checkpoint; the temp file is open and claimed.
    Resume(Checkpoint),
    /// A run renamed the finished file over DEST and stopped before deleting its checkpoint.
    Complete(Checkpoint),
}

impl<'a> Attempt<'a> {
    async fn run(&self, restarts: u32, started: Instant) -> Result<Report, Failure> {
        let dl = self.dl;
        // A listed object's metadata stands in for the first stat when it names the version
        // (an etag) that every read can be pinned to; a restart (the object changed since)
        // asks the source again. A listing without etags (s3s-fs's) gets the stat a single
        // download gets: compared with it, the stat before the rename would otherwise see an
        // etag the listing never had, take it for a change and download the object twice.
        // A listed object that fits one part is read first, in one request that also
        // describes it (`whole.rs`): no stat, with or without a listed etag.
        let (meta, mut first_read) = match (&dl.listed, restarts) {
            (Some(listed), 0) if self.reads_whole_at_once(listed) => {
                let (meta, first) = self.read_whole(listed).await?;
                (meta, Some(first))
            }
            (Some(listed), 0) if listed.etag.is_some() => (listed.clone(), None),
            _ => (self.stat().await?, None),
        };
        let range = resolve_range(dl.range, meta.size).map_err(|p| Error::InvalidRange {
            key: self.key.to_owned(),
            range: format_range(dl.range),
            size: meta.size,
            reason: p.0,
        })?;
        if meta.etag.is_none() && meta.last_modified.is_none() && meta.version_id.is_none() {
            self.warnings.warn(
                dl,
                "the server sends neither ETag nor Last-Modified: the download is pinned only by \
                 the object's size, so a change that keeps the size would go unnoticed unless a \
                 checksum verifies the file (--checksum)"
                    .into(),
            );
        }
        let fingerprint = fingerprint(&meta);
        let whole_object = range.start == 0 && range.end == meta.size;
        let mut checks = Plan::new(
            &meta.checksums,
            &dl.expected,
            whole_object,
            meta.checksum_note.as_deref(),
        );
        if dl.require_checksum && checks.checks.is_empty() {
            // Before the checkpoint is even looked at: nothing is touched.
            return Err(Error::Unverifiable {
                key: self.key.to_owned(),
                reason: checks.unverified,
            }
            .into());
        }
        let layout = self.choose_layout(&range, &fingerprint, &mut checks)?;

        // Only the first attempt sees what earlier runs left; a restart starts from zero.
        let found = lock(&self.disk.found).take();
        if layout.part_count != 1 || layout.part_range(0) != (0..meta.size) {
            // Planned otherwise (parts fitted to a composite checksum): the read is dropped.
            first_read = None;
        }
        let (file, mut checkpoint, from_disk) =
            match self.accept_checkpoint(found, &fingerprint, &layout)? {
                Accepted::Fresh => {
                    let cp = Checkpoint::new(self.id.clone(), fingerprint, layout);
                    let (file, cp) = self.start_fresh(cp)?;
                    (file, cp, false)
                }
                Accepted::Resume(cp) => {
                    first_read = None;
                    (self.temp_file()?, cp, true)
                }
                Accepted::Complete(cp) => {
                    return self
                        .finish_completed(cp, &meta, &checks, range, restarts, started)
                        .await;
                }
            };
        let resumed = !checkpoint.done.is_empty() || !checkpoint.partial.is_empty();
        let mut verified_on_resume = false;
        // CRCs of reused parts, computed while re-reading them.
        let mut reused_crcs = Vec::new();
        if resumed && dl.verify_on_resume {
            let done: Vec<u64> = checkpoint.done.keys().copied().collect();
            let (damaged, good) = self
                .find_damaged(file, &layout, &checkpoint, &done, true, checks.crcs)
                .await?;
            reused_crcs = good;
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
        if from_disk && let Some(store) = self.store {
            // A fresh snapshot: compacts the journal and starts this run's records (and
            // records the temp file's identity, if an older format did not).
            checkpoint.temp_file = TempFile::Created(file.identity()?);
            store.save(&checkpoint)?;
            self.disk
                .touched(!checkpoint.done.is_empty() || !checkpoint.partial.is_empty());
        }

        let reused_parts: Vec<u64> = checkpoint.done.keys().copied().collect();
        // Saved beginnings count as reused; one found damaged when its part is claimed is
        // taken off again.
        let reused_bytes = checkpoint.saved_bytes();
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
        let mut crcs = vec![PartCrcs::default(); digests.len()];
        for (&i, d) in &checkpoint.done {
            digests[usize_of(i)?] = Some(*d);
            crcs[usize_of(i)?].0[0] = d.crc64;
        }
        for (i, c) in reused_crcs {
            crcs[usize_of(i)?] = c;
        }
        let in_order = self.start_in_order(file, &layout, &checks, checkpoint.done.keys().copied());
        let partial = std::mem::take(&mut checkpoint.partial);
        drop(checkpoint);
        let committer = match &self.shared_store {
            Some(store) => Committer::new(
                store.clone(),
                self.id.clone(),
                self.disk.part_path.clone(),
                dl.sync_interval,
                digests.len(),
            ),
            None => Committer::none(),
        };
        let mut transfer = Transfer {
            file,
            meta: &meta,
            layout,
            conditions: ReadConditions {
                if_match: meta.etag.clone(),
                version_id: meta.version_id.clone().or_else(|| dl.version_id.clone()),
                if_unmodified_since: meta.last_modified,
            },
            checks: &checks,
            digests: Mutex::new(digests),
            crcs: Mutex::new(crcs),
            last_progress: Mutex::new(None),
            last_sync: Mutex::new(Instant::now()),
            unsynced: AtomicU64::new(0),
            partial: Mutex::new(partial),
            committer,
            in_order,
            first_read: Mutex::new(first_read),
            // A source that ignores ranges is one stream; under a rate limit of our own more
            // connections cannot make the tail any faster.
            tail: Tail::new(dl.share_tail && !self.single_stream && self.limiter.is_none()),
        };
        // Every byte comes from the first read's response or from retries pinned to the etag
        // it carried: the object cannot have changed in between unnoticed.
        let read_pinned = lock(&transfer.first_read)
            .as_ref()
            .and_then(|f| f.read.as_ref())
            .is_some_and(|r| r.etag.is_some());

        // Parts with a saved beginning first: they finish sooner, and a run stopped again
        // leaves no more partial parts than it had workers.
        let missing: Vec<u64> = {
            let d = lock(&transfer.digests);
            let started = lock(&transfer.partial);
            let (mut first, rest): (Vec<u64>, Vec<u64>) = (0..layout.part_count)
                .filter(|&i| d[i as usize].is_none())
                .partition(|i| started.contains_key(i));
            first.extend(rest);
            first
        };
        self.run_workers(&transfer, &missing).await?;

        // Reused parts were hashed when received, but the temp file may have been damaged
        // since: check their bytes on disk (CRC-64, cheap) and re-fetch what no longer matches.
        if !verified_on_resume && !reused_parts.is_empty() {
            let snapshot = self.snapshot(&transfer);
            let (damaged, good) = self
                .find_damaged(file, &layout, &snapshot, &reused_parts, false, checks.crcs)
                .await?;
            {
                let mut c = lock(&transfer.crcs);
                for (p, crcs) in good {
                    c[p as usize] = crcs;
                }
            }
            if !damaged.is_empty() {
                // Parts fetched again after the stream may have hashed their damaged bytes.
                transfer.in_order = None;
                {
                    let mut d = lock(&transfer.digests);
                    for &p in &damaged {
                        d[p as usize] = None;
                    }
                }
                transfer.committer.undone(&damaged);
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

        let mut computed = combined_crcs(&transfer, &checks)?;
        if checks.needs_in_order_pass() {
            let streamed = match transfer.in_order.take() {
                Some(stream) => tokio::select! {
                    biased;
                    _ = self.halt.cancelled() => return Err(Failure::Stopped),
                    v = stream.finish() => v?,
                },
                None => None,
            };
            match streamed {
                Some(values) => {
                    computed.in_order.extend(values.in_order);
                    computed.composite.extend(values.composite);
                }
                None => {
                    self.hash_in_order(
                        |buf, off| file.read_exact_at(buf, off),
                        layout.len,
                        &checks,
                        &mut computed,
                    )
                    .await?;
                }
            }
        }
        // On a mismatch the checkpoint and temp file hold bytes that cannot be trusted: the
        // failure removes both, so the next run starts from zero instead of repeating it.
        let verification = self.verify(&checks, &computed)?;
        let crc = computed.crcs.0[0];
        // Bytes read only from responses pinned to and checked against the etag a listing
        // gave are that version's (`Downloader::listed`): no stat needed to confirm it.
        let pinned_to_listing = restarts == 0
            && dl.listed.as_ref().is_some_and(|l| l.etag.is_some())
            && meta.etag.is_some();
        if !verification.is_verified() && !pinned_to_listing && !read_pinned {
            // Nothing vouched for the bytes as a whole (a digest the caller gave does, as a
            // store's checksum does): make sure the object did not change meanwhile.
            self.confirm_unchanged(&meta).await?;
        }

        let dest = Path::new(&self.id.destination);
        if dl.keep_modified_time
            && let Some(at) = meta.last_modified
        {
            // Before the rename, so the file appears with it: nothing can see (or a crash
            // leave) the object's bytes at DEST with another time.
            file.set_modified(at)?;
        }
        if dl.record_object && range.start == 0 && range.end == meta.size {
            // Before the rename too: the file never appears without its record. A file system
            // without user extended attributes keeps none (the skip rules then use size and
            // modification time).
            let recorded = file.record_object(|modified_ns| RecordedObject {
                object: object_id(&dl.source.identity(), self.key),
                size: layout.len,
                etag: meta.etag.clone(),
                version_id: meta.version_id.clone(),
                crc64: crc,
                modified_ns,
            });
            if !recorded {
                tracing::debug!(key = self.key, "the object's identity was not recorded");
            }
        }
        file.commit(dest)?;
        self.delete_after_commit();
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
            crc64_verified: crc64_verified(&verification),
            verification,
            warnings: self.warnings.all(),
            elapsed: started.elapsed(),
            jobs: self.tuning.used(),
            first_byte: self.tuning.first_byte(),
        };
        self.emit_progress(&transfer, true);
        dl.emit(&Event::Completed(Arc::new(report.clone())));
        tracing::info!(key = self.key, crc64 = crc, "download complete");
        Ok(report)
    }

    /// The in-order hashing of a plan that needs it, streamed as parts complete unless the
    /// caller asked for one pass at the end; `None` then, or when no second handle on the
    /// temp file can be had for the hashing thread (the pass at the end does the work).
    fn start_in_order(
        &self,
        file: &PartFile,
        layout: &PartLayout,
        checks: &Plan,
        done: impl IntoIterator<Item = u64>,
    ) -> Option<InOrderStream> {
        if !checks.needs_in_order_pass() || self.dl.in_order_hashing != InOrderHashing::Streamed {
            return None;
        }
        match InOrderStream::start(file, *layout, checks, done) {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::debug!(error = %e, "in-order digests hashed after the download instead");
                None
            }
        }
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

    /// For bytes no store checksum covered, the validators pinned at the start were the only
    /// guard: one more stat, just before the rename, shows whether the object changed at any
    /// time during the download (a server without etags does not refuse a same-size rewrite,
    /// but its last-modified time moves).
    async fn confirm_unchanged(&self, pinned: &ObjectMeta) -> Result<(), Failure> {
        let now = self.stat().await?;
        let (then, now) = (fingerprint(pinned), fingerprint(&now));
        if then != now {
            return Err(Failure::Changed(format!(
                "during the download (then: {}; just before the final rename: {})",
                describe(&then),
                describe(&now)
            )));
        }
        Ok(())
    }

    /// The part layout: the part size asked for, raised to keep within `max_parts`; or, when
    /// this download's saved progress of this very object has done parts (seen by the first
    /// attempt only), the layout it was made with, so that no saved byte is fetched again
    /// (unless the caller asked to start over). A size other than the one asked for is
    /// reported once.
    fn choose_layout(
        &self,
        range: &Range<u64>,
        fingerprint: &ObjectFingerprint,
        checks: &mut Plan,
    ) -> Result<PartLayout, Failure> {
        let dl = self.dl;
        if self.single_stream {
            // The server ignores ranges: one part, the whole range, read as one stream.
            let layout = plan(range.clone(), (range.end - range.start).max(1))
                .ok_or_else(|| Error::Config("part size is 0 bytes".into()))?;
            return Ok(layout);
        }
        let len = range.end - range.start;
        let asked = self.asked_part_size(len);
        let wanted = bounded_part_size(len, asked, dl.max_parts);
        // Parts aligned to a composite checksum's upload parts, when it has one (at most 4x
        // smaller than `wanted`, so at most 4 x max_parts parts).
        let mut fitted = checks.clone();
        let size = fitted.fit_parts(wanted);
        let planned = plan(range.clone(), size)
            .ok_or_else(|| Error::Config("part size is 0 bytes".into()))?;
        let saved = if dl.start_over {
            None
        } else {
            self.saved_layout(fingerprint)
        }
        .filter(|saved| {
            *saved != planned
                && (saved.start, saved.len) == (planned.start, planned.len)
                && saved.part_count <= dl.max_parts
        });
        let (layout, reason) = match saved {
            Some(saved) => {
                // Composite CRCs are combined from the parts only when the saved parts align
                // with the upload parts; otherwise the plan as made hashes them in order.
                let mut aligned = checks.clone();
                if aligned.fit_parts(saved.part_size) == saved.part_size {
                    *checks = aligned;
                }
                (saved, PartSizeReason::Checkpoint)
            }
            None => {
                *checks = fitted;
                (
                    planned,
                    PartSizeReason::MaxParts {
                        max_parts: dl.max_parts,
                    },
                )
            }
        };
        let differs = match reason {
            PartSizeReason::MaxParts { .. } => wanted != asked,
            _ => true,
        };
        if differs && self.announced.swap(layout.part_size, Ordering::Relaxed) != layout.part_size {
            tracing::info!(
                key = self.key,
                requested = asked,
                used = layout.part_size,
                ?reason,
                "part size changed"
            );
            dl.emit(&Event::PartSizeChanged {
                requested: asked,
                used: layout.part_size,
                parts: layout.part_count,
                reason,
            });
        }
        Ok(layout)
    }

    /// The part size asked for an object of `len` bytes (before `max_parts` and composite
    /// checksums adjust it).
    fn asked_part_size(&self, len: u64) -> u64 {
        if self.dl.auto_part_size {
            // Cut for the connections ordinary growth reaches: the few downloads that grow
            // past them (loss-bound flows) keep the parts of one that does not.
            auto_part_size(
                len,
                self.tuning
                    .workers(usize::MAX)
                    .min(crate::tune::AUTO_JOBS_WIDE),
            )
        } else {
            self.dl.part_size
        }
    }

    /// The layout of the saved progress of this download and object, if it has done parts.
    fn saved_layout(&self, fingerprint: &ObjectFingerprint) -> Option<PartLayout> {
        match lock(&self.disk.found).as_ref()? {
            Found::Checkpoint(loaded)
                if loaded.checkpoint.id == *self.id
                    && same_object(&loaded.checkpoint.object, fingerprint)
                    && (!loaded.checkpoint.done.is_empty()
                        || !loaded.checkpoint.partial.is_empty()) =>
            {
                Some(loaded.checkpoint.layout)
            }
            _ => None,
        }
    }

    /// Decides whether the checkpoint found on disk may be trusted (DESIGN invariant 5).
    fn accept_checkpoint(
        &self,
        found: Option<Found>,
        fingerprint: &ObjectFingerprint,
        layout: &PartLayout,
    ) -> Result<Accepted, Failure> {
        let Some(store) = self.store else {
            return Ok(Accepted::Fresh);
        };
        let location = store.location(self.id);
        let discard = |reason: String| {
            tracing::warn!(%location, %reason, "discarding checkpoint");
            self.dl.emit(&Event::CheckpointDiscarded {
                location: location.clone(),
                reason,
            });
            Ok(Accepted::Fresh)
        };
        let loaded = match found {
            None | Some(Found::Nothing) => return Ok(Accepted::Fresh),
            Some(Found::Damaged(reason)) => return discard(reason),
            Some(Found::Checkpoint(loaded)) => *loaded,
        };
        let cp = loaded.checkpoint;
        if cp.id != *self.id {
            return discard(format!(
                "it belongs to another download ({} {} into {})",
                cp.id.source, cp.id.key, cp.id.destination
            ));
        }
        if self.dl.start_over {
            return discard("starting over was asked for".into());
        }
        if !same_object(&cp.object, fingerprint) {
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
        let Some(file) = self.disk.file.get() else {
            // No temp file: a run that renamed the finished file over DEST and was stopped
            // before deleting the checkpoint left DEST as the very file the checkpoint claims.
            let dest = Path::new(&self.id.destination);
            if let TempFile::Created(claimed) = cp.temp_file
                && cp.done.len() as u64 == layout.part_count
                && identity_at(dest)
                    .is_some_and(|(d, len)| d.same_as(&claimed) && len == layout.len)
            {
                return Ok(Accepted::Complete(cp));
            }
            return discard(format!(
                "the temp file {} is missing, so the checkpoint's parts are gone",
                self.disk.part_path.display()
            ));
        };
        let have = file.len()?;
        if have != layout.len {
            return discard(format!(
                "the temp file {} has {have} bytes, the checkpoint expects {}",
                file.path().display(),
                layout.len
            ));
        }
        for note in loaded.notes {
            self.dl.emit(&Event::CheckpointNote {
                location: location.clone(),
                note,
            });
        }
        Ok(Accepted::Resume(cp))
    }

    /// Deletes the checkpoint of a download whose file is in place. DEST is complete and
    /// verified either way: a checkpoint that cannot be deleted is reported, not a failure (the
    /// next run recognises DEST as its finished file and removes it).
    fn delete_after_commit(&self) {
        let Some(store) = self.store else {
            return;
        };
        if let Err(e) = store.delete(self.id) {
            tracing::warn!(key = self.key, error = %e, "cannot delete the checkpoint");
            self.dl.emit(&Event::CheckpointNote {
                location: store.location(self.id),
                note: format!(
                    "the download is complete, but its checkpoint could not be deleted ({e}); \
                     delete it, or run the same download again, which removes it"
                ),
            });
        }
    }

    /// The temp file this download holds.
    fn temp_file(&self) -> Result<&'a PartFile, Failure> {
        self.disk.file.get().ok_or_else(|| {
            Failure::Fatal(Error::Config(
                "internal error: no temp file to resume into; please report this".into(),
            ))
        })
    }

    /// Starts from zero. The checkpoint claims the temp file before the file is created, so a
    /// crash can never leave a temp file that no checkpoint claims (which the next run would
    /// have to refuse), then records the file's identity before the file gets any bytes.
    fn start_fresh(&self, checkpoint: Checkpoint) -> Result<(&'a PartFile, Checkpoint), Failure> {
        let disk = self.disk;
        if disk.file.get().is_none() {
            if let Some(store) = self.store {
                store.save(&checkpoint)?;
                disk.touched(false);
            }
            let dest = Path::new(&self.id.destination);
            // Without a checkpoint nothing could resume the file: it stays unnamed until done.
            let unnamed = match self.store {
                None => PartFile::create_unnamed(&disk.part_path)?,
                Some(_) => None,
            };
            let created = match unnamed {
                Some(file) => Some(file),
                None => PartFile::create_locked(&disk.part_path, dest)?,
            }
            .ok_or_else(|| Error::ForeignFile {
                path: disk.part_path.clone(),
                why: "appeared while this download was starting (another program or \
                          download created it)"
                    .into(),
            })?;
            disk.touched(false);
            let _ = disk.file.set(created);
        }
        let file = self.temp_file()?;
        let checkpoint = checkpoint.with_temp_file(TempFile::Created(file.identity()?));
        if let Some(store) = self.store {
            // A fresh snapshot: starts this run's records.
            store.save(&checkpoint)?;
        }
        disk.touched(false);
        file.reset(checkpoint.layout.len)?;
        Ok((file, checkpoint))
    }

    /// Finishes a download whose file is already DEST (see [`Accepted::Complete`]): nothing is
    /// fetched; the checkpoint's digests give the CRC-64; any other check reads DEST back.
    async fn finish_completed(
        &self,
        cp: Checkpoint,
        meta: &ObjectMeta,
        checks: &Plan,
        range: Range<u64>,
        restarts: u32,
        started: Instant,
    ) -> Result<Report, Failure> {
        let dl = self.dl;
        let layout = cp.layout;
        let mut crcs = PartCrcs::default();
        let mut comb = CrcCombiner::new(CrcSet::default(), layout.part_size);
        for (&i, d) in &cp.done {
            let mut part = PartCrcs::default();
            part.0[0] = d.crc64;
            comb.push(&part, layout.part_len(i));
        }
        crcs.0[0] = comb.finish().0[0];
        // Only CRC-64/XZ is at hand per part: composites are computed from the file.
        let checks = &checks.all_composites_in_order();
        let mut computed = Computed::default();
        if checks.crcs.has_extra() || checks.needs_in_order_pass() {
            let dest = Path::new(&self.id.destination);
            let file = std::fs::File::open(dest).map_err(|e| Error::io("open", dest, e))?;
            let extra = Mutex::new(CrcHasher::new(checks.crcs));
            let read_at = |buf: &mut [u8], off: u64| {
                std::os::unix::fs::FileExt::read_exact_at(&file, buf, off)
                    .map_err(|e| Error::io("read", dest, e))?;
                lock(&extra).update(buf);
                Ok(())
            };
            self.hash_in_order(read_at, layout.len, checks, &mut computed)
                .await?;
            crcs = lock(&extra).finish(crcs.0[0]);
        }
        computed.crcs = crcs;
        let verification = self.verify(checks, &computed)?;
        let crc = crcs.0[0];
        dl.emit(&Event::Started {
            key: self.key.to_owned(),
            total_bytes: layout.len,
            reused_bytes: layout.len,
            part_size: layout.part_size,
            parts: layout.part_count,
            parts_reused: layout.part_count,
            resumed: true,
        });
        dl.emit(&Event::CheckpointNote {
            location: self.store.map(|s| s.location(self.id)).unwrap_or_default(),
            note: format!(
                "{} is already this download's finished file (an earlier run was stopped \
                 after renaming it, before deleting the checkpoint); nothing to fetch",
                self.id.destination
            ),
        });
        self.delete_after_commit();
        let report = Report {
            key: self.key.to_owned(),
            destination: PathBuf::from(&self.id.destination),
            object: meta.clone(),
            range,
            fetched_bytes: 0,
            reused_bytes: layout.len,
            parts: layout.part_count,
            parts_reused: layout.part_count,
            retries: 0,
            restarts,
            crc64: crc,
            crc64_verified: crc64_verified(&verification),
            verification,
            warnings: self.warnings.all(),
            elapsed: started.elapsed(),
            jobs: self.tuning.used(),
            first_byte: self.tuning.first_byte(),
        };
        dl.emit(&Event::Progress {
            done_bytes: layout.len,
            total_bytes: layout.len,
        });
        dl.emit(&Event::Completed(Arc::new(report.clone())));
        Ok(report)
    }

    /// Runs `concurrency` workers that claim parts from `queue` in order.
    ///
    /// Workers are futures polled by this one (not spawned tasks), so dropping the download
    /// stops every request at once, exactly like a crash, with nothing left running.
    async fn run_workers(&self, t: &Transfer<'_>, queue: &[u64]) -> Result<(), Failure> {
        let next = AtomicUsize::new(0);
        self.tuning.begin();
        let n = self.tuning.workers(queue.len());
        t.tail.set_workers(n);
        let mut workers: FuturesUnordered<_> =
            (0..n).map(|i| self.worker(t, queue, &next, i)).collect();
        let mut first: Option<Failure> = None;
        let workers_ended = CancellationToken::new();
        let collect = async {
            while let Some(result) = workers.next().await {
                if let Err(f) = result {
                    if first.is_none() || matches!(first, Some(Failure::Stopped)) {
                        first = Some(f);
                    }
                    self.halt.cancel();
                }
            }
            workers_ended.cancel();
        };
        let drive = self.tuning.drive(self, &next, queue.len(), &workers_ended);
        futures::future::join(collect, drive).await;
        drop(workers);
        // Every beginning the workers submitted (also when they stopped) is recorded now.
        if let Err(f) = t.committer.drain().await
            && first.is_none()
        {
            first = Some(f);
        }
        if let Err(e) = self.background.drain().await
            && first.is_none()
        {
            first = Some(e.into());
        }
        self.sync(t)?;
        match first {
            None if self.halt.is_cancelled() => Err(self.cancelled(t)),
            None => Ok(()),
            Some(Failure::Stopped) => Err(self.cancelled(t)),
            Some(f) => Err(f),
        }
    }

    fn cancelled(&self, t: &Transfer<'_>) -> Failure {
        // Every byte received is recorded by now (the workers submitted their parts'
        // beginnings and the committer drained), except helpers' bytes beyond a gap
        // (`share.rs`): say how many are kept, once more.
        let unsaved = t.tail.unsaved();
        self.counters
            .done_bytes
            .fetch_sub(unsaved, Ordering::Relaxed);
        self.emit_progress(t, true);
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
        index: usize,
    ) -> Result<(), Failure> {
        // Allocated once the worker is let in: `--jobs auto` runs workers it may never open.
        let mut buf = Vec::new();
        let mut ticker = Ticker::new();
        loop {
            if self.halt.is_cancelled() {
                return Err(Failure::Stopped);
            }
            self.tuning.admit(index, &self.halt).await?;
            buf.reserve(self.dl.buffer_size);
            // A permit of the shared connection limit, if any, before claiming a part: a
            // worker waiting for one holds no part another worker could fetch. The first
            // read's permit (one part: this worker's) is taken over, never doubled.
            let first = lock(&t.first_read).as_mut().and_then(|f| f.permit.take());
            let permit = match first {
                Some(p) => Some(p),
                None => self.connection_permit().await?,
            };
            let Some(&part) = queue.get(next.fetch_add(1, Ordering::Relaxed)) else {
                drop(permit);
                return self.help(t, index, &mut buf, &mut ticker).await;
            };
            self.tuning.claimed(part);
            // Per worker (one connection each), so a `-vv` log shows when each connection
            // idles between parts and at the end (the WAN timeline of BENCHMARKS.md).
            tracing::debug!(worker = index, part, "part claimed");
            let fetched = self.fetch_part(t, part, &mut buf, &mut ticker).await;
            self.tuning.released(part);
            drop(permit);
            if let Some((digest, crcs)) = fetched? {
                self.part_done(t, part, digest, crcs)?;
                tracing::debug!(worker = index, part, "part done");
            }
        }
    }

    /// A permit of the download's shared connection limit, if it has one (`None` without),
    /// waited for unless the download is halted.
    async fn connection_permit(
        &self,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, Failure> {
        let Some(limit) = &self.dl.connections else {
            return Ok(None);
        };
        tokio::select! {
            biased;
            _ = self.halt.cancelled() => Err(Failure::Stopped),
            p = limit.acquire() => Ok(Some(p)),
        }
    }

    /// Every part is claimed: takes over the ends of the slowest parts in flight while any is
    /// worth it and this worker is among the connections the tuner allows (`share.rs`).
    async fn help(
        &self,
        t: &Transfer<'_>,
        index: usize,
        buf: &mut Vec<u8>,
        ticker: &mut Ticker,
    ) -> Result<(), Failure> {
        if !t.tail.enabled() {
            return Ok(());
        }
        loop {
            if self.halt.is_cancelled() {
                return Err(Failure::Stopped);
            }
            if !self.tuning.may_help(index) || !t.tail.busy() {
                return Ok(());
            }
            let permit = self.connection_permit().await?;
            let taken = t
                .tail
                .take(self.tuning.mean_latency(), self.tuning.connections());
            let Some((share, range)) = taken else {
                drop(permit);
                tokio::select! {
                    biased;
                    _ = self.halt.cancelled() => return Err(Failure::Stopped),
                    _ = tokio::time::sleep(share::POLL) => {}
                }
                continue;
            };
            tracing::debug!(
                worker = index,
                part = share.part,
                from = range.start,
                to = range.end,
                "part shared"
            );
            let completed = self.fetch_share(t, share, range, buf, ticker).await?;
            drop(permit);
            if let Some((digest, crcs)) = completed {
                self.part_done(t, share.part, digest, crcs)?;
                tracing::debug!(worker = index, part = share.part, "part done");
            }
        }
    }

    /// Records a part whose bytes are all written (DESIGN invariant 3: data before record).
    fn part_done(
        &self,
        t: &Transfer<'_>,
        part: u64,
        digest: PartDigest,
        crcs: PartCrcs,
    ) -> Result<(), Failure> {
        if let Some(store) = self.store {
            t.committer.done(part, || {
                store.record(self.id, part, digest)?;
                store.flush(self.id)?;
                Ok(())
            })?;
            self.disk.progress.store(true, Ordering::Relaxed);
        }
        lock(&t.digests)[part as usize] = Some(digest);
        lock(&t.crcs)[part as usize] = crcs;
        if let Some(stream) = &t.in_order {
            stream.part_done(part);
        }
        self.dl.emit(&Event::PartDone {
            part,
            range: t.layout.part_range(part),
        });
        // Without a checkpoint no record claims the bytes, so syncing them early buys nothing
        // (and an unnamed temp file has no name to open a second descriptor by).
        if let Some(interval) = self.dl.sync_interval
            && self.store.is_some()
        {
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
        let path = self.disk.part_path.clone();
        let store = self.shared_store.clone();
        let id = self.id.clone();
        let background = self.background.clone();
        let mut task = lock(&self.background.task);
        *task = Some(tokio::task::spawn_blocking(move || {
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
        }));
    }

    /// Group commit for power-loss durability: data first, then the records that claim it.
    fn sync(&self, t: &Transfer<'_>) -> Result<(), Failure> {
        if self.dl.sync_interval.is_some() {
            t.file.sync_data()?;
            if let Some(store) = self.store {
                store.sync(self.id)?;
            }
        }
        *lock(&t.last_sync) = Instant::now();
        Ok(())
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
}

fn usize_of(n: u64) -> Result<usize, Failure> {
    usize::try_from(n).map_err(|_| {
        Failure::Fatal(Error::Config(format!(
            "{n} parts do not fit in memory on this platform; use a larger part size"
        )))
    })
}

pub(crate) fn fingerprint(meta: &ObjectMeta) -> ObjectFingerprint {
    ObjectFingerprint {
        size: meta.size,
        etag: meta.etag.clone(),
        last_modified: meta.last_modified.map(timestamp),
        version_id: meta.version_id.clone(),
        checksums: meta
            .checksums
            .iter()
            .map(|c| StoredChecksum {
                kind: c.stored_kind(),
                value: c.value.clone(),
            })
            .collect(),
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

/// Whether a checkpoint's fingerprint describes the object now stat'ed. One recorded without
/// checksums (by a version that did not read this store's, or when the store withheld them)
/// matches an object with the same size, etag, time and version whatever checksums it has now:
/// those fields pin the object as they did then, and the checksums only add a check.
fn same_object(then: &ObjectFingerprint, now: &ObjectFingerprint) -> bool {
    then == now
        || (then.checksums.is_empty()
            && then.size == now.size
            && then.etag == now.etag
            && then.last_modified == now.last_modified
            && then.version_id == now.version_id)
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
