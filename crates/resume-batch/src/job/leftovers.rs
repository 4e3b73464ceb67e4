//! What a job does about objects that failed or were deleted from the source, and what it
//! reads from the files it finished: carried failures (retried by key on every rerun), the
//! leftovers of interrupted downloads whose objects are gone (removed only when the journal
//! proves them the job's), and the record each finished file keeps of its object.

use std::path::{Path, PathBuf};

use resume_core::recorded::{RecordedObject, object_id, recorded_object};
use resume_core::{CheckpointChoice, Downloader, PART_SUFFIX, with_suffix};

use super::run::{Run, RunStop};
use super::{JobEvent, SkipReason};
use crate::journal::{Record, key_hash};
use crate::path::{map_relative, relative_name};
use crate::skip::SkipRule;

impl Run<'_> {
    /// The listing has been gone through: the objects earlier runs started or saw fail that
    /// it no longer names were deleted from the source. What their downloads left is removed
    /// (only what the journal proves this job's: see [`Run::remove_leftovers`]), and failed
    /// ones are no longer retried.
    pub(super) fn forget_unlisted(&mut self) -> Result<(), RunStop> {
        let mut removed = 0u64;
        for (h, (key, checkpointed)) in std::mem::take(&mut self.unseen) {
            if let Some(checkpointed) = checkpointed {
                removed += u64::from(self.remove_leftovers(&key, checkpointed));
            }
            if self.state.failed.contains_key(&h)
                && let Some(j) = &mut self.journal
            {
                j.append(&Record::Dropped { key })?;
            }
        }
        if removed > 0
            && let Some(j) = &self.journal
        {
            self.job.emit(&JobEvent::JournalNote {
                path: j.path().to_owned(),
                note: format!(
                    "removed the temp files and checkpoints of {removed} interrupted \
                     download(s) whose objects were deleted from the source since"
                ),
            });
        }
        Ok(())
    }

    /// What the file at `path` records about its object under the default skip rule, if it
    /// is `key`'s record (this source, this key) and the file is unchanged since (one
    /// `lgetxattr`, no request).
    pub(super) fn record_of(&self, key: &str, path: &Path) -> Option<RecordedObject> {
        if self.job.skip != SkipRule::Default {
            return None;
        }
        recorded_object(path).filter(|r| r.object == object_id(&self.source_identity, key))
    }

    /// The local path of `key`, as [`Run::consider`] maps it (`None`: it has none).
    fn local_path(&self, key: &str) -> Option<PathBuf> {
        let job = self.job;
        let rel = if job.url_names {
            crate::files_from::url_name(key)
        } else {
            relative_name(&job.prefix, key).ok()?
        };
        let rel_path = map_relative(rel, &self.limits).ok()?;
        // Only through real directories inside DEST (a link put there since is not followed).
        let mut at = self.dest.clone();
        for c in rel_path.parent()?.components() {
            at.push(c);
            if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
                return None;
            }
        }
        Some(self.dest.join(rel_path))
    }

    /// The engine's settings that locate a multi-part object's checkpoint.
    pub(super) fn checkpointing(&self) -> Downloader {
        let dl = self.job.template.clone();
        match &self.job.state_dir {
            Some(dir) => dl.checkpoint_choice(CheckpointChoice::InDir(dir.clone())),
            None => dl.checkpoint_choice(CheckpointChoice::BesideDest),
        }
    }

    /// Removes what an interrupted download of `key` that this job started left, its object
    /// being gone from the source: a multi-part object's checkpoint and the temp file it
    /// claims (the engine checks both are this download's); a one-part object's temp file,
    /// which the journal's Started record proves the job's (recorded only when no file had
    /// that name). Nothing else: a user's file of such a name has no record. `true` when
    /// anything was removed.
    fn remove_leftovers(&self, key: &str, checkpointed: bool) -> bool {
        let Some(path) = self.local_path(key) else {
            return false;
        };
        if checkpointed {
            return self.checkpointing().discard_saved_progress(key, &path);
        }
        let part = with_suffix(&path, PART_SUFFIX);
        std::fs::symlink_metadata(&part).is_ok_and(|m| m.is_file())
            && std::fs::remove_file(&part).is_ok()
    }

    /// An object found deleted from the source: reported as skipped; what an interrupted
    /// download of it left is removed, and a failed one is no longer retried.
    pub(super) fn deleted(
        &mut self,
        key: String,
        path: PathBuf,
        size: u64,
        page: u64,
    ) -> Result<(), RunStop> {
        let h = key_hash(&key);
        let checkpointed =
            size > self.job.part_size || self.state.started.get(&h).is_some_and(|s| s.checkpointed);
        if checkpointed || self.state.started.contains_key(&h) {
            self.remove_leftovers(&key, checkpointed);
        }
        if self.state.failed.contains_key(&h)
            && let Some(j) = &mut self.journal
        {
            j.append(&Record::Dropped { key: key.clone() })?;
        }
        self.skipped(key, Some(path), SkipReason::Deleted, size);
        self.settle(page)
    }

    /// An object failed: in a listing job its page settles all the same and the journal
    /// carries its key, so every rerun retries it without listing its page again; a list's
    /// (`stat_each`) keeps its page unsettled (its entries are read again, not requested).
    pub(super) fn object_failed(&mut self, key: &str, page: u64) -> Result<(), RunStop> {
        if self.job.stat_each {
            self.settle_blocked = true;
            return Ok(());
        }
        if let Some(j) = &mut self.journal {
            j.append(&Record::Failed {
                key: key.to_owned(),
                page,
            })?;
        }
        self.settle(page)
    }
}
