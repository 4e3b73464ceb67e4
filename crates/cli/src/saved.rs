//! What a failed or interrupted download left on disk to resume from.
//!
//! The engine cannot promise that progress is saved (it depends on how far the download got,
//! on `--no-checkpoint`, on what a failure had to discard), so after a failure the CLI looks:
//! progress is saved only if this download's checkpoint loads, records at least one finished
//! part, and the temp file beside DEST has the length it expects. The message then says how
//! much is saved and where, or that nothing is.

use std::path::{Path, PathBuf};

use checkpoint::{CheckpointId, CheckpointStore, FileCheckpointStore, RangeSpec};
use resume_core::{PART_SUFFIX, with_suffix};

use crate::args::DownloadOpts;
use crate::size::format_bytes;

/// Resumable progress found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub done_bytes: u64,
    pub total_bytes: u64,
    pub parts_done: u64,
    pub parts: u64,
    pub checkpoint: PathBuf,
    pub temp: PathBuf,
}

/// The resumable state of the download of `key` from the source named `identity` into
/// `dest` (as given on the command line, or resolved in a directory), if there is any.
pub fn inspect(identity: String, key: &str, opts: &DownloadOpts, dest: &Path) -> Option<Saved> {
    if opts.no_checkpoint {
        return None;
    }
    // The file the engine wrote (directory canonicalised, a symbolic link followed).
    let dest = resume_core::resolve_dest(dest).ok()?;
    let store = match &opts.checkpoint_dir {
        Some(dir) => FileCheckpointStore::in_dir(dir),
        None => FileCheckpointStore::beside(&dest),
    };
    let id = CheckpointId {
        source: identity,
        key: key.to_owned(),
        version_id: opts.version_id.clone(),
        range: opts.range.unwrap_or(RangeSpec::Full),
        destination: dest.to_string_lossy().into_owned(),
    };
    let checkpoint = store.path(&id);
    let loaded = store.load(&id).ok()??.checkpoint;
    if loaded.id != id || loaded.done.is_empty() {
        return None;
    }
    let temp = with_suffix(&dest, PART_SUFFIX);
    let len = std::fs::metadata(&temp).ok()?.len();
    if len != loaded.layout.len {
        return None;
    }
    Some(Saved {
        done_bytes: loaded.done_bytes(),
        total_bytes: loaded.layout.len,
        parts_done: loaded.done.len() as u64,
        parts: loaded.layout.part_count,
        checkpoint,
        temp,
    })
}

/// One sentence on what is saved, for the end of an error message.
pub fn describe(saved: Option<&Saved>, no_checkpoint: bool) -> String {
    match saved {
        Some(s) => format!(
            "saved: {} of {} parts ({} of {}) in {} and {}; run the same command to resume",
            s.parts_done,
            s.parts,
            format_bytes(s.done_bytes),
            format_bytes(s.total_bytes),
            s.temp.display(),
            s.checkpoint.display()
        ),
        None if no_checkpoint => {
            "nothing is saved (--no-checkpoint); running again starts from the beginning".into()
        }
        None => "nothing is saved; running again starts from the beginning".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_what_is_there_and_only_that() {
        let s = Saved {
            done_bytes: 3 << 20,
            total_bytes: 8 << 20,
            parts_done: 3,
            parts: 8,
            checkpoint: "/d/o.bin.rgcp".into(),
            temp: "/d/o.bin.rgpart".into(),
        };
        let m = describe(Some(&s), false);
        assert!(m.contains("3 of 8 parts"), "{m}");
        assert!(
            m.contains("/d/o.bin.rgpart") && m.contains("/d/o.bin.rgcp"),
            "{m}"
        );
        assert!(describe(None, false).contains("nothing is saved"));
        assert!(describe(None, true).contains("--no-checkpoint"));
    }

    #[test]
    fn nothing_is_saved_without_a_checkpoint_file() {
        let dir = tempfile::tempdir().unwrap();
        use clap::Parser;
        let opts = crate::args::Cli::parse_from(["resume-get", "s", "d"]).opts;
        let dest = dir.path().join("x.bin");
        std::fs::write(with_suffix(&dest, PART_SUFFIX), b"temp without checkpoint").unwrap();
        assert_eq!(inspect("file:///".into(), "k", &opts, &dest), None);
    }
}
