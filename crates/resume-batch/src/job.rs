//! [`Job`]: a whole prefix as one resumable job, above the single-object engine.
//!
//! Flow: the listing is fetched page by page by one task into a channel of one page (at most
//! three pages in memory: one in hand, one queued, one being fetched) → each object is
//! selected (`--include`/`--exclude`/`--shard`), mapped to a path ([`crate::path`]),
//! checked against the skip rules ([`crate::skip`], no request), recorded as started in the
//! journal, and downloaded by the engine with the listing's metadata (no stat, every read
//! pinned to the listed etag) → its outcome is recorded (done: journal; failed: the failures
//! file) → at the end, a complete job removes its journal.
//!
//! One scheduler: every download shares one [`ConnectionLimit`] of `jobs` permits, and each
//! may use up to `jobs` workers, so small objects (one GET each) and the parts of large ones
//! draw from the same pool, and the last large objects of the job get every connection.
//! Up to `2 × jobs` objects are in flight at once, so a connection is not idle while an
//! object's file is created, synced and renamed.
//!
//! One file a job: this one is the builder (what a caller sets); `events` what a job tells
//! its caller; `run` one run (the journal opened, the summary at the end); `scheduler` the
//! loop that takes pages and admits objects up to `2 × jobs`; `listing` the page feed and
//! which pages are settled; `admission` what happens to one listed object before any
//! request (path, clashes, skip rules); `download` one object's engine download; `outcome`
//! what its result does to the journal and the report; `leftovers` failed and deleted
//! objects.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use resume_core::{CancellationToken, Downloader, Event, Lister, RangeSource, RateLimit};

mod admission;
mod download;
mod events;
mod leftovers;
mod listing;
mod outcome;
mod run;
mod scheduler;

pub use events::{JobEvent, PlanAction, SkipReason, Summary, Totals};

use crate::error::JobError;
use crate::select::Selection;
use crate::skip::SkipRule;

/// Bumped whenever the key → path mapping changes: part of the job's identity, so a journal
/// written under another mapping is never applied.
const MAPPING_VERSION: u32 = 1;

type EventFn = Arc<dyn Fn(&JobEvent) + Send + Sync>;
type ObjectEventFn = Arc<dyn Fn(&str, &Event) + Send + Sync>;

