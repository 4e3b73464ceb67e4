//! Deterministic in-memory backend with seeded, replayable fault plans, for testing the
//! download engine against every way an object store can misbehave.
//!
//! - [`MockSource`]: an in-memory bucket implementing [`resume_core::RangeSource`]: objects
//!   with deterministic etags, generations and optional versions; strict ranged reads that
//!   honour `If-Match` and version ids; bodies streamed as zero-copy chunks of a configurable
//!   size; a request log and counters.
//! - [`FaultPlan`] / [`Fault`]: which read (or stat) request fails how, either listed
//!   explicitly by request number or drawn from a seed with [`FaultRates`], bounded by
//!   `max_faults` so a retrying download always finishes.
//! - [`CrashTrigger`]: fires when a given number of body bytes has been served, so a test
//!   can drop the download future ("crash") at a point that depends only on the seed.
//! - [`resume_core::Lister`] for [`MockSource`]: pages of a chosen size in key order, a
//!   start-after token, chosen page requests failing, and a log of list requests.
//! - [`FaultyCheckpointStore`]: wraps any [`checkpoint::CheckpointStore`] and fails chosen
//!   `load`/`save`/`record`/`flush`/`delete` calls.
//!
//! # Writing a replayable fault test
//!
//! Everything the mock decides is a function of the plan and the *sequence of requests*,
//! never of wall-clock time: request `n` of a random plan gets the fault drawn from
//! `(seed, n, range length)`, delays use `tokio::time::sleep`, and crash points are byte
//! counts. So a test that (1) takes its seed from proptest or a constant, (2) runs on a
//! current-thread runtime with paused time (`#[tokio::test(start_paused = true)]`), and
//! (3) prints the seed on failure, replays exactly. With concurrency > 1 the order in which
//! parallel workers issue requests is part of "the request sequence"; keep the engine's own
//! scheduling deterministic (current-thread runtime, injectable RNG for jitter) and compare
//! [`MockSource::log`]s to check that it is.
//!
//! ```
//! use backend_mock::{Fault, FaultPlan, FaultRates, MockSource, pseudo_random_bytes};
//! use futures::TryStreamExt;
//! use resume_core::{RangeSource, ReadConditions, SourceErrorKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let src = MockSource::new("bucket").with_chunk_size(1000);
//! let meta = src.put("obj", pseudo_random_bytes(1, 10_000));
//! src.set_fault_plan(
//!     FaultPlan::random(7, FaultRates::transient(0.2)).on_request(0, Fault::http(503)),
//! );
//! let cond = ReadConditions { if_match: meta.etag.clone(), ..Default::default() };
//! let err = src.read_range("obj", 0..4096, &cond).await.unwrap_err();
//! assert_eq!((err.kind, err.status), (SourceErrorKind::Transient, Some(503)));
//! // Retry until one read delivers the whole range (the engine's job, in miniature).
//! let body = loop {
//!     let Ok(read) = src.read_range("obj", 0..4096, &cond).await else { continue };
//!     let Ok(chunks) = read.body.try_collect::<Vec<_>>().await else { continue };
//!     if chunks.iter().map(|c| c.len()).sum::<usize>() == 4096 { break chunks.concat() }
//! };
//! assert_eq!(&body[..], &src.content("obj").unwrap()[..4096]);
//! assert_eq!(src.log()[0].fault, Some(Fault::http(503))); // the log is replay material
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fault;
mod list;
mod rng;
mod source;
mod store;

pub use fault::{Fault, FaultPlan, FaultRates};
pub use list::ListLogEntry;
pub use rng::{SplitMix64, pseudo_random_bytes};
pub use source::{
    CrashTrigger, DEFAULT_CHUNK_SIZE, MockObject, MockSource, RequestLogEntry, StatLogEntry,
    StoredVersion,
};
pub use store::{FaultyCheckpointStore, StoreFault, StoreFaultLogEntry, StoreFaultPlan, StoreOp};
