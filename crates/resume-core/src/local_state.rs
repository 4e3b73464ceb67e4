//! What one download holds on disk — its temp file and checkpoint — and what it may do with
//! them: which files are provably its own (never anybody else's file that merely has the
//! name), and what a failed run keeps for the next one. See `docs/ARCHITECTURE.md`, "What is
//! ours on disk".

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use checkpoint::{CheckpointError, CheckpointId, CheckpointStore, Loaded, TempFile};

use crate::error::Error;
use crate::part_file::{PartFile, identity_at};

/// What one download holds on disk, across its attempts, and what it may do with it.
///
/// Progress already on disk is kept through every failure and cancellation of a later run,
/// unless that run proved it worthless (the object changed, the bytes failed verification,
/// the checkpoint did not validate): a run that cannot even reach the source must not cost
/// the user what earlier runs downloaded.
#[derive(Debug)]
pub(crate) struct Disk {
    pub(crate) part_path: PathBuf,
    /// The temp file: found and claimed by the checkpoint, or created by this run. Only a file
    /// held here is ever written, truncated, renamed or removed.
    pub(crate) file: OnceLock<PartFile>,
    /// What was on disk when the download started; the first attempt takes it.
    pub(crate) found: Mutex<Option<Found>>,
    /// This run replaced the state it found (saved a checkpoint, created or reset the file).
    pub(crate) touched: AtomicBool,
    /// The checkpoint on disk (as found, or as this run last wrote it) records a done part.
    pub(crate) progress: AtomicBool,
}

impl Disk {
    /// Leaves what a later run can resume from, and removes what it cannot use.
    pub(crate) fn after_failure(
        &self,
        store: Option<&dyn CheckpointStore>,
        id: &CheckpointId,
        e: &Error,
    ) {
        let worthless = matches!(e, Error::Changed { .. } | Error::Integrity { .. });
        let keep = match store {
            // Without a checkpoint nothing can resume from the temp file.
            None => false,
            Some(_) if worthless => false,
            // Untouched state is exactly what an earlier run left: it stays as it was.
            Some(_) => {
                !self.touched.load(Ordering::Relaxed) || self.progress.load(Ordering::Relaxed)
            }
        };
        if keep {
            return;
        }
        if let Some(s) = store {
            // Refuses (and leaves) a file that is not this download's checkpoint.
            let _ = s.delete(id);
        }
        if let Some(file) = self.file.get() {
            file.remove();
        }
    }

    pub(crate) fn touched(&self, progress: bool) {
        self.touched.store(true, Ordering::Relaxed);
        self.progress.store(progress, Ordering::Relaxed);
    }
}

/// The state an earlier run left, as found before this run sends any request.
#[derive(Debug)]
pub(crate) enum Found {
    Nothing,
    /// A checkpoint that could not be read (damaged, or a format this build does not read):
    /// reported and replaced when the download starts.
    Damaged(String),
    /// A checkpoint of a download into this destination, whose claim on the temp file (if one
    /// exists) was verified.
    Checkpoint(Box<Loaded>),
}

impl Found {
    pub(crate) fn has_progress(&self) -> bool {
        matches!(self, Found::Checkpoint(l)
            if !l.checkpoint.done.is_empty() || !l.checkpoint.partial.is_empty())
    }
}

