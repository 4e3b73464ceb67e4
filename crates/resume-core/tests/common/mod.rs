//! Shared fixtures for the engine's tests: a mock bucket, a temp dir, quick retries and an
//! event recorder. Everything is deterministic: seeded content, seeded jitter, paused time.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_mock::{MockSource, pseudo_random_bytes};
use checkpoint::{CheckpointStore, MemoryCheckpointStore};
use resume_core::{CancellationToken, Downloader, Event, RetryPolicy, crc64};

pub const KEY: &str = "abc/efg/123.jpg";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub dest: PathBuf,
    pub source: MockSource,
    pub store: MemoryCheckpointStore,
    pub content: Vec<u8>,
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Fixture {
    /// A bucket holding `KEY` with `len` seeded bytes, with its CRC-64 published like OSS.
    pub fn new(len: usize, seed: u64) -> Self {
        let source = MockSource::new("test")
            .with_chunk_size(4096)
            .with_crc64_fn(crc64);
        let content = pseudo_random_bytes(seed, len).to_vec();
        source.put(KEY, content.clone());
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        Self {
            dir,
            dest,
            source,
            store: MemoryCheckpointStore::new(),
            content,
            events: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A downloader over this fixture's source and memory store, recording events.
    pub fn downloader(&self) -> Downloader {
        let events = self.events.clone();
        Downloader::new(self.source.clone())
            .checkpoint(self.store.clone())
            .retry(quick_retry(1))
            .on_progress(move |e| events.lock().unwrap().push(e.clone()))
    }

    /// Runs `dl` until the source has served `bytes` bytes, then drops the download mid-flight,
    /// exactly like a crash (nothing is flushed on the way out).
    pub async fn crash_after(&self, dl: Downloader, bytes: u64) {
        let trigger = self.source.crash_trigger_after_bytes(bytes);
        tokio::select! {
            r = dl.download(KEY, &self.dest) => panic!("finished before the crash point: {r:?}"),
            _ = trigger.fired() => {}
        }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    /// The checkpoint saved for the one download this fixture ran.
    pub fn saved_checkpoint(&self) -> checkpoint::Checkpoint {
        self.store
            .load(&self.store.ids()[0])
            .unwrap()
            .unwrap()
            .checkpoint
    }

    pub fn dest_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.dest).unwrap()
    }

    pub fn part_path(&self) -> PathBuf {
        resume_core::with_suffix(&self.dest, resume_core::PART_SUFFIX)
    }

    /// Files in the fixture's directory, sorted, as names.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Retries that cost no real time under paused time, with seeded jitter.
pub fn quick_retry(seed: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        max_requests_per_part: 200,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(2),
        jitter_seed: Some(seed),
    }
}

/// A current-thread runtime with paused time: timers fire in order, instantly.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Cancels `token` once the source has served what `trigger` waits for.
pub fn cancel_when(trigger: backend_mock::CrashTrigger, token: &CancellationToken) {
    let token = token.clone();
    tokio::spawn(async move {
        trigger.fired().await;
        token.cancel();
    });
}

/// The bytes done of the last progress event among `events`.
pub fn last_progress(events: &[Event]) -> Option<u64> {
    events.iter().rev().find_map(|e| match e {
        Event::Progress { done_bytes, .. } => Some(*done_bytes),
        _ => None,
    })
}

/// The parts of the `PartDone` events among `events`, in their order.
pub fn parts_done(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PartDone { part, .. } => Some(*part),
            _ => None,
        })
        .collect()
}
