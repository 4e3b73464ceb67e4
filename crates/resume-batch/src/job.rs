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

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resume_core::{
    CancellationToken, CheckpointChoice, ConnectionLimit, Downloader, ErrorKind, Event, ListPage,
    ListedObject, Lister, ObjectMeta, PART_SUFFIX, RangeSource, RateLimit, Report, SourceError,
    with_suffix,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

mod leftovers;

use crate::error::JobError;
use crate::journal::{JobState, Journal, KeyHash, Opened, Record, SettledListing, key_hash};
use crate::path::{Limits, STATE_DIR, Unmappable, fold_case, map_relative, relative_name};
use crate::select::Selection;
use crate::skip::{Compared, Decision, LocalFile, SkipRule, compare_checksums, decide};

/// Bumped whenever the key → path mapping changes: part of the job's identity, so a journal
/// written under another mapping is never applied.
const MAPPING_VERSION: u32 = 1;

/// Transient listing failures are retried this many times, with exponential back-off.
const LISTING_ATTEMPTS: u32 = 6;

/// Why an object was not downloaded, though listed and selected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The local file is already this object (see [`SkipRule`]).
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

    /// Runs the job to the end of its listing. `Ok` when every object was gone through,
    /// including when some failed (see [`Summary::failed`]); `Err` when the job itself could
    /// not go on (listing failed, journal unusable, cancelled).
    pub async fn run(self) -> Result<Summary, JobError> {
        self.validate()?;
        let started = Instant::now();
        let dest = self.prepare_dest()?;
        let identity = self.identity(&dest);
        let state_dir = match &self.state_dir {
            Some(d) => d.clone(),
            None => dest.join(STATE_DIR),
        };
        // One journal per job identity: another job into the same DEST (another prefix,
        // shard or selection) never replaces this one's, so an interrupted job can always be
        // resumed; the header's identity is checked all the same.
        let journal_path = state_dir.join(format!(
            "job-{}.rgjob",
            &blake3::hash(identity.as_bytes()).to_hex()[..32]
        ));
        let (journal, state) = if self.dry_run {
            (
                None,
                Journal::peek(&journal_path, &identity).unwrap_or_default(),
            )
        } else {
            std::fs::create_dir_all(&state_dir).map_err(|source| JobError::Dest {
                op: "create the job's state directory",
                path: state_dir.clone(),
                source,
            })?;
            let (journal, state, opened) = Journal::open(&journal_path, &identity)?;
            match opened {
                Opened::Fresh => {}
                Opened::Resumed { records, torn } => self.emit(&JobEvent::JournalNote {
                    path: journal_path.clone(),
                    note: format!(
                        "resuming: {records} records of earlier runs{}",
                        torn.map(|t| format!("; {t}")).unwrap_or_default()
                    ),
                }),
                Opened::Replaced { reason } => self.emit(&JobEvent::JournalNote {
                    path: journal_path.clone(),
                    note: format!("the journal found was not used ({reason}); starting afresh"),
                }),
            }
            (Some(journal), state)
        };
        // Where the listing starts: after the pages an earlier run settled (a dry run plans
        // the whole listing).
        let resume = if self.dry_run {
            None
        } else {
            state.settled.clone()
        };
        if let Some(r) = &resume {
            self.emit(&JobEvent::JournalNote {
                path: journal_path.clone(),
                note: match &r.next {
                    Some(_) => format!(
                        "continuing the listing after the {} objects of {} pages settled by \
                         earlier runs",
                        r.objects,
                        r.page + 1
                    ),
                    None => format!(
                        "every one of the {} objects listed was settled by earlier runs",
                        r.objects
                    ),
                },
            });
        }
        let failures_path = self
            .failures_file
            .clone()
            .unwrap_or_else(|| journal_path.with_extension("failures.jsonl"));
        if !self.dry_run {
            // The failures of an earlier run are the previous run's news, not this one's.
            let _ = std::fs::remove_file(&failures_path);
        }
        // Objects an earlier run started or saw fail: on the pages this run lists again, the
        // listing tells whether they still exist (their leftovers are removed if not); failed
        // objects of settled pages are retried by key.
        let relisted = |page: u64| resume.as_ref().is_none_or(|r| page > r.page);
        let mut unseen = HashMap::new();
        let mut carried = Vec::new();
        if !self.dry_run {
            for (h, s) in &state.started {
                if relisted(s.page) {
                    unseen.insert(*h, (s.key.clone(), Some(s.checkpointed)));
                }
            }
            for (h, f) in &state.failed {
                if relisted(f.page) {
                    unseen.entry(*h).or_insert_with(|| (f.key.clone(), None));
                } else {
                    carried.push((f.page, f.key.clone()));
                }
            }
        }
        carried.sort();
        let mut run = Run {
            source_identity: self.source.identity(),
            unseen,
            carried: carried.into(),
            case_insensitive: self
                .case_insensitive
                .unwrap_or_else(|| !self.dry_run && case_insensitive(&dest)),
            limits: Limits::for_dest(&dest),
            dest,
            journal,
            state,
            limit: ConnectionLimit::new(self.jobs),
            stop: self.cancel.child_token(),
            totals: Totals {
                listed: resume.as_ref().map_or(0, |r| r.objects),
                listed_bytes: resume.as_ref().map_or(0, |r| r.bytes),
                ..Totals::default()
            },
            next_page: resume.as_ref().map_or(0, |r| r.page + 1),
            pages: VecDeque::new(),
            settle_blocked: false,
            resume,
            excluded: 0,
            bytes: 0,
            folded: HashSet::new(),
            taken: HashSet::new(),
            dirs: HashSet::new(),
            inflight: HashSet::new(),
            failures_path,
            failures: None,
            fetched: Arc::new(AtomicU64::new(0)),
            last_progress: Mutex::new(Instant::now()),
            job: &self,
        };
        let outcome = run.go().await;
        let totals = run.totals();
        let failed = totals.failed;
        let listing_error = match outcome {
            Ok(()) => None,
            Err(RunStop::Listing(e)) => Some(e),
            Err(RunStop::Fatal(e)) => {
                if let Some(j) = &mut run.journal {
                    let _ = j.sync();
                }
                return Err(e);
            }
        };
        let cancelled = self.cancel.is_cancelled();
        let stopped_early = run.stop.is_cancelled();
        let complete = listing_error.is_none() && !stopped_early && failed == 0;
        if let Some(mut journal) = run.journal.take() {
            journal.sync()?;
            if complete {
                journal.remove()?;
                if self.state_dir.is_none() {
                    // Only if empty: a failures file of this run keeps it.
                    let _ = std::fs::remove_dir(&state_dir);
                }
            }
        }
        if let Some(mut f) = run.failures.take() {
            let _ = f.flush();
        }
        let summary = Summary {
            listed: totals.listed,
            earlier: run.resume.as_ref().map_or(0, |r| r.objects),
            excluded: run.excluded,
            done: totals.done,
            up_to_date: totals.up_to_date,
            skipped: totals.skipped,
            failed,
            fetched_bytes: totals.fetched_bytes,
            bytes: run.bytes,
            elapsed: started.elapsed(),
            failures_file: (failed > 0).then(|| run.failures_path.clone()),
            complete,
        };
        if let Some(e) = listing_error {
            return Err(JobError::Listing {
                prefix: self.prefix.clone(),
                listed: totals.listed,
                source: Box::new(e),
                summary: Box::new(summary),
            });
        }
        if cancelled {
            return Err(JobError::Cancelled {
                summary: Box::new(summary),
            });
        }
        self.emit(&JobEvent::Finished(summary.clone()));
        Ok(summary)
    }

    fn prepare_dest(&self) -> Result<PathBuf, JobError> {
        let err = |op| {
            let path = self.dest.clone();
            move |source| JobError::Dest { op, path, source }
        };
        if !self.dry_run {
            std::fs::create_dir_all(&self.dest).map_err(err("create"))?;
        }
        match self.dest.canonicalize() {
            Ok(d) if d.is_dir() => Ok(d),
            Ok(_) => Err(JobError::Config(format!(
                "destination {} is not a directory; give a directory for a recursive download",
                self.dest.display()
            ))),
            // A dry run into a directory that does not exist yet: plan against the name given.
            Err(_) if self.dry_run => Ok(std::path::absolute(&self.dest).map_err(err("resolve"))?),
            Err(e) => Err(err("open")(e)),
        }
    }
}

