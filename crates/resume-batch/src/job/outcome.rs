//! What one object's task hands back, and what that does: done (journal, report), up to date,
//! deleted, failed (the failures file), or the next step after a stat or a checksum
//! comparison.

use std::io::Write;
use std::path::PathBuf;

use resume_core::{ErrorKind, ObjectMeta, Report, SourceError};
use tokio::task::JoinSet;

use super::JobEvent;
use super::run::{Run, RunStop};
use crate::error::JobError;
use crate::journal::Record;
use crate::skip::{Compared, LocalFile};

/// What one object's task hands back.
pub(super) struct Finished {
    pub(super) key: String,
    pub(super) path: PathBuf,
    pub(super) size: u64,
    pub(super) page: u64,
    pub(super) result: Outcome,
}

pub(super) enum Outcome {
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

impl Run<'_> {
    pub(super) fn finished(
        &mut self,
        f: Finished,
        tasks: &mut JoinSet<Finished>,
    ) -> Result<(), RunStop> {
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
                    verification: report.verification,
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
}
