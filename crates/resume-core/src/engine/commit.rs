//! Progress below the part: the beginnings of parts in flight, recorded as they grow.
//!
//! Each worker counts the bytes it receives; every [`PROGRESS_STEP`] of them it writes out
//! its buffer and *submits* the beginning of its part (bytes received from the part's first
//! byte, their CRC-64 and BLAKE3). Before it submits, it waits until its previous submission
//! is recorded. So at any moment everything a worker received up to its second-to-last
//! submission is recorded, and a `kill -9` loses at most `2 × PROGRESS_STEP` (1 MiB) of each
//! part in flight, whatever the part size. Done parts are recorded as before (`part_done`),
//! and a worker that stops (cancellation, a failure elsewhere) submits exactly what it has,
//! which the attempt records before it returns: Ctrl-C loses nothing received.
//!
//! Durable mode (`sync_interval` set): a *commit* takes every submission pending, fdatasyncs
//! the temp file once (on its own read-only descriptor, on the blocking pool), then appends
//! their records with one checkpoint write: data before the records that claim it, one sync
//! for all parts in flight. Commits run one at a time, back to back while submissions come;
//! the checkpoint file itself is synced at most once per `sync_interval` (a power loss then
//! forgets at most that much of the records, never claims bytes that were not synced).
//! Without `sync_interval` nothing is ever synced and a submission is recorded at once, on
//! the download's thread (the records follow the writes, which is what a crash of the
//! process needs). On a current-thread runtime (the engine's tests, on a paused clock) a
//! durable commit also runs at once on the download's thread: the order of events stays
//! reproducible, and a paused clock never races a sync on another thread.
//!
//! Ordering: a done record is appended on the download's thread, a partial record of the
//! same part by a commit; both append under [`Gate`], and a commit skips the parts recorded
//! done meanwhile, so a part's partial record never lands after its done record (the reader
//! applies a part's records in order).
//!
//! When the download future is dropped (a simulated crash), the committer is closed under the
//! gate: a commit still running on the blocking pool appends nothing afterwards.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checkpoint::{CheckpointId, CheckpointStore, PartialPart};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Failure, lock};
use crate::error::Error;

/// A part in flight records its beginning each time its worker has received this many more
/// bytes, with at most one record outstanding: a `kill -9` loses at most twice this (1 MiB)
/// per part in flight.
pub const PROGRESS_STEP: u64 = 512 << 10;

/// Records the beginnings of the parts in flight for one attempt.
pub(super) struct Committer {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    store: Arc<dyn CheckpointStore>,
    id: CheckpointId,
    /// `Some`: durable mode, sync the temp file (this path) before recording.
    temp: Option<PathBuf>,
    /// Commits run on the blocking pool (a multi-thread runtime), not on the download's
    /// thread.
    background: bool,
    sync_interval: Duration,
    state: Mutex<State>,
    gate: Mutex<Gate>,
    /// The last commit finished (its records appended, or failed).
    committed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// Submitted and not yet taken by a commit: the latest beginning per part.
    pending: BTreeMap<u64, PartialPart>,
    /// The last commit started (commits take everything pending when they start).
    started: u64,
    running: Option<tokio::task::JoinHandle<()>>,
    error: Option<Error>,
    last_checkpoint_sync: Option<Instant>,
}

/// Held while records are appended.
#[derive(Default)]
struct Gate {
    /// The download is gone: append nothing more.
    closed: bool,
    /// Parts recorded done during this attempt: their partial records are stale.
    done: Vec<bool>,
}

/// What a worker keeps between its submissions.
#[derive(Debug, Default)]
pub(super) struct Ticker {
    /// Bytes this worker has received in this attempt.
    received: u64,
    /// `received` at which it submits next.
    next: u64,
    /// The commit that records its last submission (0: none outstanding).
    pub(super) outstanding: u64,
}

impl Ticker {
    pub(super) fn new() -> Self {
        Self {
            received: 0,
            next: PROGRESS_STEP,
            outstanding: 0,
        }
    }

    /// Counts `n` more bytes received; whether a submission is due.
    pub(super) fn add(&mut self, n: u64) -> bool {
        self.received += n;
        if self.received < self.next {
            return false;
        }
        self.next = (self.received / PROGRESS_STEP + 1) * PROGRESS_STEP;
        true
    }
}

impl Committer {
    /// A committer that records nothing (no checkpoint).
    pub(super) fn none() -> Self {
        Self { shared: None }
    }