/// Whether names at `dir` are case-insensitive: a probe file with a reserved name, looked
/// up in another case.
fn case_insensitive(dir: &Path) -> bool {
    let name = format!(".Rg-Case-Probe-{}{PART_SUFFIX}", std::process::id());
    let probe = dir.join(&name);
    if std::fs::File::create_new(&probe).is_err() {
        return false;
    }
    let other = dir.join(name.to_lowercase());
    let folded = std::fs::symlink_metadata(&other).is_ok();
    let _ = std::fs::remove_file(&probe);
    folded
}

enum RunStop {
    Listing(SourceError),
    Fatal(JobError),
}

impl From<JobError> for RunStop {
    fn from(e: JobError) -> Self {
        RunStop::Fatal(e)
    }
}

/// What one object's task hands back.
struct Finished {
    key: String,
    path: PathBuf,
    size: u64,
    page: u64,
    result: Outcome,
}

enum Outcome {
    /// `leftover`: handed to the engine only to remove a checkpoint left beside a file that
    /// looked finished.
    Downloaded {
        result: Result<Report, resume_core::Error>,
        leftover: bool,
    },
    /// The stat of an object a list named ([`Job::stat_each`]).
    Statted(Result<ObjectMeta, SourceError>),
    /// `--checksum`'s comparison, with the listed metadata.
    Compared(Result<(Compared, ObjectMeta), SourceError>, ObjectMeta),
}

