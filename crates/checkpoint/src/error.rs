use std::io;
use std::path::PathBuf;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The checkpoint exists but its bytes cannot be trusted.
    #[error(
        "checkpoint {location} is corrupt ({reason}); it will be discarded and the download \
         restarted from its first byte"
    )]
    Corrupt { location: String, reason: String },

    /// The checkpoint was written by a format this build does not read.
    #[error(
        "checkpoint {location} has format version {found}, this build reads version \
         {supported}; it will be discarded and the download restarted"
    )]
    UnsupportedVersion {
        location: String,
        found: u32,
        supported: u32,
    },

    /// A file sits where the checkpoint belongs, and it is not a checkpoint (or it is another
    /// download's): it is never read as one, overwritten or deleted.
    #[error(
        "{location} is not this download's checkpoint ({reason}); resume-get never overwrites \
         or deletes a file it cannot prove is its own: move it away, or keep checkpoints \
         elsewhere (--checkpoint-dir)"
    )]
    Foreign { location: String, reason: String },

    /// Reading or writing the checkpoint's file failed.
    #[error("cannot {op} checkpoint file {}: {source}; check that the directory exists, is writable and has free space", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The engine used the store out of order (a bug in the caller, not in the data).
    #[error("checkpoint store misuse: {0}")]
    Misuse(String),
}