    pub(super) fn new(
        store: Arc<dyn CheckpointStore>,
        id: CheckpointId,
        temp: PathBuf,
        sync_interval: Option<Duration>,
        parts: usize,
    ) -> Self {
        let gate = Gate {
            closed: false,
            done: vec![false; parts],
        };
        Self {
            shared: Some(Arc::new(Shared {
                store,
                id,
                temp: sync_interval.is_some().then_some(temp),
                background: tokio::runtime::Handle::try_current().is_ok_and(|h| {
                    h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                }),
                sync_interval: sync_interval.unwrap_or(Duration::MAX),
                state: Mutex::new(State::default()),
                gate: Mutex::new(gate),
                committed: watch::channel(0).0,
            })),
        }
    }

    /// Records part `index` done with `record` (record + flush), under the gate so that no
    /// partial record of it is appended after.
    pub(super) fn done(
        &self,
        index: u64,
        record: impl FnOnce() -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let Some(shared) = &self.shared else {
            return record();
        };
        // A beginning of this part still pending stays there: the commit that takes it skips
        // it (the part is done), and still completes the ticket its worker may wait for.
        let mut gate = lock(&shared.gate);
        if let Some(d) = gate.done.get_mut(index as usize) {
            *d = true;
        }
        record()
    }

    /// Forgets that `parts` were done (they are fetched again).
    pub(super) fn undone(&self, parts: &[u64]) {
        if let Some(shared) = &self.shared {
            let mut gate = lock(&shared.gate);
            for &p in parts {
                if let Some(d) = gate.done.get_mut(p as usize) {
                    *d = false;
                }
            }
        }
    }

    /// Submits the beginning of part `index`; returns the commit that will record it (0 when
    /// it is recorded already).
    pub(super) fn submit(&self, index: u64, partial: PartialPart) -> Result<u64, Failure> {
        let Some(shared) = &self.shared else {
            return Ok(0);
        };
        if shared.temp.is_none() {
            // Not durable: recorded at once, after the writes.
            let gate = lock(&shared.gate);
            if gate.closed || gate.done.get(index as usize).copied().unwrap_or(false) {
                return Ok(0);
            }
            shared.store.record_partial(&shared.id, index, partial)?;
            shared.store.flush(&shared.id)?;
            return Ok(0);
        }
        if !shared.background {
            // A current-thread runtime (tests on a paused clock, callers that chose one): the
            // commit runs here, so the download's order of events stays reproducible.
            lock(&shared.state).pending.insert(index, partial);
            shared.commit_pending();
            return match lock(&shared.state).error.take() {
                Some(e) => Err(e.into()),
                None => Ok(0),
            };
        }
        let mut state = lock(&shared.state);
        if let Some(e) = state.error.take() {
            return Err(e.into());
        }
        state.pending.insert(index, partial);
        let ticket = state.started + 1;
        if state.running.is_none() {
            let s = shared.clone();
            state.running = Some(tokio::task::spawn_blocking(move || s.run()));
        }
        Ok(ticket)
    }

    /// Waits until commit `ticket` is done; `Stopped` if `halt` fires first.
    pub(super) async fn wait(&self, ticket: u64, halt: &CancellationToken) -> Result<(), Failure> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        if ticket == 0 {
            return Ok(());
        }
        let mut rx = shared.committed.subscribe();
        tokio::select! {
            biased;
            _ = halt.cancelled() => return Err(Failure::Stopped),
            // The sender lives as long as `shared`, which we hold.
            _ = rx.wait_for(|&done| done >= ticket) => {}
        }
        match lock(&shared.state).error.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Waits for the commits in flight (every submission is recorded when it returns) and
    /// returns their failure, if any.
    pub(super) async fn drain(&self) -> Result<(), Failure> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        loop {
            let task = lock(&shared.state).running.take();
            let Some(task) = task else { break };
            // A panic in the commit (a bug) leaves nothing to undo.
            let _ = task.await;
            let mut state = lock(&shared.state);
            if !state.pending.is_empty() && state.running.is_none() {
                // Submitted after the last commit took its batch and before it ended.
                let s = shared.clone();
                state.running = Some(tokio::task::spawn_blocking(move || s.run()));
            }
        }
        match lock(&shared.state).error.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Dropping the download (a simulated crash) closes the committer: a commit still running
/// appends nothing afterwards, as a killed process would not.
impl Drop for Committer {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            lock(&shared.gate).closed = true;
        }
    }
}

impl Shared {
    /// Commits, back to back, until nothing is pending. Runs on the blocking pool.
    fn run(&self) {
        self.commit_pending();
    }