/// Downloads every object under a prefix into a directory, as one resumable job.
///
/// ```no_run
/// # async fn run(lister: std::sync::Arc<dyn resume_core::Lister>,
/// #              source: std::sync::Arc<dyn resume_core::RangeSource>) -> Result<(), resume_batch::JobError> {
/// use resume_batch::{Job, SkipRule};
/// let summary = Job::new(lister, source, "datasets/2026/", "./data")
///     .jobs(16)
///     .skip_rule(SkipRule::Default)
///     .include("*.parquet")?
///     .run()
///     .await?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Job {
    lister: Arc<dyn Lister>,
    source: Arc<dyn RangeSource>,
    prefix: String,
    dest: PathBuf,
    template: Downloader,
    part_size: u64,
    jobs: usize,
    rate_limit: Option<RateLimit>,
    stat_each: bool,
    url_names: bool,
    identity_note: String,
    skip: SkipRule,
    selection: Selection,
    state_dir: Option<PathBuf>,
    failures_file: Option<PathBuf>,
    fail_fast: bool,
    dry_run: bool,
    events: Option<EventFn>,
    object_events: Option<ObjectEventFn>,
    cancel: CancellationToken,
    progress_interval: Duration,
    case_insensitive: Option<bool>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("lister", &self.lister.identity())
            .field("prefix", &self.prefix)
            .field("dest", &self.dest)
            .field("part_size", &self.part_size)
            .field("jobs", &self.jobs)
            .field("skip", &self.skip)
            .field("selection", &self.selection)
            .field("state_dir", &self.state_dir)
            .field("fail_fast", &self.fail_fast)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A job downloading every object `lister` names under `prefix`, from `source` (the same
    /// store), into the directory `dest` (created if missing).
    pub fn new(
        lister: Arc<dyn Lister>,
        source: Arc<dyn RangeSource>,
        prefix: impl Into<String>,
        dest: impl Into<PathBuf>,
    ) -> Self {
        Self {
            template: Downloader::from_arc(source.clone()),
            lister,
            source,
            prefix: prefix.into(),
            dest: dest.into(),
            part_size: resume_core::DEFAULT_PART_SIZE,
            jobs: resume_core::DEFAULT_CONCURRENCY,
            rate_limit: None,
            stat_each: false,
            url_names: false,
            identity_note: String::new(),
            skip: SkipRule::Default,
            selection: Selection::default(),
            state_dir: None,
            failures_file: None,
            fail_fast: false,
            dry_run: false,
            events: None,
            object_events: None,
            cancel: CancellationToken::new(),
            progress_interval: Duration::from_millis(250),
            case_insensitive: None,
        }
    }

    /// The engine's settings for every object (retries, idle timeout, change policy,
    /// verification...). The job sets, per object: the listed metadata, the part size, the
    /// concurrency and shared connection limit (`jobs`), the checkpoint (none for one-part
    /// objects: the journal covers them; beside the file or in the state directory for the
    /// others), the cancellation token and the progress callback.
    pub fn downloader(mut self, template: Downloader) -> Self {
        self.template = template;
        self
    }

    /// Bytes per part; objects not larger than this are one GET.
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// Connections (part requests) in flight across the whole job.
    pub fn jobs(mut self, n: usize) -> Self {
        self.jobs = n;
        self
    }

    /// Caps the whole job's download rate (every object and part together) at
    /// `bytes_per_sec`; `None` (the default): no cap. One token bucket is shared by all
    /// downloads (a per-object limit, the template's `rate_limit`, is replaced by it).
    pub fn rate_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.rate_limit = bytes_per_sec.filter(|&r| r > 0).map(RateLimit::new);
        self
    }

    /// The lister gives no metadata (a [`FilesFrom`](crate::FilesFrom) list): each object is
    /// stat'ed once before the skip rules, unless this job's journal already records it done
    /// with a local file of that size (then no request at all).
    pub fn stat_each(mut self, yes: bool) -> Self {
        self.stat_each = yes;
        self
    }

    /// Keys are URLs ([`EntryMode::Urls`](crate::EntryMode::Urls)): the local name is
    /// [`url_name`](crate::files_from::url_name) of the key, and two keys with the same path
    /// are a clash (the first is written).
    pub fn url_names(mut self, yes: bool) -> Self {
        self.url_names = yes;
        self
    }

    /// Appended to the job's identity (e.g. the list file's content hash).
    pub fn identity_note(mut self, note: impl Into<String>) -> Self {
        self.identity_note = note.into();
        self
    }

    pub fn skip_rule(mut self, rule: SkipRule) -> Self {
        self.skip = rule;
        self
    }

    /// Only keys whose relative name matches one of the `include` patterns (if any is given).
    pub fn include(mut self, pattern: &str) -> Result<Self, JobError> {
        let g = crate::Glob::new(pattern).map_err(JobError::Config)?;
        self.selection.include.push(g);
        Ok(self)
    }

    /// No key whose relative name matches an `exclude` pattern.
    pub fn exclude(mut self, pattern: &str) -> Result<Self, JobError> {
        let g = crate::Glob::new(pattern).map_err(JobError::Config)?;
        self.selection.exclude.push(g);
        Ok(self)
    }

    /// Only the keys of this shard.
    pub fn shard(mut self, shard: crate::Shard) -> Self {
        self.selection.shard = Some(shard);
        self
    }

    /// Keep the journal (and the checkpoints of large objects) in `dir` instead of
    /// `DEST/.resume-get/` (journal) and beside each file (checkpoints).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Where the failed keys are written as JSON lines (default: in the state directory).
    pub fn failures_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.failures_file = Some(path.into());
        self
    }

    /// Stop at the first object that fails (the others in flight are stopped and keep their
    /// progress).
    pub fn fail_fast(mut self, yes: bool) -> Self {
        self.fail_fast = yes;
        self
    }

    /// Report what would be done ([`JobEvent::Planned`]) without downloading or writing
    /// anything.
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    pub fn on_event(mut self, f: impl Fn(&JobEvent) + Send + Sync + 'static) -> Self {
        self.events = Some(Arc::new(f));
        self
    }

    /// Also see every engine event of every object, with its key.
    pub fn on_object_event(mut self, f: impl Fn(&str, &Event) + Send + Sync + 'static) -> Self {
        self.object_events = Some(Arc::new(f));
        self
    }

    /// Cancelling stops the job gracefully: downloads in flight save their progress, the
    /// journal is synced, and [`JobError::Cancelled`] is returned. (Dropping the `run` future
    /// instead stops it like a crash: everything recorded is still resumable.)
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Minimum time between two [`JobEvent::Progress`] events.
    pub fn progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = interval;
        self
    }

    /// Whether DEST's file system ignores case; `None` (the default): find out with a probe
    /// file. On such a destination, of two keys differing only in case the second is skipped.
    pub fn case_insensitive(mut self, yes: Option<bool>) -> Self {
        self.case_insensitive = yes;
        self
    }

    fn emit(&self, e: &JobEvent) {
        if let Some(f) = &self.events {
            f(e);
        }
    }

    /// What names this job: a journal written for another identity is never applied.
    fn identity(&self, dest: &Path) -> String {
        format!(
            "source={}{}\nprefix={:?}\ndest={}\n{}\nskip={}\nmapping={MAPPING_VERSION}",
            self.lister.identity(),
            self.identity_note,
            self.prefix,
            dest.display(),
            self.selection.describe(),
            self.skip.name()
        )
    }

    fn validate(&self) -> Result<(), JobError> {
        if self.jobs == 0 {
            return Err(JobError::Config(
                "jobs is 0; use at least 1 connection".into(),
            ));
        }
        if self.part_size == 0 {
            return Err(JobError::Config(
                "part size is 0 bytes; use at least 1 byte (e.g. 8 MiB)".into(),
            ));
        }
        if self.lister.identity() != self.source.identity() {
            return Err(JobError::Config(format!(
                "the lister ({}) and the source ({}) are not the same store; give both for \
                 one bucket",
                self.lister.identity(),
                self.source.identity()
            )));
        }
        Ok(())
    }
}
