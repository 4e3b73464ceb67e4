//! One run of a job: its state opened (journal, settled listing, objects earlier runs left
//! started or failed), the [`Run`] that the scheduler drives, and the end (journal synced or
//! removed, summary).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use resume_core::{CancellationToken, ConnectionLimit, PART_SUFFIX, SourceError};

use super::listing::PageTrack;
use super::{Job, JobEvent, Summary, Totals};
use crate::error::JobError;
use crate::journal::{JobState, Journal, KeyHash, Opened, SettledListing};
use crate::path::{Limits, STATE_DIR};

impl Job {
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

pub(super) enum RunStop {
    Listing(SourceError),
    Fatal(JobError),
}

impl From<JobError> for RunStop {
    fn from(e: JobError) -> Self {
        RunStop::Fatal(e)
    }
}

pub(super) struct Run<'j> {
    pub(super) job: &'j Job,
    pub(super) dest: PathBuf,
    pub(super) limits: Limits,
    pub(super) case_insensitive: bool,
    pub(super) journal: Option<Journal>,
    pub(super) state: JobState,
    pub(super) limit: ConnectionLimit,
    /// Cancelled by the caller's token or by `--fail-fast`: stops admitting objects and
    /// stops the downloads in flight (which keep their progress).
    pub(super) stop: CancellationToken,
    pub(super) totals: Totals,
    /// Where this run started the listing (pages earlier runs settled).
    pub(super) resume: Option<SettledListing>,
    /// The number the next page gets (pages are numbered from 0 across runs).
    pub(super) next_page: u64,
    /// Pages listed and not yet settled, in order.
    pub(super) pages: VecDeque<PageTrack>,
    /// An object was interrupted (or failed in a job that cannot retry by key, a list's):
    /// its page, and so every later one, stays unsettled in this run (a rerun must look at it
    /// again).
    pub(super) settle_blocked: bool,
    /// Objects earlier runs started (with whether they keep a checkpoint) or saw fail, on
    /// pages this run lists again, not yet named by this run's listing: once the listing has
    /// been gone through, they were deleted from the source.
    pub(super) unseen: HashMap<KeyHash, (String, Option<bool>)>,
    /// Failed objects of pages earlier runs settled, to retry (page, key).
    pub(super) carried: VecDeque<(u64, String)>,
    /// The source's identity, as the engine names objects in their files' records.
    pub(super) source_identity: String,
    pub(super) excluded: u64,
    pub(super) bytes: u64,
    /// Case-folded paths of this job's objects, on a case-insensitive destination.
    pub(super) folded: HashSet<u64>,
    /// Paths of this run's objects when keys are URLs (two URLs can name one path).
    pub(super) taken: HashSet<u64>,
    /// Directories known to be real directories inside DEST.
    pub(super) dirs: HashSet<PathBuf>,
    /// Paths of the downloads in flight (at most `2 × jobs`): no directory is created where
    /// one of them is about to put its file.
    pub(super) inflight: HashSet<PathBuf>,
    pub(super) failures_path: PathBuf,
    pub(super) failures: Option<std::io::BufWriter<std::fs::File>>,
    pub(super) fetched: Arc<AtomicU64>,
    pub(super) last_progress: Mutex<Instant>,
}

impl Run<'_> {
    pub(super) fn totals(&self) -> Totals {
        Totals {
            fetched_bytes: self.fetched.load(Ordering::Relaxed),
            ..self.totals
        }
    }

    pub(super) fn progress(&self, force: bool) {
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
