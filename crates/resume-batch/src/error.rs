//! What stops a whole job (per-object failures do not: they are counted in the
//! [`Summary`](crate::Summary) and the job goes on).

use std::path::PathBuf;

use resume_core::SourceError;

use crate::job::Summary;

/// Why a job stopped before it went through its whole listing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A setting that cannot work.
    #[error("{0}")]
    Config(String),

    /// The destination directory could not be prepared.
    #[error("cannot {op} {}: {source}; check that the directory exists and is writable", path.display())]
    Dest {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The journal could not be read or written.
    #[error(
        "cannot {op} {}: {source}; check the disk and permissions (with --checkpoint-dir, that \
         directory), then run the same command again to resume",
        path.display()
    )]
    Journal {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another job holds the journal.
    #[error(
        "another job is running into the same destination (its journal {} is locked); wait \
         for it to finish, or download into another directory",
        path.display()
    )]
    Locked { path: PathBuf },

    /// The listing failed; objects already downloaded are kept and recorded.
    #[error(
        "listing the objects under {prefix:?} failed after {listed} objects: {source}; run the \
         same command again to resume (objects already downloaded are not requested again)"
    )]
    Listing {
        prefix: String,
        listed: u64,
        #[source]
        source: Box<SourceError>,
        summary: Box<Summary>,
    },

    /// Cancelled (the job's token): progress is saved, the same job resumes.
    #[error("the job was interrupted; run the same command again to resume")]
    Cancelled { summary: Box<Summary> },
}

impl JobError {
    /// What the job had done when it stopped, if it got as far as downloading.
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Self::Listing { summary, .. } | Self::Cancelled { summary } => Some(summary),
            _ => None,
        }
    }
}
