//! An in-memory checkpoint store that keeps exactly the bytes the file store would write.
//!
//! Holding the real encoding (snapshot + journal records), not a `Checkpoint` value, means
//! tests exercise the same codec and journal parser as production, can corrupt or truncate
//! the stored bytes through [`MemoryCheckpointStore::set_raw`], and see a "crash" (dropping
//! the engine) lose exactly the records that were not flushed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::codec;
use crate::error::CheckpointError;
use crate::journal::{self, Appender, Entry, Target, Tracker};
use crate::model::{Checkpoint, CheckpointId, PartDigest, PartialPart};
use crate::store::{CheckpointStore, Loaded};

/// Checkpoints kept in memory, shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpointStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// What a file would contain: snapshot followed by flushed records.
    stored: HashMap<CheckpointId, Vec<u8>>,
    /// Journals started by `save`, with their unflushed records.
    journals: HashMap<CheckpointId, Journal>,
    bytes_written: u64,
}

#[derive(Debug)]
struct Journal {
    target: Target,
    appender: Appender,
    pending: Vec<Entry>,
    tracker: Tracker,
}

impl MemoryCheckpointStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No critical section here can panic half-way, so a poisoned lock guards valid data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored bytes for `id` (snapshot and flushed records), as a file would hold them.
    pub fn raw(&self, id: &CheckpointId) -> Option<Vec<u8>> {
        self.lock().stored.get(id).cloned()
    }

    /// Replaces the stored bytes for `id`, for example with a corrupted or truncated copy of
    /// [`raw`](Self::raw). A journal started by an earlier `save` keeps appending after these
    /// bytes, as it would to a file overwritten in place.
    pub fn set_raw(&self, id: &CheckpointId, bytes: Vec<u8>) {
        self.lock().stored.insert(id.clone(), bytes);
    }

    /// Ids that have stored bytes, in no particular order.
    pub fn ids(&self) -> Vec<CheckpointId> {
        self.lock().stored.keys().cloned().collect()
    }

    /// Every byte "written": snapshots and journal appends, as the file store counts them.
    pub fn bytes_written(&self) -> u64 {
        self.lock().bytes_written
    }
}

fn not_saved(id: &CheckpointId, op: &str) -> CheckpointError {
    CheckpointError::Misuse(format!(
        "{op} for {} before any save of it in this store; the engine must save a snapshot \
         before recording parts",
        location(id)
    ))
}

fn location(id: &CheckpointId) -> String {
    format!("in-memory checkpoint of {:?} from {}", id.key, id.source)
}

impl CheckpointStore for MemoryCheckpointStore {
    fn location(&self, id: &CheckpointId) -> String {
        location(id)
    }

    fn load(&self, id: &CheckpointId) -> Result<Option<Loaded>, CheckpointError> {
        let inner = self.lock();
        match inner.stored.get(id) {
            None => Ok(None),
            Some(bytes) => journal::parse(bytes, &location(id)).map(Some),
        }
    }

