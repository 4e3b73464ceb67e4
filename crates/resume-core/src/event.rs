//! What a download tells its observer while it runs.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::integrity::Verification;
use crate::source::ObjectMeta;
use crate::tune::JobsReason;

/// Progress and diagnostics, in the order they happen. Delivered synchronously from the
/// download's own task: keep handlers quick (update a bar, send on a channel).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The plan is set. `total_bytes` is what this download covers (the range's length for a
    /// ranged download, not the object's size); `reused_bytes` of it come from a checkpoint.
    Started {
        key: String,
        total_bytes: u64,
        reused_bytes: u64,
        part_size: u64,
        parts: u64,
        parts_reused: u64,
        resumed: bool,
    },
    /// The download's part size is not the one asked for: said once, before `Started`.
    PartSizeChanged {
        /// The part size asked for ([`Downloader::part_size`](crate::Downloader::part_size)).
        requested: u64,
        /// The part size used.
        used: u64,
        /// Parts of the download at that size.
        parts: u64,
        reason: PartSizeReason,
    },
    /// A checkpoint existed but was not used.
    CheckpointDiscarded { location: String, reason: String },
    /// The checkpoint was used, with a remark from the store (e.g. a torn tail was ignored).
    CheckpointNote { location: String, note: String },
    /// Done parts failed re-verification and will be fetched again.
    PartsDamaged { parts: Vec<u64>, reason: String },
    /// Bytes written so far (throttled).
    Progress { done_bytes: u64, total_bytes: u64 },
    /// A part is written and recorded.
    PartDone { part: u64, range: Range<u64> },
    /// A request failed and will be retried after `delay`.
    Retry {
        part: Option<u64>,
        attempt: u32,
        resume_at: u64,
        delay: Duration,
        cause: String,
    },
    /// The object changed; the download starts over against its new version.
    Restarted { reason: String, restart: u32 },
    /// `--jobs auto` ([`Downloader::auto_jobs`](crate::Downloader::auto_jobs)) changed the
    /// number of connections, or stopped changing it (`from == to`).
    JobsChanged {
        from: usize,
        to: usize,
        reason: JobsReason,
    },
    /// Something a person should know about this download, said once (also kept in
    /// [`Report::warnings`]): e.g. a server that ignores ranges, or one that sends no
    /// validator to pin the object by.
    Warning { message: String },
    /// The file is complete, verified and in place.
    Completed(Arc<Report>),
    /// The download stopped with this error (the same one `download` returns).
    Failed { error: String },
}

/// Why a download's part size is not the one asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartSizeReason {
    /// The size asked for would cut the download into more than `max_parts` parts
    /// ([`Downloader::max_parts`](crate::Downloader::max_parts)); raised to the smallest size
    /// that does not.
    MaxParts { max_parts: u64 },
    /// The download resumes saved progress, which was made with this part size: the saved
    /// parts are kept rather than fetched again
    /// ([`Downloader::start_over`](crate::Downloader::start_over) discards them instead).
    Checkpoint,
}

/// What a finished download did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Report {
    pub key: String,
    pub destination: PathBuf,
    pub object: ObjectMeta,
    /// Object bytes `[start, end)` written to the destination.
    pub range: Range<u64>,
    /// Bytes received from the source in this run.
    pub fetched_bytes: u64,
    /// Bytes taken from a checkpointed earlier run.
    pub reused_bytes: u64,
    pub parts: u64,
    pub parts_reused: u64,
    /// Requests that failed and were retried.
    pub retries: u64,
    /// Restarts because the object changed.
    pub restarts: u32,
    /// CRC-64/XZ of the written bytes.
    pub crc64: u64,
    /// Whether `crc64` was checked against a whole-object CRC-64/XZ published by the source
    /// (OSS); see `verification` for every check.
    pub crc64_verified: bool,
    /// What verified the written bytes, or why nothing did.
    pub verification: Verification,
    /// Every [`Event::Warning`] of the download, in order.
    pub warnings: Vec<String>,
    pub elapsed: Duration,
    /// How many connections the download used.
    pub jobs: JobsUsed,
    /// Time to the first byte of the part requests (to the response's headers), when any
    /// was sent.
    pub first_byte: Option<FirstByte>,
}

/// How many connections a download used: fixed (`--jobs N`) or chosen while it ran
/// (`--jobs auto`, see [`Event::JobsChanged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct JobsUsed {
    /// Chosen while it ran.
    pub auto: bool,
    /// Connections at the start.
    pub start: usize,
    /// The most connections used at once.
    pub peak: usize,
    /// Connections at the end.
    pub last: usize,
}

/// Time from sending a part request to its response, over every part request of a download:
/// what each part pays once, before its bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FirstByte {
    pub requests: u64,
    pub min: Duration,
    pub mean: Duration,
    pub max: Duration,
}
