//! Batch jobs: every object under a prefix downloaded into a directory as one resumable,
//! verified job, on top of the single-object engine ([`resume_core::Downloader`]), which
//! knows nothing about jobs.
//!
//! - [`Job`]: the builder and runner (listing → selection → key-to-path mapping → skip rules
//!   → one scheduler for objects and parts → journal → summary).
//! - [`path`]: the key → local path mapping, a pure function that never leaves DEST.
//! - [`journal`]: the job's durable, append-only journal.
//! - [`skip`]: when an existing local file is left alone.
//! - [`select`]: `--include`/`--exclude` globs and `--shard K/N`.
//!
//! See `docs/ARCHITECTURE.md`, "Batch jobs".
#![forbid(unsafe_code)]

mod error;
pub mod files_from;
mod job;
pub mod journal;
pub mod path;
pub mod select;
pub mod skip;

pub use error::JobError;
pub use files_from::{EntryMode, FilesFrom, UrlBook};
pub use job::{Job, JobEvent, PlanAction, SkipReason, Summary, Totals};
pub use path::Unmappable;
pub use select::{Glob, Selection, Shard};
pub use skip::SkipRule;