struct Run<'j> {
    job: &'j Job,
    dest: PathBuf,
    limits: Limits,
    case_insensitive: bool,
    journal: Option<Journal>,
    state: JobState,
    limit: ConnectionLimit,
    /// Cancelled by the caller's token or by `--fail-fast`: stops admitting objects and
    /// stops the downloads in flight (which keep their progress).
    stop: CancellationToken,
    totals: Totals,
    /// Where this run started the listing (pages earlier runs settled).
    resume: Option<SettledListing>,
    /// The number the next page gets (pages are numbered from 0 across runs).
    next_page: u64,
    /// Pages listed and not yet settled, in order.
    pages: VecDeque<PageTrack>,
    /// An object was interrupted (or failed in a job that cannot retry by key, a list's):
    /// its page, and so every later one, stays unsettled in this run (a rerun must look at it
    /// again).
    settle_blocked: bool,
    /// Objects earlier runs started (with whether they keep a checkpoint) or saw fail, on
    /// pages this run lists again, not yet named by this run's listing: once the listing has
    /// been gone through, they were deleted from the source.
    unseen: HashMap<KeyHash, (String, Option<bool>)>,
    /// Failed objects of pages earlier runs settled, to retry (page, key).
    carried: VecDeque<(u64, String)>,
    /// The source's identity, as the engine names objects in their files' records.
    source_identity: String,
    excluded: u64,
    bytes: u64,
    /// Case-folded paths of this job's objects, on a case-insensitive destination.
    folded: HashSet<u64>,
    /// Paths of this run's objects when keys are URLs (two URLs can name one path).
    taken: HashSet<u64>,
    /// Directories known to be real directories inside DEST.
    dirs: HashSet<PathBuf>,
    /// Paths of the downloads in flight (at most `2 × jobs`): no directory is created where
    /// one of them is about to put its file.
    inflight: HashSet<PathBuf>,
    failures_path: PathBuf,
    failures: Option<std::io::BufWriter<std::fs::File>>,
    fetched: Arc<AtomicU64>,
    last_progress: Mutex<Instant>,
}

/// A listed page whose objects are not all settled yet.
#[derive(Debug)]
struct PageTrack {
    seq: u64,
    /// Objects of the page not settled yet.
    outstanding: usize,
    /// Objects and bytes listed up to and including this page.
    objects: u64,
    bytes: u64,
    next: Option<String>,
}

