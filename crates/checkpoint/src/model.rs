//! The checkpoint model: what a resumable download must remember, and nothing that is not
//! needed to decide whether remembered progress may be trusted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The byte range a user asked for, before it is resolved against the object's size.
///
/// Kept unresolved in the identity so that `-N` (the last N bytes) of a grown object is not
/// mistaken for the same request: the object's size is part of the fingerprint anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum RangeSpec {
    /// The whole object.
    #[default]
    Full,
    /// `bytes=a-b`, both ends inclusive.
    Inclusive { first: u64, last: u64 },
    /// `bytes=a-`: from `first` to the end.
    From { first: u64 },
    /// `bytes=-n`: the last `n` bytes.
    Suffix { len: u64 },
}

/// Names one download: which object, from where, into which file.
///
/// A checkpoint is only ever applied to the download with an equal `CheckpointId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckpointId {
    /// Backend + endpoint + bucket, from `RangeSource::identity`.
    pub source: String,
    /// Object key.
    pub key: String,
    /// Version the user asked for, if any.
    pub version_id: Option<String>,
    /// Range the user asked for.
    pub range: RangeSpec,
    /// Absolute destination path, as UTF-8 (lossy for non-UTF-8 paths).
    pub destination: String,
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// What identifies the object's content at the time the download started.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectFingerprint {
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<Timestamp>,
    pub version_id: Option<String>,
    /// The checksums the source published for the object (so that a change in them is a
    /// change of the object), in the order it gave them.
    pub checksums: Vec<StoredChecksum>,
}

/// One published checksum as the checkpoint keeps it: what it is (algorithm and scope, in
/// the engine's words, e.g. [`CRC64_XZ_FULL_OBJECT`]) and its value (the big-endian digest).
///
/// The checkpoint only compares these; what they mean is the engine's (`resume_core::
/// integrity`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoredChecksum {
    pub kind: String,
    pub value: Vec<u8>,
}

/// The kind of OSS's whole-object CRC-64/XZ, the only checksum formats 1 and 2 recorded.
pub const CRC64_XZ_FULL_OBJECT: &str = "CRC-64/XZ full-object";

/// How the covered byte range is cut into parts.
///
/// Part `i` covers `[start + i * part_size, min(start + (i + 1) * part_size, start + len))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartLayout {
    /// First byte of the object covered by the download.
    pub start: u64,
    /// Number of bytes covered by the download (the temp file's length).
    pub len: u64,
    pub part_size: u64,
    pub part_count: u64,
}

/// Digests of one part's bytes, taken as they were received: what a resumed run needs to
/// tell whether the part's bytes on disk are still the ones received.
///
/// Other checksums of a reused part (the CRCs a store publishes, digests a user gives) are
/// not kept: a resumed run re-reads every reused part to compare it with this record, and
/// computes them from the same read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartDigest {
    pub blake3: [u8; 32],
    /// CRC-64/XZ of the part alone.
    pub crc64: u64,
}

/// Bytes of BLAKE3 a [`PartialPart`] keeps: enough to tell damaged bytes apart (192 bits), and
/// what fits one journal record beside the part, its length and its CRC-64.
pub const PARTIAL_BLAKE3_LEN: usize = 24;

/// The beginning of a part that is not done: its first `received` bytes are in the temp file
/// (written, and synced before this was recorded, in durable mode), with digests of exactly
/// those bytes taken as they were received. A resumed run re-reads them, compares, and asks
/// the source only for the rest of the part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartialPart {
    /// Bytes from the part's first byte; more than zero and less than the part's length.
    pub received: u64,
    /// The first [`PARTIAL_BLAKE3_LEN`] bytes of the BLAKE3 of those bytes.
    pub blake3: [u8; PARTIAL_BLAKE3_LEN],
    /// CRC-64/XZ of those bytes.
    pub crc64: u64,
}

/// Identifies one file on its file system, across processes and reboots: the inode number,
/// and the birth time where the file system keeps one (so a reused inode number is told
/// apart). The device number is left out on purpose: it can change across reboots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileIdentity {
    pub ino: u64,
    pub birth: Option<Timestamp>,
}