    /// Replaces the stored bytes with the snapshot and starts an empty journal; unflushed
    /// records of the previous journal are dropped, as in the file store.
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let (bytes, checksum) = codec::encode_with_checksum(checkpoint);
        let (target, appender) = journal::start(checkpoint, &checksum);
        let tracker = Tracker::new(checkpoint.clone(), bytes.len());
        let mut inner = self.lock();
        inner.bytes_written += bytes.len() as u64;
        inner.stored.insert(checkpoint.id.clone(), bytes);
        inner.journals.insert(
            checkpoint.id.clone(),
            Journal {
                target,
                appender,
                pending: Vec::new(),
                tracker,
            },
        );
        Ok(())
    }

    fn record(
        &self,
        id: &CheckpointId,
        index: u64,
        digest: PartDigest,
    ) -> Result<(), CheckpointError> {
        let mut inner = self.lock();
        let journal = inner
            .journals
            .get_mut(id)
            .ok_or_else(|| not_saved(id, "record"))?;
        journal.target.check(id, index, &location(id))?;
        journal.pending.push(Entry::Done(index, digest));
        Ok(())
    }

    fn record_partial(
        &self,
        id: &CheckpointId,
        index: u64,
        partial: PartialPart,
    ) -> Result<(), CheckpointError> {
        let mut inner = self.lock();
        let journal = inner
            .journals
            .get_mut(id)
            .ok_or_else(|| not_saved(id, "record"))?;
        journal
            .target
            .check_partial(id, index, &partial, &location(id))?;
        journal.pending.push(Entry::Partial(index, partial));
        Ok(())
    }

    fn flush(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        let mut inner = self.lock();
        let Inner {
            stored,
            journals,
            bytes_written,
        } = &mut *inner;
        let journal = journals.get_mut(id).ok_or_else(|| not_saved(id, "flush"))?;
        if journal.pending.is_empty() {
            return Ok(());
        }
        let file = stored.get_mut(id).ok_or_else(|| not_saved(id, "flush"))?;
        let records = journal.appender.encode(&journal.pending);
        file.extend_from_slice(&records);
        *bytes_written += records.len() as u64;
        journal.appender.advance(journal.pending.len());
        journal.tracker.applied(&journal.pending);
        journal.pending.clear();
        if journal.tracker.wants_compaction() {
            // As the file store does: the snapshot rewritten from what the bytes say.
            let state = journal.tracker.state.clone();
            let (bytes, checksum) = codec::encode_with_checksum(&state);
            *bytes_written += bytes.len() as u64;
            journal.appender = journal::start(&state, &checksum).1;
            journal.tracker = Tracker::new(state, bytes.len());
            *file = bytes;
        }
        Ok(())
    }

    fn delete(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        let mut inner = self.lock();
        inner.stored.remove(id);
        inner.journals.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectFingerprint, PartLayout, RangeSpec};

    fn checkpoint(parts: u64) -> Checkpoint {
        Checkpoint::new(
            CheckpointId {
                source: "mem://b".into(),
                key: "k".into(),
                version_id: None,
                range: RangeSpec::Full,
                destination: "/d".into(),
            },
            ObjectFingerprint {
                size: parts,
                etag: None,
                last_modified: None,
                version_id: None,
                checksums: Vec::new(),
            },
            PartLayout::new(0, parts, 1).expect("nonzero part size"),
        )
    }

    fn digest(i: u64) -> PartDigest {
        PartDigest {
            blake3: [i as u8; 32],
            crc64: i,
        }
    }

    #[test]
    fn clones_share_state_and_only_flushed_records_survive() {
        let store = MemoryCheckpointStore::new();
        let engine_view = store.clone();
        let cp = checkpoint(8);
        engine_view.save(&cp).expect("save");
        engine_view.record(&cp.id, 0, digest(0)).expect("record");
        engine_view.flush(&cp.id).expect("flush");
        engine_view.record(&cp.id, 1, digest(1)).expect("record");
        // "Crash": the engine's view goes away with part 1 unflushed.
        drop(engine_view);
        let loaded = store.load(&cp.id).expect("load").expect("present");
        assert_eq!(
            loaded.checkpoint.done.keys().copied().collect::<Vec<_>>(),
            [0]
        );
        assert_eq!(store.ids(), std::slice::from_ref(&cp.id));
        let raw = store.raw(&cp.id).expect("raw");
        assert_eq!(raw.len(), codec::encode(&cp).len() + journal::RECORD_LEN);
        assert_eq!(store.bytes_written(), raw.len() as u64);
    }

    #[test]
    fn set_raw_corruption_is_reported() {
        let store = MemoryCheckpointStore::new();
        let cp = checkpoint(2);
        store.save(&cp).expect("save");
        let mut raw = store.raw(&cp.id).expect("raw");
        raw[10] ^= 1;
        store.set_raw(&cp.id, raw);
        assert!(matches!(
            store.load(&cp.id),
            Err(CheckpointError::Corrupt { .. })
        ));
        store.delete(&cp.id).expect("delete");
        assert!(store.load(&cp.id).expect("load").is_none());
        assert!(store.ids().is_empty());
        assert!(matches!(
            store.record(&cp.id, 0, digest(0)),
            Err(CheckpointError::Misuse(_))
        ));
    }
}