impl Run<'_> {
    /// One object of page `seq` is settled; records the pages now wholly settled, in order.
    fn settle(&mut self, seq: u64) -> Result<(), RunStop> {
        if let Some(front) = self.pages.front()
            && let Some(p) = seq
                .checked_sub(front.seq)
                .and_then(|i| self.pages.get_mut(i as usize))
        {
            p.outstanding = p.outstanding.saturating_sub(1);
        }
        self.settle_front()
    }

    fn settle_front(&mut self) -> Result<(), RunStop> {
        while !self.settle_blocked
            && let Some(front) = self.pages.front()
            && front.outstanding == 0
        {
            let p = self.pages.pop_front().expect("a front page");
            if let Some(j) = &mut self.journal {
                j.append(&Record::Settled {
                    page: p.seq,
                    objects: p.objects,
                    bytes: p.bytes,
                    next: p.next,
                })?;
            }
        }
        Ok(())
    }

    fn totals(&self) -> Totals {
        Totals {
            fetched_bytes: self.fetched.load(Ordering::Relaxed),
            ..self.totals
        }
    }

    async fn go(&mut self) -> Result<(), RunStop> {
        let job = self.job;
        let (tx, mut pages) = mpsc::channel::<Result<ListPage, SourceError>>(1);
        let mut listing = JoinSet::new();
        // Continue after the pages an earlier run settled; nothing to list if it settled all.
        let (start, listing_done) = match &self.resume {
            None => (None, false),
            Some(SettledListing { next: Some(t), .. }) => (Some(t.clone()), false),
            Some(SettledListing { next: None, .. }) => (None, true),
        };
        if !listing_done {
            listing.spawn(list_pages(
                job.lister.clone(),
                job.prefix.clone(),
                start,
                tx,
            ));
        }
        let mut listing_done = listing_done;
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let cap = job.jobs.saturating_mul(2).max(1);
        let mut queue: VecDeque<(u64, ListedObject)> = VecDeque::new();
        let mut listing_error = None;
        let mut ticker =
            tokio::time::interval(job.progress_interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while tasks.len() < cap && !self.stop.is_cancelled() {
                // Failed objects of settled pages first (no listing names them again): one
                // stat each, then the skip rules and the download.
                let (seq, obj, carried) = match self.carried.pop_front() {
                    Some((seq, key)) => {
                        let meta = ObjectMeta::default();
                        (seq, ListedObject { key, meta }, true)
                    }
                    None => match queue.pop_front() {
                        Some((seq, obj)) => (seq, obj, false),
                        None => break,
                    },
                };
                if !self.consider(obj, seq, carried, &mut tasks)? {
                    self.settle(seq)?;
                }
            }
            let admitting = !self.stop.is_cancelled() && queue.is_empty() && !listing_done;
            if tasks.is_empty() && !admitting {
                break;
            }
            // Pages first: a page is only taken when the queue is empty, and admitting its
            // objects keeps the connections busy; finished objects are bookkeeping.
            tokio::select! {
                biased;
                page = pages.recv(), if admitting => match page {
                    Some(Ok(page)) => {
                        let n = page.objects.len() as u64;
                        let b: u64 = page.objects.iter().map(|o| o.meta.size).sum();
                        self.totals.listed += n;
                        self.totals.listed_bytes += b;
                        if let Some(j) = &mut self.journal {
                            j.append(&Record::Listed {
                                objects: self.totals.listed,
                                bytes: self.totals.listed_bytes,
                                next: page.next.clone(),
                            })?;
                        }
                        job.emit(&JobEvent::Listed {
                            objects: self.totals.listed,
                            bytes: self.totals.listed_bytes,
                        });
                        let seq = self.next_page;
                        self.next_page += 1;
                        self.pages.push_back(PageTrack {
                            seq,
                            outstanding: page.objects.len(),
                            objects: self.totals.listed,
                            bytes: self.totals.listed_bytes,
                            next: page.next,
                        });
                        if !self.unseen.is_empty() {
                            for o in &page.objects {
                                self.unseen.remove(&key_hash(&o.key));
                            }
                        }
                        queue.extend(page.objects.into_iter().map(|o| (seq, o)));
                        self.settle_front()?;
                    }
                    Some(Err(e)) => {
                        listing_error = Some(e);
                        listing_done = true;
                    }
                    None => listing_done = true,
                },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    match done {
                        Ok(f) => self.finished(f, &mut tasks)?,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(_) => {}
                    }
                }
                _ = self.stop.cancelled(), if !self.stop.is_cancelled() => {}
                _ = ticker.tick(), if job.events.is_some() => self.progress(false),
            }
        }
        if listing_error.is_none() && !self.stop.is_cancelled() {
            self.forget_unlisted()?;
        }
        self.progress(true);
        match listing_error {
            Some(e) => Err(RunStop::Listing(e)),
            None => Ok(()),
        }
    }

    /// Decides what to do with one listed object (of page `page`), and starts its download if
    /// it needs one: `true` when it did (the object settles when the download ends).
    /// `carried`: a failed object of a settled page, known by key only (stat'ed first).
    fn consider(
        &mut self,
        obj: ListedObject,
        page: u64,
        carried: bool,
        tasks: &mut JoinSet<Finished>,
    ) -> Result<bool, RunStop> {
        let job = self.job;
        let ListedObject { key, meta } = obj;
        let named = if job.url_names {
            Ok(crate::files_from::url_name(&key))
        } else {
            relative_name(&job.prefix, &key)
        };
        let rel = match named {
            Ok(rel) => rel,
            Err(why) => {
                self.skipped(key, None, SkipReason::Unmappable(why), meta.size);
                return Ok(false);
            }
        };
        if !job.selection.takes(&key, rel) {
            self.excluded += 1;
            return Ok(false);
        }
        let rel_path = match map_relative(rel, &self.limits) {
            Ok(p) => p,
            Err(why) => {
                self.skipped(key, None, SkipReason::Unmappable(why), meta.size);
                return Ok(false);
            }
        };
        let path = self.dest.join(&rel_path);
        if job.url_names {
            let h = blake3::hash(rel_path.as_os_str().as_encoded_bytes());
            let h = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
            if !self.taken.insert(h) {
                let why = format!(
                    "an earlier entry of the list has the same local path {}",
                    path.display()
                );
                self.skipped(key, Some(path), SkipReason::Clash(why), meta.size);
                return Ok(false);
            }
        }
        if self.case_insensitive {
            let h = blake3::hash(fold_case(&rel_path).as_bytes());
            let h = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
            if !self.folded.insert(h) {
                let why = format!(
                    "the destination ignores case, and another key of this job differing from \
                     {key:?} only in case has the same path"
                );
                self.skipped(key, Some(path), SkipReason::Clash(why), meta.size);
                return Ok(false);
            }
        }
        if let Err(why) = self.prepare_parents(&rel_path) {
            self.skipped(key, Some(path), SkipReason::Clash(why), meta.size);
            return Ok(false);
        }
        let local = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let why = format!(
                    "{} is a symbolic link; links inside DEST are never followed, so nothing \
                     is written outside DEST",
                    path.display()
                );
                self.skipped(key, Some(path), SkipReason::Clash(why), meta.size);
                return Ok(false);
            }
            Ok(m) if m.is_dir() => {
                let why = format!(
                    "{} is a directory (another key names a path below it)",
                    path.display()
                );
                self.skipped(key, Some(path), SkipReason::Clash(why), meta.size);
                return Ok(false);
            }
            Ok(m) => Some(LocalFile {
                size: m.len(),
                modified: m.modified().ok(),
                recorded: self.record_of(&key, &path),
            }),
            Err(_) => None,
        };
        if job.stat_each
            && let Some(l) = &local
            && l.recorded.is_some()
        {
            // The file records that it is this entry's object, downloaded whole and unchanged
            // since (a completed job's rerun, its journal gone): no request.
            let size = l.size;
            self.up_to_date(
                key,
                path,
                size,
                "this entry's file, as recorded with it when it was downloaded (unchanged since)",
            );
            return Ok(false);
        }
        if job.stat_each || carried {
            // Recorded done by this job, with a local file of that size: no request.
            if let (Some(d), Some(l)) = (self.state.done.get(&key_hash(&key)), &local)
                && d.size == l.size
                && !carried
            {
                let size = d.size;
                self.up_to_date(key, path, size, "this job downloaded it already");
                return Ok(false);
            }
            let source = job.source.clone();
            self.inflight.insert(path.clone());
            tasks.spawn(async move {
                let result = source.stat(&key, None).await;
                Finished {
                    key,
                    path,
                    size: 0,
                    page,
                    result: Outcome::Statted(result),
                }
            });
            return Ok(true);
        }
        self.judge(key, path, meta, local, page, tasks)
    }

    /// Counts an object whose local file is already what the job would write, and tells so:
    /// a plan line in a dry run, a skip otherwise.
    fn up_to_date(
        &mut self,
        key: String,
        path: PathBuf,
        size: u64,
        why: impl Into<std::borrow::Cow<'static, str>>,
    ) {
        self.bytes += size;
        self.totals.up_to_date += 1;
        let reason = SkipReason::UpToDate(why.into());
        let job = self.job;
        if job.dry_run {
            job.emit(&JobEvent::Planned {
                key,
                size,
                path: Some(path),
                action: PlanAction::Skip(reason),
            });
        } else {
            job.emit(&JobEvent::Skipped {
                key,
                path: Some(path),
                reason,
            });
        }
    }

    /// The skip rules for an object whose metadata is known and whose local file was looked
    /// at: skips it, compares checksums, or starts its download (`true`: a task was started).
    fn judge(
        &mut self,
        key: String,
        path: PathBuf,
        meta: ObjectMeta,
        local: Option<LocalFile>,
        page: u64,
        tasks: &mut JoinSet<Finished>,
    ) -> Result<bool, RunStop> {
        let job = self.job;
        let h = key_hash(&key);
        let decision = decide(job.skip, &meta, local.as_ref(), self.state.done.get(&h));
        // A run stopped after renaming a large object into place and before deleting its
        // checkpoint left both: the engine recognises its own finished file (no request) and
        // removes the checkpoint, so that object goes to the engine instead of being skipped.
        let leftover_checkpoint = matches!(decision, Decision::Skip(_))
            && !job.dry_run
            && self.state.started.get(&h).is_some_and(|s| s.checkpointed)
            && self
                .checkpointing()
                .checkpoint_path(&key, &path)
                .is_some_and(|p| p.exists());
        if let (Decision::Skip(why), false) = (&decision, leftover_checkpoint) {
            self.up_to_date(key, path, meta.size, *why);
            return Ok(false);
        }
        if decision == Decision::CompareChecksums && !leftover_checkpoint {
            // Reads the local file (and maybe stats the object): off the loop, as a task; the
            // verdict comes back through `finished`.
            let source = job.source.clone();
            self.inflight.insert(path.clone());
            tasks.spawn(async move {
                let result = compare_checksums(&*source, &key, &meta, &path).await;
                Finished {
                    key,
                    path,
                    size: meta.size,
                    page,
                    result: Outcome::Compared(result, meta),
                }
            });
            return Ok(true);
        }
        self.start(key, path, meta, page, leftover_checkpoint, tasks)
    }

    /// Downloads (or, in a dry run, plans) one object that is not up to date: `true` when a
    /// download task was started. `leftover`: the file looks finished and a checkpoint an
    /// earlier run left is beside it; the engine recognises its own finished file without a
    /// request, so the object is told as started only if the engine does fetch something.
    fn start(
        &mut self,
        key: String,
        path: PathBuf,
        meta: ObjectMeta,
        page: u64,
        leftover: bool,
        tasks: &mut JoinSet<Finished>,
    ) -> Result<bool, RunStop> {
        let job = self.job;
        let h = key_hash(&key);
        if job.dry_run {
            self.totals.done += 1;
            self.bytes += meta.size;
            job.emit(&JobEvent::Planned {
                key,
                size: meta.size,
                path: Some(path),
                action: PlanAction::Download,
            });
            return Ok(false);
        }
        let checkpointed = meta.size > job.part_size;
        // An object downloaded without a checkpoint is recorded as started only when no file
        // has its temp file's name: so a temp file found later beside a Started record was
        // created by this job's engine (a crashed run's, which nothing can resume) and is
        // removed. Any other file of that name (a user's `x.rgpart`) is never this job's to
        // delete: the engine refuses it (a failure naming the file, before any request), the
        // object stays unrecorded, and the file is left as it is, run after run.
        let mut record = true;
        if !checkpointed {
            let part = with_suffix(&path, PART_SUFFIX);
            if let Ok(m) = std::fs::symlink_metadata(&part) {
                if self.state.started.get(&h).is_some_and(|s| !s.checkpointed) && m.is_file() {
                    let _ = std::fs::remove_file(&part);
                } else {
                    record = false;
                }
            }
        }
        if let (Some(j), true) = (&mut self.journal, record) {
            j.append(&Record::Started {
                key: key.clone(),
                checkpointed,
                page,
            })?;
        }
        let started = JobEvent::Started {
            key: key.clone(),
            path: path.clone(),
            size: meta.size,
        };
        // A leftover checkpoint's object is told as started only when the engine transfers
        // something: a finished file it recognises is reported as up to date (`finished`).
        let announce = if leftover {
            Some(started)
        } else {
            job.emit(&started);
            None
        };
        let dl = self.downloader(&key, meta.clone(), checkpointed, announce);
        self.inflight.insert(path.clone());
        tasks.spawn(download(dl, key, path, meta, page, leftover));
        Ok(true)
    }

    /// The engine's settings for one object; `announce` is emitted when the engine starts
    /// transferring bytes (not when it finds the object's file already complete).
    fn downloader(
        &self,
        key: &str,
        meta: ObjectMeta,
        checkpointed: bool,
        announce: Option<JobEvent>,
    ) -> Downloader {
        let job = self.job;
        let mut dl = job
            .template
            .clone()
            .listed(meta)
            .part_size(job.part_size)
            .concurrency(job.jobs)
            .connection_limit(self.limit.clone())
            .keep_modified_time(true)
            .cancel_token(self.stop.child_token());
        if let Some(r) = &job.rate_limit {
            dl = dl.shared_rate_limit(r.clone());
        }
        dl = if !checkpointed {
            dl.no_checkpoint()
        } else if let Some(dir) = &job.state_dir {
            dl.checkpoint_choice(CheckpointChoice::InDir(dir.clone()))
        } else {
            dl.checkpoint_choice(CheckpointChoice::BesideDest)
        };
        let fetched = self.fetched.clone();
        let seen = AtomicU64::new(0);
        let object_events = job.object_events.clone();
        let announce = announce.zip(job.events.clone());
        let key = key.to_owned();
        dl.on_progress(move |e| {
            if let Some(f) = &object_events {
                f(&key, e);
            }
            if let (
                Some((started, events)),
                Event::Started {
                    reused_bytes,
                    total_bytes,
                    ..
                },
            ) = (&announce, e)
                && reused_bytes < total_bytes
            {
                events(started);
            }
            // Bytes this object's attempt has in place (reused from a checkpoint, then
            // received); the job adds up what is received.
            let now = match e {
                Event::Started { reused_bytes, .. } => {
                    seen.store(*reused_bytes, Ordering::Relaxed);
                    return;
                }
                Event::Completed(r) => r.reused_bytes + r.fetched_bytes,
                Event::Progress { done_bytes, .. } => *done_bytes,
                _ => return,
            };
            let before = seen.swap(now, Ordering::Relaxed);
            fetched.fetch_add(now.saturating_sub(before), Ordering::Relaxed);
        })
    }

    /// Makes sure every directory on the way to `rel` is a real directory inside DEST:
    /// created if missing, never a symbolic link (not followed), never a file.
    fn prepare_parents(&mut self, rel: &Path) -> Result<(), String> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        let mut at = self.dest.clone();
        for c in parent.components() {
            at.push(c);
            if self.dirs.contains(&at) {
                continue;
            }
            if self.inflight.contains(&at) {
                return Err(format!(
                    "{} is a file being downloaded where a directory is needed (a key names it \
                     as a file, another as a folder)",
                    at.display()
                ));
            }
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(format!(
                        "{} is a symbolic link; links inside DEST are never followed, so \
                         nothing is written outside DEST",
                        at.display()
                    ));
                }
                Ok(_) => {
                    return Err(format!(
                        "{} is a file where a directory is needed (a key names it as a file, \
                         another as a folder)",
                        at.display()
                    ));
                }
                Err(_) if self.job.dry_run => {}
                Err(_) => {
                    if let Err(e) = std::fs::create_dir(&at)
                        && !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir())
                    {
                        return Err(format!("cannot create directory {}: {e}", at.display()));
                    }
                }
            }
            self.dirs.insert(at.clone());
        }
        Ok(())
    }

    fn skipped(&mut self, key: String, path: Option<PathBuf>, reason: SkipReason, _size: u64) {
        self.totals.skipped += 1;
        let job = self.job;
        if job.dry_run {
            job.emit(&JobEvent::Planned {
                key,
                size: _size,
                path,
                action: PlanAction::Skip(reason),
            });
        } else {
            job.emit(&JobEvent::Skipped { key, path, reason });
        }
    }

    fn finished(&mut self, f: Finished, tasks: &mut JoinSet<Finished>) -> Result<(), RunStop> {
        let job = self.job;
        self.inflight.remove(&f.path);
        let (result, leftover) = match f.result {
            Outcome::Downloaded { result, leftover } => (result, leftover),
            Outcome::Statted(Ok(meta)) => {
                let local = match std::fs::symlink_metadata(&f.path) {
                    Ok(m) if m.is_file() => Some(LocalFile {
                        size: m.len(),
                        modified: m.modified().ok(),
                        recorded: self.record_of(&f.key, &f.path),
                    }),
                    _ => None,
                };
                if !self.judge(f.key, f.path, meta, local, f.page, tasks)? {
                    self.settle(f.page)?;
                }
                return Ok(());
            }
            Outcome::Statted(Err(e)) if e.kind == resume_core::SourceErrorKind::NotFound => {
                return self.deleted(f.key, f.path, 0, f.page);
            }
            Outcome::Statted(Err(e)) => {
                self.object_failed(&f.key, f.page)?;
                self.totals.failed += 1;
                let kind = match e.kind {
                    resume_core::SourceErrorKind::Denied => ErrorKind::Denied,
                    resume_core::SourceErrorKind::Transient => ErrorKind::Network,
                    _ => ErrorKind::Other,
                };
                let error = format!("{e}; run the same command again to retry it");
                let line = serde_json::json!({
                    "key": f.key,
                    "path": f.path.to_string_lossy(),
                    "kind": format!("{kind:?}"),
                    "error": error,
                });
                self.record_failure(&line.to_string())?;
                job.emit(&JobEvent::Failed {
                    key: f.key,
                    path: f.path,
                    kind,
                    error,
                });
                if job.fail_fast {
                    self.stop.cancel();
                }
                return Ok(());
            }
            Outcome::Compared(Ok((Compared::Same(why), _)), _) => {
                self.up_to_date(f.key, f.path, f.size, why);
                self.settle(f.page)?;
                return Ok(());
            }
            Outcome::Compared(compared, listed) => {
                let meta = match compared {
                    Ok((Compared::Download(why), meta)) => {
                        tracing::debug!(key = %f.key, %why, "--checksum: downloading");
                        meta
                    }
                    Ok((Compared::Same(_), meta)) => meta,
                    // The download meets the same problem and reports it.
                    Err(_) => listed,
                };
                if !self.start(f.key, f.path, meta, f.page, false, tasks)? {
                    self.settle(f.page)?;
                }
                return Ok(());
            }
        };
        match result {
            Ok(report) => {
                let whole = report.range.start == 0 && report.range.end == report.object.size;
                if let Some(j) = &mut self.journal {
                    j.append(&Record::Done {
                        key: f.key.clone(),
                        size: report.object.size,
                        etag: report.object.etag.clone(),
                        crc64: whole.then_some(report.crc64),
                        page: f.page,
                    })?;
                }
                self.settle(f.page)?;
                if leftover && report.fetched_bytes == 0 {
                    self.up_to_date(
                        f.key,
                        f.path,
                        report.object.size,
                        "already complete: an earlier run was stopped after renaming it into \
                         place, before deleting its checkpoint; the checkpoint was removed, \
                         nothing fetched",
                    );
                    self.progress(false);
                    return Ok(());
                }
                self.totals.done += 1;
                self.bytes += report.object.size;
                job.emit(&JobEvent::Done {
                    key: f.key,
                    path: f.path,
                    size: report.object.size,
                    fetched_bytes: report.fetched_bytes,
                    reused_bytes: report.reused_bytes,
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.deleted(f.key, f.path, f.size, f.page)?;
            }
            // Stopped by the caller or by --fail-fast: progress kept, not a failure.
            Err(e) if e.kind() == ErrorKind::Cancelled => self.settle_blocked = true,
            Err(e) => {
                self.object_failed(&f.key, f.page)?;
                self.totals.failed += 1;
                let line = serde_json::json!({
                    "key": f.key,
                    "path": f.path.to_string_lossy(),
                    "kind": format!("{:?}", e.kind()),
                    "error": e.to_string(),
                });
                self.record_failure(&line.to_string())?;
                job.emit(&JobEvent::Failed {
                    key: f.key,
                    path: f.path,
                    kind: e.kind(),
                    error: e.to_string(),
                });
                if job.fail_fast {
                    self.stop.cancel();
                }
            }
        }
        self.progress(false);
        Ok(())
    }

    fn record_failure(&mut self, line: &str) -> Result<(), JobError> {
        let path = self.failures_path.clone();
        let io = |source| JobError::Dest {
            op: "write the failures file",
            path: path.clone(),
            source,
        };
        if self.failures.is_none() {
            let f = std::fs::File::create(&self.failures_path).map_err(io)?;
            self.failures = Some(std::io::BufWriter::new(f));
        }
        let f = self.failures.as_mut().expect("just opened");
        writeln!(f, "{line}").and_then(|()| f.flush()).map_err(io)
    }

    fn progress(&self, force: bool) {
        let job = self.job;
        if job.events.is_none() {
            return;
        }
        {
            let mut l = self
                .last_progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !force && l.elapsed() < job.progress_interval {
                return;
            }
            *l = Instant::now();
        }
        job.emit(&JobEvent::Progress(self.totals()));
    }
}

/// One object's download (its file gets the object's modification time before the rename,
/// which the default skip rule recognises once the journal is gone).
async fn download(
    dl: Downloader,
    key: String,
    path: PathBuf,
    meta: ObjectMeta,
    page: u64,
    leftover: bool,
) -> Finished {
    let result = dl.download(&key, &path).await;
    Finished {
        key,
        path,
        size: meta.size,
        page,
        result: Outcome::Downloaded { result, leftover },
    }
}

/// Lists `prefix` page by page from `token` into `tx` (a channel of one page), retrying
/// transient failures; ends after the last page or the first lasting error.
async fn list_pages(
    lister: Arc<dyn Lister>,
    prefix: String,
    mut token: Option<String>,
    tx: mpsc::Sender<Result<ListPage, SourceError>>,
) {
    loop {
        let mut attempt = 0u32;
        let page = loop {
            attempt += 1;
            match lister.list_page(&prefix, token.as_deref()).await {
                Err(e) if e.kind.is_retryable() && attempt < LISTING_ATTEMPTS => {
                    let delay = Duration::from_millis(200u64 << attempt.min(6));
                    tracing::debug!(error = %e, ?delay, "listing failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                other => break other,
            }
        };
        let next = match &page {
            Ok(p) => p.next.clone(),
            Err(_) => None,
        };
        if tx.send(page).await.is_err() {
            return;
        }
        match next {
            Some(t) => token = Some(t),
            None => return,
        }
    }
}