impl FileIdentity {
    /// Whether `other` is the same file. A missing birth time on either side (a file system
    /// without one, or a different kernel) leaves the inode number to decide.
    pub fn same_as(&self, other: &FileIdentity) -> bool {
        self.ino == other.ino
            && match (self.birth, other.birth) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// Which temp file holds a checkpoint's parts: the proof that a file named like the temp file
/// is this download's and may be written, truncated or deleted (a file that merely has the
/// name may be anybody's, e.g. a downloaded object called `data.rgpart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TempFile {
    /// Saved just before the download creates its temp file, so that a crash between the
    /// creation and the next save cannot orphan it: an *empty* temp file is this download's.
    NotCreated,
    /// This file.
    Created(FileIdentity),
    /// Read from a checkpoint format that did not record the temp file (format 1): a temp file
    /// of the layout's length is taken as this download's, as that format did.
    Unrecorded,
}

/// Everything a resumed download needs to trust the work already on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: CheckpointId,
    /// The temp file the done parts were written into.
    pub temp_file: TempFile,
    pub object: ObjectFingerprint,
    pub layout: PartLayout,
    /// Done parts by index; a part is here only once its bytes are in the temp file.
    pub done: BTreeMap<u64, PartDigest>,
    /// Parts not done whose first bytes are saved, by index (never a done part's index).
    pub partial: BTreeMap<u64, PartialPart>,
}

impl Checkpoint {
    /// A checkpoint with no part done yet, saved before its temp file exists
    /// ([`TempFile::NotCreated`]; see [`with_temp_file`](Self::with_temp_file)).
    pub fn new(id: CheckpointId, object: ObjectFingerprint, layout: PartLayout) -> Self {
        Self {
            id,
            temp_file: TempFile::NotCreated,
            object,
            layout,
            done: BTreeMap::new(),
            partial: BTreeMap::new(),
        }
    }

    /// The same checkpoint, recording `temp_file` as its temp file.
    pub fn with_temp_file(mut self, temp_file: TempFile) -> Self {
        self.temp_file = temp_file;
        self
    }

    /// Bytes covered by the parts recorded as done.
    pub fn done_bytes(&self) -> u64 {
        self.done.keys().map(|&i| self.layout.part_len(i)).sum()
    }

    /// Bytes saved in the beginnings of parts not done ([`partial`](Self::partial)).
    pub fn partial_bytes(&self) -> u64 {
        self.partial.values().map(|p| p.received).sum()
    }

    /// Every byte a resumed run would not ask for again: done parts and partial beginnings.
    pub fn saved_bytes(&self) -> u64 {
        self.done_bytes() + self.partial_bytes()
    }

    /// Records part `index` done (it is no longer partial).
    pub fn apply_done(&mut self, index: u64, digest: PartDigest) {
        self.partial.remove(&index);
        self.done.insert(index, digest);
    }

    /// Records the beginning of part `index` (the part is no longer done: its bytes are being
    /// written again).
    pub fn apply_partial(&mut self, index: u64, partial: PartialPart) {
        self.done.remove(&index);
        self.partial.insert(index, partial);
    }
}

impl PartLayout {
    /// Cuts `len` bytes starting at `start` into parts of `part_size` (the last may be shorter).
    ///
    /// Returns `None` when `part_size` is zero.
    pub fn new(start: u64, len: u64, part_size: u64) -> Option<Self> {
        if part_size == 0 {
            return None;
        }
        Some(Self {
            start,
            len,
            part_size,
            part_count: len.div_ceil(part_size),
        })
    }

    /// Offset of part `index` relative to the start of the download (= offset in the temp file).
    pub fn part_offset(&self, index: u64) -> u64 {
        index.saturating_mul(self.part_size).min(self.len)
    }

    /// Length of part `index`; zero for indices past the end.
    pub fn part_len(&self, index: u64) -> u64 {
        let off = self.part_offset(index);
        (self.len - off).min(self.part_size)
    }

    /// Object byte range `[first, end)` of part `index`.
    pub fn part_range(&self, index: u64) -> std::ops::Range<u64> {
        let first = self.start + self.part_offset(index);
        first..first + self.part_len(index)
    }
}
