//! What a job tells its caller: events while it runs ([`JobEvent`]), why an object was not
//! downloaded ([`SkipReason`]), and the counts ([`Totals`], [`Summary`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use resume_core::{ErrorKind, Verification};

use crate::path::Unmappable;

/// Why an object was not downloaded, though listed and selected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The local file is already this object (see [`SkipRule`](crate::SkipRule)).
    UpToDate(std::borrow::Cow<'static, str>),
    /// The key cannot be a local path.
    Unmappable(Unmappable),
    /// Something else is at (or on the way to) its path: a directory where the file goes, a
    /// file where a directory must go (`a` next to `a/b`), a symbolic link inside DEST (never
    /// followed, so nothing is written outside DEST), or, on a case-insensitive destination,
    /// another key of this job that differs only in case.
    Clash(String),
    /// Deleted after the listing named it (the download found no object).
    Deleted,
}

impl SkipReason {
    /// Whether the object is fine as it is (up to date), rather than a problem to report.
    pub fn is_up_to_date(&self) -> bool {
        matches!(self, Self::UpToDate(_))
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpToDate(why) => write!(f, "up to date: {why}"),
            Self::Unmappable(why) => write!(f, "no local path: {why}"),
            Self::Clash(why) => write!(f, "not written: {why}"),
            Self::Deleted => f.write_str("deleted from the source after it was listed"),
        }
    }
}

/// What a dry run would do with an object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanAction {
    Download,
    Skip(SkipReason),
}

/// What a job tells its observer. Delivered synchronously; keep handlers quick.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum JobEvent {
    /// How the journal was found: resumed (with a torn tail cut), or another job's replaced.
    JournalNote {
        path: PathBuf,
        note: String,
    },
    /// The listing has named this many objects so far.
    Listed {
        objects: u64,
        bytes: u64,
    },
    /// Dry run: what would be done.
    Planned {
        key: String,
        size: u64,
        path: Option<PathBuf>,
        action: PlanAction,
    },
    Started {
        key: String,
        path: PathBuf,
        size: u64,
    },
    Done {
        key: String,
        path: PathBuf,
        size: u64,
        fetched_bytes: u64,
        reused_bytes: u64,
        /// What checked the file's bytes (the store's checksums it was verified against, or
        /// why nothing could).
        verification: Verification,
    },
    Skipped {
        key: String,
        path: Option<PathBuf>,
        reason: SkipReason,
    },
    Failed {
        key: String,
        path: PathBuf,
        kind: ErrorKind,
        error: String,
    },
    /// Throttled aggregate progress.
    Progress(Totals),
    Finished(Summary),
}

/// Counts so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub listed: u64,
    pub listed_bytes: u64,
    pub done: u64,
    pub up_to_date: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Bytes received from the source (this run).
    pub fetched_bytes: u64,
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Objects the listing named (including the pages an earlier run settled).
    pub listed: u64,
    /// Of those, on pages an earlier run of this job settled (every object done, up to date,
    /// skipped, excluded or failed): this run continued the listing after them and did not
    /// look at them again, except the failed ones, retried by key (and counted again as done,
    /// skipped or failed).
    pub earlier: u64,
    /// Of those, not taken by the selection (`--include`/`--exclude`/`--shard`).
    pub excluded: u64,
    /// Downloaded by this run.
    pub done: u64,
    /// Already in place (skip rules, or done by an earlier run of this job).
    pub up_to_date: u64,
    /// Not downloaded, with a reason each (unmappable keys, clashes, deleted after listing).
    pub skipped: u64,
    pub failed: u64,
    pub fetched_bytes: u64,
    /// Sum of the sizes of the objects downloaded or up to date.
    pub bytes: u64,
    pub elapsed: Duration,
    /// Where the failed keys were written (JSON lines), if any failed.
    pub failures_file: Option<PathBuf>,
    /// The whole listing was gone through and nothing failed: the journal was removed.
    pub complete: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} downloaded, {} up to date, {} skipped, {} failed ({} listed, {} excluded, {} \
             settled by earlier runs); {} bytes fetched in {:.1}s",
            self.done,
            self.up_to_date,
            self.skipped,
            self.failed,
            self.listed,
            self.excluded,
            self.earlier,
            self.fetched_bytes,
            self.elapsed.as_secs_f64()
        )
    }
}
