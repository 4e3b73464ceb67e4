//! What a failed or interrupted download left on disk to resume from, in one sentence.
//!
//! The engine cannot promise that progress is saved (it depends on how far the download got,
//! on `--no-checkpoint`, on what a failure had to discard), so after a failure the CLI asks
//! [`resume_core::Downloader::saved_progress`], which looks at the files, and says how much
//! is saved and where, or that nothing is.

use resume_core::SavedProgress;

use crate::size::format_bytes;

/// One sentence on what is saved, for the end of an error message.
pub fn describe(saved: Option<&SavedProgress>, no_checkpoint: bool) -> String {
    match saved {
        Some(s) => {
            let partial = match s.parts_partial {
                0 => String::new(),
                1 => " and the beginning of 1 more".to_string(),
                n => format!(" and the beginnings of {n} more"),
            };
            format!(
                "saved: {} of {} parts{partial} ({} of {}) in {} and {}; run the same command to \
                 resume",
                s.parts_done,
                s.parts,
                format_bytes(s.done_bytes + s.partial_bytes),
                format_bytes(s.total_bytes),
                s.temp.display(),
                s.checkpoint
            )
        }
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
        let mut s = SavedProgress {
            done_bytes: 3 << 20,
            partial_bytes: 0,
            parts_partial: 0,
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
        assert!(!m.contains("beginning"), "{m}");
        // Parts in flight count with the bytes of their saved beginnings.
        s.partial_bytes = (1 << 20) + (1 << 19);
        s.parts_partial = 2;
        let m = describe(Some(&s), false);
        assert!(
            m.contains("3 of 8 parts and the beginnings of 2 more (4.5 MiB of 8.0 MiB)"),
            "{m}"
        );
        s.parts_partial = 1;
        assert!(describe(Some(&s), false).contains("and the beginning of 1 more ("));
        assert!(describe(None, false).contains("nothing is saved"));
        assert!(describe(None, true).contains("--no-checkpoint"));
    }
}
