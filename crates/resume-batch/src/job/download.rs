//! One object's download: recorded as started, handed to the engine with the listing's
//! metadata and the job's shared connection limit and rate limit, its progress added to the
//! job's.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use resume_core::{CheckpointChoice, Downloader, Event, ObjectMeta, PART_SUFFIX, with_suffix};
use tokio::task::JoinSet;

use super::outcome::{Finished, Outcome};
use super::run::{Run, RunStop};
use super::{JobEvent, PlanAction};
use crate::journal::{Record, key_hash};

impl Run<'_> {
    /// Downloads (or, in a dry run, plans) one object that is not up to date: `true` when a
    /// download task was started. `leftover`: the file looks finished and a checkpoint an
    /// earlier run left is beside it; the engine recognises its own finished file without a
    /// request, so the object is told as started only if the engine does fetch something.
    pub(super) fn start(
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