    fn commit_pending(&self) {
        loop {
            let (ticket, batch) = {
                let mut state = lock(&self.state);
                if state.pending.is_empty() {
                    // `drain` takes the handle; a later submission starts a new loop.
                    state.running = None;
                    return;
                }
                state.started += 1;
                (state.started, std::mem::take(&mut state.pending))
            };
            if let Err(e) = self.commit(batch) {
                let mut state = lock(&self.state);
                state.error.get_or_insert(e);
            }
            self.committed.send_replace(ticket);
        }
    }

    /// One commit: the temp file's data, then the records that claim it.
    fn commit(&self, batch: BTreeMap<u64, PartialPart>) -> Result<(), Error> {
        if let Some(temp) = &self.temp {
            std::fs::File::open(temp)
                .and_then(|f| f.sync_data())
                .map_err(|e| Error::io("sync temp file", temp, e))?;
        }
        let gate = lock(&self.gate);
        if gate.closed {
            return Ok(());
        }
        let mut any = false;
        for (index, partial) in batch {
            if !gate.done.get(index as usize).copied().unwrap_or(false) {
                self.store.record_partial(&self.id, index, partial)?;
                any = true;
            }
        }
        if any {
            self.store.flush(&self.id)?;
        }
        drop(gate);
        let now = Instant::now();
        let due = {
            let mut state = lock(&self.state);
            let due = state
                .last_checkpoint_sync
                .is_none_or(|t| now.saturating_duration_since(t) >= self.sync_interval);
            if due {
                state.last_checkpoint_sync = Some(now);
            }
            due
        };
        if any && due {
            self.store.sync(&self.id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkpoint::{
        Checkpoint, MemoryCheckpointStore, ObjectFingerprint, PARTIAL_BLAKE3_LEN, PartLayout,
        RangeSpec,
    };

    fn partial(received: u64) -> PartialPart {
        PartialPart {
            received,
            blake3: [1; PARTIAL_BLAKE3_LEN],
            crc64: received,
        }
    }

    /// A part recorded done while its beginning is still pending: the commit that takes the
    /// beginning skips it, and still completes the ticket its worker waits for (a lost ticket
    /// once hung a download after a kill).
    #[test]
    fn a_part_done_while_its_beginning_is_pending_still_completes_the_ticket() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join("t.rgpart");
        std::fs::write(&temp, [0u8; 64]).unwrap();
        let store = MemoryCheckpointStore::new();
        let cp = Checkpoint::new(
            CheckpointId {
                source: "s".into(),
                key: "k".into(),
                version_id: None,
                range: RangeSpec::Full,
                destination: "/d".into(),
            },
            ObjectFingerprint {
                size: 64,
                etag: None,
                last_modified: None,
                version_id: None,
                checksums: Vec::new(),
            },
            PartLayout::new(0, 64, 8).unwrap(),
        );
        store.save(&cp).unwrap();
        let halt = CancellationToken::new();
        rt.block_on(async {
            for round in 0..200u64 {
                let c = Committer::new(
                    Arc::new(store.clone()),
                    cp.id.clone(),
                    temp.clone(),
                    Some(Duration::from_secs(1)),
                    8,
                );
                assert!(c.shared.as_ref().unwrap().background);
                let part = round % 8;
                let ticket = c.submit(part, partial(1 + round % 7)).unwrap();
                c.done(part, || {
                    let digest = checkpoint::PartDigest {
                        blake3: [2; 32],
                        crc64: round,
                    };
                    store.record(&cp.id, part, digest)?;
                    store.flush(&cp.id)?;
                    Ok(())
                })
                .unwrap();
                tokio::time::timeout(Duration::from_secs(20), c.wait(ticket, &halt))
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: ticket {ticket} never completed"))
                    .unwrap();
                c.drain().await.unwrap();
            }
        });
        // Every beginning was of a part done meanwhile: whichever landed first, the done
        // record is last.
        let loaded = store.load(&cp.id).unwrap().unwrap().checkpoint;
        assert!(loaded.partial.is_empty(), "{:?}", loaded.partial);
        assert_eq!(loaded.done.len(), 8);
    }

    #[test]
    fn a_ticker_submits_once_per_step_of_bytes_received() {
        let mut t = Ticker::new();
        assert!(!t.add(PROGRESS_STEP - 1));
        assert!(t.add(1));
        assert!(!t.add(PROGRESS_STEP - 1));
        // A chunk that crosses two steps submits once, and the next step is the next
        // multiple.
        assert!(t.add(2 * PROGRESS_STEP));
        assert_eq!(t.next, 4 * PROGRESS_STEP);
        assert!(t.add(1));
        assert!(!t.add(PROGRESS_STEP - 1));
    }
}
