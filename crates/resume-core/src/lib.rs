//! The engine: turns any [`RangeSource`] into a verified, resumable, parallel download.
//!
//! A backend implements [`RangeSource`] (stat + one ranged read + an identity string); the
//! [`Downloader`] does everything else: part planning, lazy scheduling over `concurrency`
//! workers, retries with jittered backoff that resume a broken body where it broke,
//! positional writes into `DEST.rgpart`, BLAKE3 + CRC-64 per part, checkpointing, end-to-end
//! verification against every checksum the store publishes or the caller gives
//! ([`integrity`]), and the final atomic rename. See `docs/ARCHITECTURE.md`.
#![forbid(unsafe_code)]

#[cfg(feature = "conformance")]
pub mod conformance;
mod digest;
mod downloader;
mod engine;
mod error;
mod event;
pub mod http_syntax;
pub mod integrity;
mod limit;
mod list;
mod local_state;
mod part_file;
mod plan;
mod rate;
pub mod recorded;
pub mod redact;
pub mod request_log;
mod retry;
mod rng;
mod source;
pub mod tune;

pub use checkpoint::{self, RangeSpec};
pub use digest::{crc64, crc64_combine};
pub use downloader::{
    CheckpointChoice, DEFAULT_CONCURRENCY, DEFAULT_MAX_PARTS, DEFAULT_PART_SIZE, Downloader,
    OnChange, resolve_dest,
};
pub use engine::{InOrderHashing, PROGRESS_STEP};
pub use error::{Error, ErrorKind};
pub use event::{Event, FirstByte, JobsUsed, PartSizeReason, Report};
pub use integrity::{Algorithm, Checksum, Origin, Scope, Verification};
pub use limit::ConnectionLimit;
pub use list::{ListPage, ListedObject, Lister, ListerExt};
pub use local_state::SavedProgress;
pub use part_file::{PART_SUFFIX, with_suffix};
pub use plan::{
    AUTO_PART_MAX, AUTO_PART_MIN, RangeProblem, auto_part_size, bounded_part_size, format_range,
    parse_range, plan, resolve_range,
};
pub use rate::RateLimit;
pub use retry::{LowestSpeed, RetryPolicy};
pub use rng::{SplitMix64, mix64};
pub use source::{
    ByteStream, DescribedRead, ObjectMeta, RangeRead, RangeSource, ReadConditions, SourceError,
    SourceErrorKind,
};
pub use tokio_util::sync::CancellationToken;
pub use tune::{AutoJobs, JobsReason};
