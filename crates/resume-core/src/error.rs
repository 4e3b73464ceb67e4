//! The engine's one public error type. Every variant names what failed and what to do.

use std::io;
use std::ops::Range;
use std::path::PathBuf;

use checkpoint::CheckpointError;

use crate::source::{SourceError, SourceErrorKind};

/// Coarse classes of failure, for callers that map errors to exit codes or policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller asked for something impossible (bad part size, range, destination).
    Usage,
    NotFound,
    Denied,
    /// The object changed while (or since) it was being downloaded.
    Changed,
    /// The bytes did not verify against the object's checksum.
    Integrity,
    /// Local file system trouble: disk full, permissions, missing directory.
    LocalIo,
    /// The source kept failing (network, 5xx) and retries ran out, or it misbehaves.
    Network,
    /// Another download holds the destination.
    Locked,
    /// Stopped by the caller's cancellation token.
    Cancelled,
    Other,
}

/// Why a download did not complete. A failed download leaves DEST untouched and keeps the
/// temp file and checkpoint, so running the same download again resumes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The download was configured with values it cannot work with.
    #[error("invalid download settings: {0}")]
    Config(String),

    /// The requested range does not fit the object.
    #[error(
        "cannot download {key}: range {range} is not satisfiable: {reason}; pick a range within the object's {size} bytes"
    )]
    InvalidRange {
        key: String,
        range: String,
        size: u64,
        reason: String,
    },

    /// Reading the object's metadata failed.
    #[error(
        "cannot read metadata of {key}{}: {source}{}",
        after(*attempts, "attempt"), advice(source, stat_hint(source.kind))
    )]
    Stat {
        key: String,
        attempts: u32,
        #[source]
        source: Box<SourceError>,
    },

    /// A part could not be fetched.
    #[error(
        "part {part} (bytes {}-{}) of {key} failed{}: {source}{}",
        range.start, range.end.saturating_sub(1), after(*attempts, "request"),
        advice(source, hint(source.kind))
    )]
    Part {
        key: String,
        part: u64,
        range: Range<u64>,
        attempts: u32,
        #[source]
        source: Box<SourceError>,
    },

    /// The object is no longer the version the download started with.
    #[error("{key} changed {detail}; {advice}")]
    Changed {
        key: String,
        detail: String,
        advice: String,
    },

    /// The source answered in a way that can never yield correct data (e.g. it ignores ranges).
    #[error("cannot download {key}: {detail}")]
    BadSource { key: String, detail: String },

    /// The assembled bytes do not match a checksum the store published or the caller gave.
    #[error(
        "{key} failed verification: {algorithm} of the downloaded bytes is {actual}, {origin} \
         says {expected}; the partial download was discarded and the destination left as it \
         was; run again to fetch it afresh (if it keeps failing, check the expected value, or \
         the object or the path to it is corrupting data)"
    )]
    Integrity {
        key: String,
        /// The algorithm's name, e.g. `CRC-64/XZ`, `SHA-256`.
        algorithm: String,
        /// Who gave the expected value: the store (`OSS`) or the caller (`--checksum`).
        origin: String,
        /// Expected and computed values, in hex (CRCs also in decimal).
        expected: String,
        actual: String,
    },

    /// Checksums are required ([`Downloader::require_checksum`](crate::Downloader::require_checksum))
    /// and there is none to verify this download with; nothing was fetched.
    #[error(
        "{key} cannot be verified: {reason}; nothing was downloaded because a checksum is \
         required: give the expected digest (resume-get: --checksum ALG=HEX or --checksum-file \
         SUMS), or allow unverified downloads"
    )]
    Unverifiable { key: String, reason: String },

    /// A local file operation failed.
    #[error("cannot {op} {}: {source}; {}", path.display(), io_hint(source))]
    LocalIo {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing the checkpoint failed.
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),

    /// Another download is writing the same destination.
    #[error(
        "another download into {} is running (it holds the lock on {}); wait for it to finish \
         or stop it, then run again",
        dest.display(), lock.display()
    )]
    Locked { dest: PathBuf, lock: PathBuf },

    /// A file sits where this download keeps its temp file, and nothing proves it is this
    /// download's (say, a downloaded object called `data.rgpart`): it is never written,
    /// truncated or deleted.
    #[error(
        "{} exists and {why}; resume-get never overwrites or deletes a file it cannot prove is \
         its own: move it away (or delete it, if it is the remains of a download you no longer \
         need), or choose another destination",
        path.display()
    )]
    ForeignFile { path: PathBuf, why: String },

    /// The caller cancelled. Finished parts and the received beginnings of the parts in
    /// flight are recorded in the checkpoint for a resume;
    /// [`Downloader::saved_progress`](crate::Downloader::saved_progress) says how much (what
    /// the files hold, which is what counts). The message does not.
    #[error("download of {key} interrupted")]
    Cancelled {
        key: String,
        done_bytes: u64,
        total_bytes: u64,
    },
}

