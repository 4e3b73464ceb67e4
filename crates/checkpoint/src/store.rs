//! The contract between the engine and whatever persists checkpoints.

use std::fmt;
use std::path::PathBuf;

use crate::error::CheckpointError;
use crate::model::{Checkpoint, CheckpointId, PartDigest, PartialPart};

/// A checkpoint read back from a store, with what the store noticed while reading it
/// (for example a torn journal tail it ignored). Notes are informational: the checkpoint
/// returned is valid as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub checkpoint: Checkpoint,
    pub notes: Vec<String>,
}

/// Persists the progress of downloads.
///
/// The engine promises this order of calls for one download: `load`, then `save` (a full
/// snapshot, which also starts a new journal), then any number of `record`, `flush` and `sync`
/// calls, then `delete` on success. `record` is only called after the part's bytes are in the
/// temp file.
///
/// Two levels of persistence, because they cost very different amounts:
/// - `flush` hands every recorded part to the operating system (one `write`, no fsync). After
///   it returns, a crash of *this process* (panic, `kill -9`) cannot lose those parts. The
///   engine flushes after every finished part, so a killed download re-fetches at most the
///   parts that were in flight.
/// - `sync` makes flushed parts survive a power loss or kernel crash (fsync). The engine calls
///   it at a bounded rate (group commit), after syncing the temp file's data.
///
/// A store decides how to persist, but a crash at any instant must leave a state from which
/// `load` returns either the last flushed (or synced, for power loss) state or a later one —
/// never an error and never a part that was not recorded.
///
/// Stores are keyed by [`CheckpointId`]: a store kept in a directory derives a file name from
/// it, a store beside the destination ignores it for naming. Either way `load` returns a
/// checkpoint whose id the engine still compares with its own, so a foreign checkpoint is
/// never applied.
pub trait CheckpointStore: Send + Sync + fmt::Debug {
    /// Where the checkpoint for `id` lives, for messages (a path, or a description).
    fn location(&self, id: &CheckpointId) -> String;

    /// The local file that holds the checkpoint for `id`, if the store keeps one; the engine
    /// uses it to refuse a destination that would overwrite the checkpoint.
    fn path(&self, id: &CheckpointId) -> Option<PathBuf> {
        let _ = id;
        None
    }

    /// Reads the checkpoint for `id`. `Ok(None)` when there is none; an error when one exists
    /// but cannot be trusted (corrupt, truncated, unknown format), which the engine reports and
    /// discards.
    fn load(&self, id: &CheckpointId) -> Result<Option<Loaded>, CheckpointError>;

    /// Atomically replaces whatever is stored for `checkpoint.id` with this full snapshot.
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError>;

    /// Notes that part `index` is done. May only buffer; durable after the next `flush`.
    fn record(
        &self,
        id: &CheckpointId,
        index: u64,
        digest: PartDigest,
    ) -> Result<(), CheckpointError>;

    /// Notes that the first `partial.received` bytes of part `index` are in the temp file (and
    /// synced, in durable mode: the engine records a beginning only after syncing its bytes).
    /// May only buffer, like `record`; a later `record` or `record_partial` of the same part
    /// replaces it. A store that does not keep beginnings may ignore it (the default): the
    /// part is then fetched again from its first byte, which is never wrong.
    fn record_partial(
        &self,
        id: &CheckpointId,
        index: u64,
        partial: PartialPart,
    ) -> Result<(), CheckpointError> {
        let _ = (id, index, partial);
        Ok(())
    }

    /// Hands every recorded part to the operating system: survives a crash of this process.
    fn flush(&self, id: &CheckpointId) -> Result<(), CheckpointError>;

    /// Makes every flushed part durable across power loss. Stores without a disk do nothing.
    fn sync(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        let _ = id;
        Ok(())
    }

    /// Removes the checkpoint for `id`; succeeds if there is none.
    fn delete(&self, id: &CheckpointId) -> Result<(), CheckpointError>;
}

impl<T: CheckpointStore + ?Sized> CheckpointStore for std::sync::Arc<T> {
    fn location(&self, id: &CheckpointId) -> String {
        (**self).location(id)
    }
    fn path(&self, id: &CheckpointId) -> Option<PathBuf> {
        (**self).path(id)
    }
    fn load(&self, id: &CheckpointId) -> Result<Option<Loaded>, CheckpointError> {
        (**self).load(id)
    }
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        (**self).save(checkpoint)
    }
    fn record(
        &self,
        id: &CheckpointId,
        index: u64,
        digest: PartDigest,
    ) -> Result<(), CheckpointError> {
        (**self).record(id, index, digest)
    }
    fn record_partial(
        &self,
        id: &CheckpointId,
        index: u64,
        partial: PartialPart,
    ) -> Result<(), CheckpointError> {
        (**self).record_partial(id, index, partial)
    }
    fn flush(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        (**self).flush(id)
    }
    fn sync(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        (**self).sync(id)
    }
    fn delete(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        (**self).delete(id)
    }
}
