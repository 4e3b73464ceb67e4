//! Checkpoints for resumable downloads: the model, a versioned self-checking codec, and stores.
//!
//! The engine (`resume-core`) decides *when* progress is recorded; this crate decides *how* it
//! survives a crash. See `docs/ARCHITECTURE.md` for the file format and its guarantees; the
//! byte layouts are also documented on [`codec`] (the snapshot) and in the `journal` module
//! (the append-only records that follow it), which [`FileCheckpointStore`] and
//! [`MemoryCheckpointStore`] share.
#![forbid(unsafe_code)]

pub mod codec;
mod error;
mod file;
mod journal;
mod memory;
mod model;
pub mod names;
mod store;

pub use error::CheckpointError;
pub use file::FileCheckpointStore;
pub use journal::{COMPACT_MIN, RECORD_LEN};
pub use memory::MemoryCheckpointStore;
pub use model::{
    CRC64_XZ_FULL_OBJECT, Checkpoint, CheckpointId, FileIdentity, ObjectFingerprint,
    PARTIAL_BLAKE3_LEN, PartDigest, PartLayout, PartialPart, RangeSpec, StoredChecksum, TempFile,
    Timestamp,
};
pub use store::{CheckpointStore, Loaded};