/// Reads the checkpoint and decides whether the existing temp file (if any) is this
/// download's: only a checkpoint can prove that, and a file it does not claim is refused,
/// never taken over (it may be anybody's: a downloaded object called `data.rgpart`, say).
pub(crate) fn inspect(
    store: Option<&dyn CheckpointStore>,
    id: &CheckpointId,
    temp: Option<&PartFile>,
    part_path: &Path,
) -> Result<Found, Error> {
    let found = match store.map(|s| s.load(id)) {
        None | Some(Ok(None)) => Found::Nothing,
        Some(Ok(Some(loaded))) => {
            let theirs = &loaded.checkpoint.id.destination;
            if *theirs != id.destination {
                return Err(Error::Checkpoint(CheckpointError::Foreign {
                    location: store.map(|s| s.location(id)).unwrap_or_default(),
                    reason: format!("it is the checkpoint of a download into {theirs}"),
                }));
            }
            Found::Checkpoint(Box::new(loaded))
        }
        // A file that is not a checkpoint, or one that cannot be read, is never replaced.
        Some(Err(e @ (CheckpointError::Foreign { .. } | CheckpointError::Io { .. }))) => {
            return Err(e.into());
        }
        Some(Err(e)) => Found::Damaged(e.to_string()),
    };
    let Some(temp) = temp else {
        return Ok(found);
    };
    let why = match &found {
        _ if store.is_none() => Some(
            "this download keeps no checkpoint (--no-checkpoint), so nothing proves the file is \
             its own"
                .to_string(),
        ),
        Found::Nothing => Some(
            "no checkpoint of this download claims it (if it is an interrupted download's that \
             kept its checkpoint elsewhere, run that download again with the same checkpoint \
             location, e.g. --checkpoint-dir)"
                .to_string(),
        ),
        // The checkpoint at this download's own location is this project's, though damaged:
        // the temp file beside it is taken as the one it described.
        Found::Damaged(_) => None,
        Found::Checkpoint(l) => {
            let location = store.map(|s| s.location(id)).unwrap_or_default();
            let cp = &l.checkpoint;
            let len = temp.len()?;
            match cp.temp_file {
                TempFile::Created(claimed) if claimed.same_as(&temp.identity()?) => None,
                TempFile::Created(_) => Some(format!(
                    "is not the file the checkpoint {location} recorded as this download's temp \
                     file"
                )),
                TempFile::NotCreated if len == 0 => None,
                TempFile::NotCreated => Some(format!(
                    "holds {len} bytes, while the checkpoint {location} was saved before this \
                     download created its temp file"
                )),
                TempFile::Unrecorded if len == cp.layout.len => None,
                TempFile::Unrecorded => Some(format!(
                    "holds {len} bytes, not the {} of the download in the checkpoint {location}",
                    cp.layout.len
                )),
            }
        }
    };
    match why {
        None => Ok(found),
        Some(why) => Err(Error::ForeignFile {
            path: part_path.to_owned(),
            why,
        }),
    }
}

/// Whether `path` is an existing file that starts with the checkpoint format's magic bytes.
pub(crate) fn is_checkpoint_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; checkpoint::codec::MAGIC.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == checkpoint::codec::MAGIC)
}

/// Progress a checkpoint records that a later run of the same download would resume from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedProgress {
    /// Bytes in the parts recorded done.
    pub done_bytes: u64,
    /// Bytes saved at the beginning of parts not done (a resume asks only for the rest).
    pub partial_bytes: u64,
    /// Parts with a saved beginning.
    pub parts_partial: u64,
    /// Bytes the download covers.
    pub total_bytes: u64,
    pub parts_done: u64,
    pub parts: u64,
    /// Where the checkpoint is ([`CheckpointStore::location`]).
    pub checkpoint: String,
    /// The temp file holding the parts.
    pub temp: PathBuf,
}

/// What [`inspect`] and the first attempt would resume from, read without locking or
/// changing anything: this download's checkpoint, with a done part or a part's saved
/// beginning, claiming `temp` at the layout's length.
pub(crate) fn saved_progress(
    store: &dyn CheckpointStore,
    id: &CheckpointId,
    temp: &Path,
) -> Option<SavedProgress> {
    let cp = store.load(id).ok()??.checkpoint;
    if cp.id != *id || (cp.done.is_empty() && cp.partial.is_empty()) {
        return None;
    }
    let (identity, len) = identity_at(temp)?;
    let claimed = match cp.temp_file {
        TempFile::Created(claimed) => claimed.same_as(&identity),
        TempFile::Unrecorded => true,
        TempFile::NotCreated => false,
    };
    (claimed && len == cp.layout.len).then(|| SavedProgress {
        done_bytes: cp.done_bytes(),
        partial_bytes: cp.partial_bytes(),
        parts_partial: cp.partial.len() as u64,
        total_bytes: cp.layout.len,
        parts_done: cp.done.len() as u64,
        parts: cp.layout.part_count,
        checkpoint: store.location(id),
        temp: temp.to_owned(),
    })
}

/// Removes what a download left for a later run that will never come (its object is gone
/// from the source): the checkpoint, if it is this download's, and the temp file only if that
/// checkpoint claims it. A file the checkpoint does not claim is anybody's and stays. `true`
/// when anything was removed.
pub(crate) fn discard(store: &dyn CheckpointStore, id: &CheckpointId, temp: &Path) -> bool {
    let Ok(Some(loaded)) = store.load(id) else {
        return false;
    };
    let cp = loaded.checkpoint;
    if cp.id != *id {
        return false;
    }
    let mut removed = false;
    if let Some((identity, len)) = identity_at(temp) {
        let claimed = match cp.temp_file {
            TempFile::Created(claimed) => claimed.same_as(&identity),
            TempFile::Unrecorded => len == cp.layout.len,
            TempFile::NotCreated => false,
        };
        removed |= claimed && std::fs::remove_file(temp).is_ok();
    }
    // Refuses (and leaves) a file that is not this download's checkpoint.
    removed |= store.delete(id).is_ok();
    removed
}