impl Error {
    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::InvalidRange { .. } => ErrorKind::Usage,
            // A part's range lies inside the size the source itself reported: refusing it is
            // the source's inconsistency, not a bad argument.
            Error::Part { source, .. } if source.kind == SourceErrorKind::InvalidRange => {
                ErrorKind::Network
            }
            Error::Stat { source, .. } | Error::Part { source, .. } => match source.kind {
                SourceErrorKind::NotFound => ErrorKind::NotFound,
                SourceErrorKind::Denied => ErrorKind::Denied,
                SourceErrorKind::Changed => ErrorKind::Changed,
                SourceErrorKind::InvalidRange | SourceErrorKind::Misconfigured => ErrorKind::Usage,
                SourceErrorKind::Transient => ErrorKind::Network,
                _ => ErrorKind::Other,
            },
            Error::Changed { .. } => ErrorKind::Changed,
            Error::BadSource { .. } => ErrorKind::Network,
            Error::Integrity { .. } | Error::Unverifiable { .. } => ErrorKind::Integrity,
            Error::LocalIo { .. } => ErrorKind::LocalIo,
            Error::Checkpoint(CheckpointError::Io { .. } | CheckpointError::Foreign { .. })
            | Error::ForeignFile { .. } => ErrorKind::LocalIo,
            Error::Checkpoint(_) => ErrorKind::Other,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::LocalIo {
            op,
            path: path.into(),
            source,
        }
    }
}

/// " after N attempts" when there was more than one; a single try goes without saying.
fn after(n: u32, what: &str) -> String {
    if n > 1 {
        format!(" after {n} {what}s")
    } else {
        String::new()
    }
}

/// "; " and what to do: the source's own hint when it has one (nothing when its message
/// already says it), else the engine's `generic` advice for the kind.
fn advice(source: &SourceError, generic: &str) -> String {
    match source.hint.as_deref().unwrap_or(generic) {
        "" => String::new(),
        text => format!("; {text}"),
    }
}

// The hints never claim that progress is saved: whether anything resumable is on disk depends
// on how far the download got and on its checkpoint settings, which only the caller can check
// (resume-get looks at the files and says what is there).
fn hint(kind: SourceErrorKind) -> &'static str {
    match kind {
        SourceErrorKind::NotFound => "check the bucket, the key and the version id",
        SourceErrorKind::Denied => {
            "check the credentials and that they are allowed to read this object"
        }
        SourceErrorKind::Changed => {
            "the object was replaced; run again to download the new version"
        }
        SourceErrorKind::InvalidRange => {
            "the source refused bytes inside the size it reported for the object, so it \
             answers inconsistently (or the object is being replaced); run again later"
        }
        SourceErrorKind::Transient => {
            "the network or server kept failing; run again once it recovers"
        }
        SourceErrorKind::Misconfigured => {
            "change the settings the message names and run again; retrying as is cannot help"
        }
        _ => {
            "the source refused the request and retrying cannot help; fix the cause and run \
              the same download again"
        }
    }
}

fn stat_hint(kind: SourceErrorKind) -> &'static str {
    match kind {
        SourceErrorKind::Transient => {
            "the endpoint could not be reached or kept failing; check the endpoint and the \
             network, then run again"
        }
        SourceErrorKind::InvalidRange => "check the requested range against the object's size",
        SourceErrorKind::NotFound
        | SourceErrorKind::Denied
        | SourceErrorKind::Changed
        | SourceErrorKind::Misconfigured => hint(kind),
        _ => {
            "the source refused the request and retrying cannot help; check the source URL, \
             endpoint, region and options"
        }
    }
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => {
            "free some space and run again to resume"
        }
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            "check the permissions of the destination directory"
        }
        io::ErrorKind::NotFound => "check that the directory exists",
        io::ErrorKind::NotADirectory => "a part of the destination path is not a directory",
        io::ErrorKind::InvalidFilename => "choose a shorter file name",
        _ => {
            "check the destination path and its file system, then run again (progress already \
             recorded is kept)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_error_names_key_part_range_attempts_code_and_request_id() {
        let e = Error::Part {
            key: "abc/efg/123.jpg".into(),
            part: 7,
            range: 700..800,
            attempts: 10,
            source: Box::new(
                SourceError::transient("connection reset")
                    .with_status(503)
                    .with_code("SlowDown")
                    .with_request_id("REQ-1"),
            ),
        };
        let m = e.to_string();
        for needle in [
            "abc/efg/123.jpg",
            "part 7",
            "700-799",
            "10 request",
            "SlowDown",
            "REQ-1",
            "run again",
        ] {
            assert!(m.contains(needle), "{needle:?} missing from {m:?}");
        }
        assert_eq!(e.kind(), ErrorKind::Network);
    }

    #[test]
    fn a_refused_part_range_is_the_sources_inconsistency_not_a_usage_error() {
        let refused =
            || Box::new(SourceError::new(SourceErrorKind::InvalidRange, "416").with_status(416));
        let part = Error::Part {
            key: "k".into(),
            part: 2,
            range: 20..30,
            attempts: 1,
            source: refused(),
        };
        assert_eq!(part.kind(), ErrorKind::Network);
        let m = part.to_string();
        assert!(
            m.contains("inconsistently") && m.contains("run again"),
            "{m}"
        );
        let stat = Error::Stat {
            key: "k".into(),
            attempts: 1,
            source: refused(),
        };
        assert_eq!(stat.kind(), ErrorKind::Usage);
        assert!(stat.to_string().contains("check the requested range"));
    }

    #[test]
    fn disk_full_says_to_free_space() {
        let e = Error::io(
            "write",
            "/tmp/x",
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert!(e.to_string().contains("free some space"));
        assert_eq!(e.kind(), ErrorKind::LocalIo);
    }
}
