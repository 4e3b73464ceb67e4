//! What happens to one listed object before any request: its key mapped to a path inside
//! DEST, the selection, clashes (URL names, case folding, links, files where directories go),
//! the skip rules, and then a stat, a checksum comparison or a download.

use std::path::{Path, PathBuf};

use resume_core::{ListedObject, ObjectMeta};
use tokio::task::JoinSet;

use super::outcome::{Finished, Outcome};
use super::run::{Run, RunStop};
use super::{JobEvent, PlanAction, SkipReason};
use crate::journal::key_hash;
use crate::path::{fold_case, map_relative, relative_name};
use crate::skip::{Decision, LocalFile, compare_checksums, decide};

impl Run<'_> {
    /// Decides what to do with one listed object (of page `page`), and starts its download if
    /// it needs one: `true` when it did (the object settles when the download ends).
    /// `carried`: a failed object of a settled page, known by key only (stat'ed first).
    pub(super) fn consider(
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
    pub(super) fn up_to_date(
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
    pub(super) fn judge(
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

    pub(super) fn skipped(
        &mut self,
        key: String,
        path: Option<PathBuf>,
        reason: SkipReason,
        _size: u64,
    ) {
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
}
