//! A crash-safe checkpoint store on the local file system.
//!
//! One file per download holds a snapshot followed by an append-only journal (format in the
//! `journal` module). The life of that file:
//!
//! * `save` writes the full snapshot to a temporary file in the same directory, fsyncs it,
//!   renames it over the checkpoint file and fsyncs the directory. A crash at any point leaves
//!   either the previous file or the new one, complete, at the checkpoint path; a leftover
//!   temporary file is never read.
//! * `record` only buffers in memory; `flush` appends every buffered record with one write
//!   (survives a crash of the process: the data is in the kernel), and `sync` makes it durable
//!   across power loss with one `sync_data`, which the engine calls at a bounded rate (group
//!   commit). That is O(1) I/O per part, and a crash during the append leaves a torn tail that
//!   `load` recognizes and ignores.
//! * `load` reads the snapshot (which must be intact) and applies the journal up to its first
//!   bad record.
//!
//! Writers call `record`/`flush` while a `flush` may be syncing: buffered records and the
//! file have separate locks, so recording a part never waits for the disk.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::codec;
use crate::error::CheckpointError;
use crate::journal::{self, Appender, Entry, Target, Tracker};
use crate::model::{Checkpoint, CheckpointId, PartDigest, PartialPart};
use crate::names;
use crate::store::{CheckpointStore, Loaded};

/// Suffix of checkpoint files.
pub const EXTENSION: &str = "rgcp";

/// At most this many characters of the key's last segment appear in a file name.
const MAX_SEGMENT_CHARS: usize = 48;

/// Room kept in a temporary file's name for `<pid>-<counter>` (two decimal `u32`/`u64` and
/// a dash), after the prefix from [`temp_prefix`].
const TEMP_COUNTER_BYTES: usize = 10 + 1 + 20;

/// Distinguishes temporary files of concurrent `save`s within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Stores checkpoints in files, either beside the destination or in a directory of their own.
///
/// See the module documentation for the file format and its crash-safety argument.
#[derive(Debug)]
pub struct FileCheckpointStore {
    placement: Placement,
    /// Journals this store appends to, by checkpoint file; created by `save`.
    open: Mutex<HashMap<PathBuf, Arc<OpenJournal>>>,
    bytes_written: AtomicU64,
}

#[derive(Debug, Clone)]
enum Placement {
    /// Always this file, whatever the id.
    Beside(PathBuf),
    /// A file per id in this directory.
    InDir(PathBuf),
}

/// The journal that follows the last snapshot this store saved at one path.
#[derive(Debug)]
struct OpenJournal {
    target: Target,
    /// Recorded but not yet flushed.
    pending: Mutex<Vec<Entry>>,
    /// Taken by `flush` for the whole append + sync, and *before* `pending`, so batches reach
    /// the file in the order they were taken.
    writer: Mutex<Writer>,
}

#[derive(Debug)]
struct Writer {
    /// The snapshot's file (opened for appending), whatever name it has now.
    file: File,
    appender: Appender,
    /// Bytes in the file known to be whole: snapshot plus whole records.
    len: u64,
    /// What the file says, to rewrite its snapshot when partial records pile up.
    tracker: Tracker,
    /// Set when a write or sync failed in a way that leaves the file's tail unknown; every
    /// later `flush` fails until the next `save` starts a new file.
    failed: Option<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent before anything that could
    // panic, so a poisoned lock still guards valid state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> CheckpointError {
    CheckpointError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl FileCheckpointStore {
    /// Keeps the checkpoint beside the destination: `a.tar.gz` → `a.tar.gz.rgcp`.
    ///
    /// A name too long for the file system with `.rgcp` appended is shortened, with a hash
    /// of the whole name, to fit ([`names::sibling`](crate::names::sibling)): the same
    /// destination always gives the same file.
    ///
    /// Every id maps to this one file, so use one such store per destination.
    pub fn beside(dest: impl AsRef<Path>) -> Self {
        let dest = normalize(dest.as_ref());
        let file = names::sibling(&dest, &format!(".{EXTENSION}"));
        Self::with(Placement::Beside(file))
    }

    /// Keeps the checkpoint in exactly the file `path`, whatever the download (like
    /// [`beside`](Self::beside), one store per destination). For callers that let users
    /// name the checkpoint file, as the OSS SDKs' `Checkpoint(true, path)` does.
    pub fn at(path: impl AsRef<Path>) -> Self {
        Self::with(Placement::Beside(normalize(path.as_ref())))
    }

    /// Keeps checkpoints in `dir` (created on the first `save`), one file per download:
    /// `<last key segment, sanitized>-<32 hex digits of blake3(id)>.rgcp`.
    ///
    /// The readable part helps a person find a download's checkpoint; the hash makes the name
    /// unique per id. The sanitized segment keeps only `[A-Za-z0-9._-]`, at most 48 characters,
    /// never starts with `.` and is never empty, so no key can name a file outside `dir` or a
    /// hidden one.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        Self::with(Placement::InDir(normalize(dir.as_ref())))
    }

    fn with(placement: Placement) -> Self {
        Self {
            placement,
            open: Mutex::new(HashMap::new()),
            bytes_written: AtomicU64::new(0),
        }
    }

    /// The checkpoint file for `id`.
    pub fn path(&self, id: &CheckpointId) -> PathBuf {
        match &self.placement {
            Placement::Beside(file) => file.clone(),
            Placement::InDir(dir) => dir.join(file_name(id)),
        }
    }

    /// Every byte this store has written to disk: snapshots and journal appends.
    ///
    /// Lets tests check that checkpoint I/O over a download is O(parts).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    fn add_written(&self, n: usize) {
        self.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The journal `save` started for `id`, or `Misuse` when there is none.
    fn journal(
        &self,
        id: &CheckpointId,
        path: &Path,
        op: &str,
    ) -> Result<Arc<OpenJournal>, CheckpointError> {
        let journal = lock(&self.open).get(path).cloned();
        let journal = journal.ok_or_else(|| {
            CheckpointError::Misuse(format!(
                "{op} for {} before any save of it in this store; the engine must save a \
                 snapshot before recording parts",
                path.display()
            ))
        })?;
        journal.target.check_id(id, &path.display().to_string())?;
        Ok(journal)
    }

    /// Creates the directory `dir` that will hold the checkpoint file `path`.
    fn ensure_dir(dir: &Path, path: &Path) -> Result<(), CheckpointError> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|e| io_err("create the directory of", path, e))?;
        // Make the new directory's own entry durable too (ancestors created with it are left
        // to the file system's journal). Best effort: a parent we may enter but not read
        // cannot be opened for syncing, and that must not stop the download.
        let _ = sync_dir(parent_or_cwd(dir));
        Ok(())
    }

    /// Rewrites the snapshot from what the file says now (the records are already in it),
    /// atomically like `save`, and appends after it from now on. Best effort: if it fails,
    /// the file as it is stays valid and the records keep going there.
    fn compact(&self, path: &Path, writer: &mut Writer) {
        let (bytes, checksum) = codec::encode_with_checksum(&writer.tracker.state);
        let Ok((file, tmp)) = self.write_temp(path, &bytes) else {
            return;
        };
        if fs::rename(&tmp, path).is_err() {
            let _ = fs::remove_file(&tmp);
            return;
        }
        let _ = sync_dir(parent_or_cwd(path));
        let (_, appender) = journal::start(&writer.tracker.state, &checksum);
        writer.file = file;
        writer.appender = appender;
        writer.len = bytes.len() as u64;
        writer.tracker = Tracker::new(writer.tracker.state.clone(), bytes.len());
    }

    /// Writes `bytes` to a new temporary file beside `path` and makes it durable; returns the
    /// file (open for appending) and its name.
    fn write_temp(&self, path: &Path, bytes: &[u8]) -> Result<(File, PathBuf), CheckpointError> {
        let mut attempts = 0;
        let (mut file, tmp) = loop {
            let tmp = temp_path(path);
            match OpenOptions::new().append(true).create_new(true).open(&tmp) {
                Ok(file) => break (file, tmp),
                // A leftover from a crashed process that had our pid; take the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                    attempts += 1;
                }
                Err(e) => return Err(io_err("create a temporary file for", path, e)),
            }
        };
        let written = file
            .write_all(bytes)
            .map_err(|e| io_err("write", &tmp, e))
            .and_then(|()| {
                self.add_written(bytes.len());
                file.sync_all().map_err(|e| io_err("sync", &tmp, e))
            });
        match written {
            Ok(()) => Ok((file, tmp)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn location(&self, id: &CheckpointId) -> String {
        self.path(id).display().to_string()
    }

    fn path(&self, id: &CheckpointId) -> Option<PathBuf> {
        Some(FileCheckpointStore::path(self, id))
    }

    fn load(&self, id: &CheckpointId) -> Result<Option<Loaded>, CheckpointError> {
        let path = self.path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path, e)),
        };
        let location = path.display().to_string();
        if let Some(reason) = not_a_checkpoint(&bytes) {
            return Err(CheckpointError::Foreign { location, reason });
        }
        journal::parse(&bytes, &location).map(Some)
    }

    /// Replaces the file atomically and starts its journal. Records buffered for the previous
    /// snapshot and not flushed are dropped: the new snapshot is the whole truth, and carrying
    /// them over could mark parts of a different layout done.
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let path = self.path(&checkpoint.id);
        let dir = parent_or_cwd(&path).to_owned();
        if let Placement::InDir(_) = self.placement {
            Self::ensure_dir(&dir, &path)?;
        }
        let (bytes, checksum) = codec::encode_with_checksum(checkpoint);
        let (file, tmp) = self.write_temp(&path, &bytes)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("replace", &path, e));
        }
        // From here on the new snapshot is the file at `path`: append to it even if syncing
        // the directory fails (the rename may then be lost in a crash, which leaves the
        // previous, still valid, checkpoint).
        let (target, appender) = journal::start(checkpoint, &checksum);
        let journal = OpenJournal {
            target,
            pending: Mutex::new(Vec::new()),
            writer: Mutex::new(Writer {
                file,
                appender,
                len: bytes.len() as u64,
                tracker: Tracker::new(checkpoint.clone(), bytes.len()),
                failed: None,
            }),
        };
        lock(&self.open).insert(path.clone(), Arc::new(journal));
        sync_dir(&dir).map_err(|e| io_err("sync the directory of", &path, e))
    }

    fn record(
        &self,
        id: &CheckpointId,
        index: u64,
        digest: PartDigest,
    ) -> Result<(), CheckpointError> {
        let path = self.path(id);
        let journal = self.journal(id, &path, "record")?;
        journal
            .target
            .check(id, index, &path.display().to_string())?;
        lock(&journal.pending).push(Entry::Done(index, digest));
        Ok(())
    }

    fn record_partial(
        &self,
        id: &CheckpointId,
        index: u64,
        partial: PartialPart,
    ) -> Result<(), CheckpointError> {
        let path = self.path(id);
        let journal = self.journal(id, &path, "record")?;
        journal
            .target
            .check_partial(id, index, &partial, &path.display().to_string())?;
        lock(&journal.pending).push(Entry::Partial(index, partial));
        Ok(())
    }

    fn flush(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        let path = self.path(id);
        let journal = self.journal(id, &path, "flush")?;
        let mut writer = lock(&journal.writer);
        if let Some(reason) = &writer.failed {
            return Err(io_err(
                "append to",
                &path,
                io::Error::other(format!(
                    "an earlier append failed ({reason}); save a new snapshot to continue"
                )),
            ));
        }
        let batch = std::mem::take(&mut *lock(&journal.pending));
        if batch.is_empty() {
            return Ok(());
        }
        let bytes = writer.appender.encode(&batch);
        if let Err(e) = writer.file.write_all(&bytes) {
            // Cut a partial append off so the next records stay aligned, and keep the batch
            // for the next flush. If even that fails the tail is unknown: stop appending.
            let len = writer.len;
            match writer.file.set_len(len) {
                Ok(()) => {
                    let mut pending = lock(&journal.pending);
                    let newer = std::mem::replace(&mut *pending, batch);
                    pending.extend(newer);
                }
                Err(cut) => {
                    writer.failed = Some(format!("write failed: {e}; truncating failed: {cut}"));
                }
            }
            return Err(io_err("append to", &path, e));
        }
        self.add_written(bytes.len());
        writer.len += bytes.len() as u64;
        writer.appender.advance(batch.len());
        writer.tracker.applied(&batch);
        if writer.tracker.wants_compaction() {
            self.compact(&path, &mut writer);
        }
        Ok(())
    }

    fn sync(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        let path = self.path(id);
        let journal = self.journal(id, &path, "sync")?;
        let mut writer = lock(&journal.writer);
        if let Some(reason) = &writer.failed {
            return Err(io_err(
                "sync",
                &path,
                io::Error::other(format!(
                    "an earlier append failed ({reason}); save a new snapshot to continue"
                )),
            ));
        }
        if let Err(e) = writer.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages: whether the
            // records are on disk is unknown, so only a new snapshot can be trusted.
            writer.failed = Some(format!("sync failed: {e}"));
            return Err(io_err("sync", &path, e));
        }
        Ok(())
    }

    fn delete(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        let path = self.path(id);
        lock(&self.open).remove(&path);
        // Only ever remove a checkpoint: a file that merely has the name (say, a downloaded
        // object called `data.rgcp`) or another destination's checkpoint stays.
        match fs::read(&path) {
            Ok(bytes) => {
                let foreign = not_a_checkpoint(&bytes).or_else(|| {
                    let other = codec::decode_prefix(&bytes, "").ok()?.checkpoint.id;
                    (other.destination != id.destination).then(|| {
                        format!(
                            "it is the checkpoint of a download into {}",
                            other.destination
                        )
                    })
                });
                if let Some(reason) = foreign {
                    return Err(CheckpointError::Foreign {
                        location: path.display().to_string(),
                        reason,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read", &path, e)),
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("delete", &path, e)),
        }
        remove_stale_temps(&path);
        Ok(())
    }
}

/// Why `bytes` (a whole file at a checkpoint's path) cannot be a checkpoint this project
/// wrote, or `None` when it starts like one. Snapshots reach their path only whole (written
/// to a temporary file, synced, renamed), so an empty file is not one; a file cut short
/// inside the magic bytes still starts like one and is reported as damaged, not foreign.
fn not_a_checkpoint(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return Some("the file is empty".into());
    }
    let n = bytes.len().min(codec::MAGIC.len());
    (bytes[..n] != codec::MAGIC[..n])
        .then(|| "it does not start with the checkpoint format's magic bytes".into())
}

/// The first bytes of `path` (up to the magic's length); `None` when it cannot be read.
fn read_head(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(codec::MAGIC.len());
    File::open(path)
        .ok()?
        .take(codec::MAGIC.len() as u64)
        .read_to_end(&mut head)
        .ok()?;
    Some(head)
}

/// `dir` and `dir/` (and `./dir`) name the same directory; so do they here.
fn normalize(path: &Path) -> PathBuf {
    path.components().collect()
}

/// The directory holding `path`; `.` for a bare file name.
fn parent_or_cwd(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `<segment>-<hash>.rgcp` for a store in a directory; see [`FileCheckpointStore::in_dir`].
fn file_name(id: &CheckpointId) -> String {
    // Encoding plain data into memory does not fail; should it ever, the Debug form is an
    // equally deterministic and injective-enough stand-in.
    let encoded = bincode::serde::encode_to_vec(id, bincode::config::standard())
        .unwrap_or_else(|_| format!("{id:?}").into_bytes());
    let hash = blake3::hash(&encoded).to_hex();
    format!(
        "{}-{}.{EXTENSION}",
        sanitize_segment(&id.key),
        &hash.as_str()[..32]
    )
}

/// The key's last non-empty segment, reduced to a safe, visible file name component.
fn sanitize_segment(key: &str) -> String {
    let last = key
        .rsplit(['/', '\\'])
        .find(|s| !s.is_empty())
        .unwrap_or("");
    let kept: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    let visible: String = kept
        .trim_start_matches('.')
        .chars()
        .take(MAX_SEGMENT_CHARS)
        .collect();
    if visible.is_empty() {
        "object".to_owned()
    } else {
        visible
    }
}

/// What every temporary file of `path` starts with: `<name>.tmp-`, the name shortened with
/// a hash of it when the whole temporary name would not fit the file system's limit, so two
/// checkpoint files never share a prefix.
fn temp_prefix(path: &Path) -> OsString {
    let name = path.file_name().unwrap_or_default();
    let max = names::name_max(parent_or_cwd(path)).saturating_sub(TEMP_COUNTER_BYTES);
    names::fit_name(name, ".tmp-", max)
}

fn temp_path(path: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = temp_prefix(path);
    name.push(format!("{}-{n}", std::process::id()));
    parent_or_cwd(path).join(name)
}

/// Removes temporary files (`<prefix><pid>-<counter>`) left by `save`s interrupted by a
/// crash. Best effort: they are never read, only wasted space.
fn remove_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let prefix = prefix.as_encoded_bytes();
    let Ok(entries) = fs::read_dir(parent_or_cwd(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        // Exactly `<prefix><pid>-<counter>`, holding nothing or the start of a snapshot:
        // what `write_temp` leaves when a crash interrupts it, and never somebody's file.
        let is_ours = name
            .as_encoded_bytes()
            .strip_prefix(prefix)
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(pid, n)| is_decimal(pid) && is_decimal(n))
            && read_head(&entry.path()).is_some_and(|head| {
                codec::MAGIC.starts_with(&head) || head.starts_with(&codec::MAGIC)
            });
        if is_ours {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Makes a rename or a new entry in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows cannot open a directory as a file without extra flags, and NTFS journals its
/// metadata; the file's own `sync_all` before the rename is what can be done portably.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectFingerprint, PartLayout, RangeSpec};

    fn id(key: &str) -> CheckpointId {
        CheckpointId {
            source: "oss://bucket".into(),
            key: key.into(),
            version_id: None,
            range: RangeSpec::Full,
            destination: "/dl/file".into(),
        }
    }

    fn checkpoint(key: &str, parts: u64) -> Checkpoint {
        Checkpoint::new(
            id(key),
            ObjectFingerprint {
                size: parts * 4,
                etag: Some("e".into()),
                last_modified: None,
                version_id: None,
                checksums: Vec::new(),
            },
            PartLayout::new(0, parts * 4, 4).expect("nonzero part size"),
        )
    }

    fn digest(i: u64) -> PartDigest {
        PartDigest {
            blake3: *blake3::hash(&i.to_le_bytes()).as_bytes(),
            crc64: !i,
        }
    }

    #[test]
    fn beside_appends_the_suffix_to_the_whole_name() {
        let store = FileCheckpointStore::beside("dl/a.tar.gz");
        assert_eq!(store.path(&id("k")), Path::new("dl/a.tar.gz.rgcp"));
        assert_eq!(store.path(&id("other")), Path::new("dl/a.tar.gz.rgcp"));
        assert_eq!(
            FileCheckpointStore::beside("dl/a.tar.gz/").path(&id("k")),
            Path::new("dl/a.tar.gz.rgcp")
        );
        assert_eq!(store.location(&id("k")), "dl/a.tar.gz.rgcp");
    }

    #[test]
    fn sanitized_segments_are_safe_and_visible() {
        for (key, want) in [
            ("abc/efg/123.jpg", "123.jpg"),
            ("../../x", "x"),
            ("a/../../etc/passwd", "passwd"),
            ("..", "object"),
            ("", "object"),
            ("/", "object"),
            ("dir/", "dir"),
            ("日本語.txt", "txt"),
            ("..hidden", "hidden"),
            ("a b:c*?.bin", "abc.bin"),
            ("win\\path\\f.iso", "f.iso"),
        ] {
            assert_eq!(sanitize_segment(key), want, "key {key:?}");
        }
        let long = "x".repeat(100);
        assert_eq!(sanitize_segment(&long).len(), MAX_SEGMENT_CHARS);
        assert_eq!(
            sanitize_segment(&format!(".{long}")).len(),
            MAX_SEGMENT_CHARS
        );
    }

    #[test]
    fn in_dir_names_stay_in_the_directory() {
        let with_slash = FileCheckpointStore::in_dir("ckpt/");
        let without = FileCheckpointStore::in_dir("ckpt");
        for key in [
            "../../x",
            "a/../../etc/passwd",
            "..",
            "",
            "日本語",
            ".",
            "a/.",
            "x\0y",
        ] {
            let path = without.path(&id(key));
            assert_eq!(path, with_slash.path(&id(key)));
            assert_eq!(path.parent(), Some(Path::new("ckpt")), "{key:?}");
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("UTF-8 name");
            assert!(!name.starts_with('.'), "{name}");
            assert!(name.ends_with(".rgcp"));
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
                "{name}"
            );
            let hash = &name[name.len() - 5 - 32..name.len() - 5];
            assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        }
    }

    #[test]
    fn in_dir_names_differ_per_id() {
        let store = FileCheckpointStore::in_dir("d");
        let a = id("k");
        let mut b = a.clone();
        b.destination = "/dl/other".into();
        let mut c = a.clone();
        c.range = RangeSpec::Suffix { len: 5 };
        assert_ne!(store.path(&a), store.path(&b));
        assert_ne!(store.path(&a), store.path(&c));
        assert_eq!(store.path(&a), store.path(&a.clone()));
    }

    #[test]
    fn temp_names_fit_and_are_unique() {
        let long = PathBuf::from(format!("d/{}.rgcp", "é".repeat(120)));
        let a = temp_path(&long);
        let b = temp_path(&long);
        assert_ne!(a, b);
        let name = a.file_name().and_then(|n| n.to_str()).expect("UTF-8");
        assert!(name.len() <= 255, "{}", name.len());
        let prefix = temp_prefix(&long);
        assert!(name.starts_with(prefix.to_str().expect("UTF-8")));
        // The worst case: the largest pid and counter still fit.
        assert!(prefix.len() + TEMP_COUNTER_BYTES <= 255, "{}", prefix.len());
        // Short names keep the readable form.
        assert_eq!(temp_prefix(Path::new("d/a.rgcp")), "a.rgcp.tmp-");
    }

    #[test]
    fn long_checkpoint_names_sharing_a_start_have_distinct_temp_prefixes() {
        let a = PathBuf::from(format!("d/{}a.rgcp", "L".repeat(240)));
        let b = PathBuf::from(format!("d/{}b.rgcp", "L".repeat(240)));
        let (pa, pb) = (temp_prefix(&a), temp_prefix(&b));
        assert_ne!(pa, pb);
        let (pa, pb) = (pa.as_encoded_bytes(), pb.as_encoded_bytes());
        assert!(!pa.starts_with(pb) && !pb.starts_with(pa));
    }

    #[test]
    fn delete_removes_only_its_own_stale_temps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("x");
        let store = FileCheckpointStore::beside(&dest);
        let cp = checkpoint("k", 2);
        store.save(&cp).expect("save");
        let ours = dir.path().join("x.rgcp.tmp-123-4");
        // Another download's files that merely start like ours.
        let others = [
            dir.path().join("x.rgcp.tmp-5.rgcp"),
            dir.path().join("x.rgcp.tmp-5.rgcp.tmp-123-4"),
            dir.path().join("x.rgcp.tmp-notes"),
        ];
        for f in &others {
            fs::write(f, b"x").expect("write");
        }
        // What an interrupted save leaves: the start of a snapshot.
        fs::write(&ours, &codec::MAGIC[..4]).expect("write");
        store.delete(&cp.id).expect("delete");
        assert!(!ours.exists());
        for f in &others {
            assert!(f.exists(), "{} was removed", f.display());
        }
    }

    #[test]
    fn beside_a_name_at_the_limit_fits_and_is_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in [250, 251, 255] {
            let dest = dir.path().join("N".repeat(n));
            let store = FileCheckpointStore::beside(&dest);
            let path = store.path(&id("k"));
            assert_eq!(path.parent(), Some(dir.path()));
            let len = path.file_name().expect("name").len();
            assert!(len <= 255, "{n}: {len}");
            assert_eq!(path, FileCheckpointStore::beside(&dest).path(&id("k")));
            let cp = checkpoint("k", 2);
            store.save(&cp).expect("save");
            store.record(&cp.id, 0, digest(0)).expect("record");
            store.flush(&cp.id).expect("flush");
            let loaded = FileCheckpointStore::beside(&dest)
                .load(&cp.id)
                .expect("load")
                .expect("some");
            assert_eq!(loaded.checkpoint.done.len(), 1);
            store.delete(&cp.id).expect("delete");
        }
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn at_uses_exactly_the_given_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("my checkpoint.state");
        let store = FileCheckpointStore::at(&path);
        let cp = checkpoint("k", 3);
        assert_eq!(store.path(&cp.id), path);
        store.save(&cp).expect("save");
        store.record(&cp.id, 1, digest(1)).expect("record");
        store.flush(&cp.id).expect("flush");
        assert!(path.is_file());
        let loaded = FileCheckpointStore::at(&path)
            .load(&cp.id)
            .expect("load")
            .expect("some");
        assert_eq!(loaded.checkpoint.done.len(), 1);
    }

    #[test]
    fn flush_with_nothing_buffered_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCheckpointStore::in_dir(dir.path());
        let cp = checkpoint("k", 3);
        store.save(&cp).expect("save");
        let after_save = store.bytes_written();
        store.flush(&cp.id).expect("flush");
        store.flush(&cp.id).expect("flush");
        assert_eq!(store.bytes_written(), after_save);
        store.record(&cp.id, 1, digest(1)).expect("record");
        assert_eq!(store.bytes_written(), after_save, "record only buffers");
        store.flush(&cp.id).expect("flush");
        assert_eq!(
            store.bytes_written(),
            after_save + journal::RECORD_LEN as u64
        );
    }

    #[test]
    fn failed_state_makes_flush_fail_until_the_next_save() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCheckpointStore::in_dir(dir.path());
        let cp = checkpoint("k", 3);
        store.save(&cp).expect("save");
        let path = store.path(&cp.id);
        {
            let journal = store.journal(&cp.id, &path, "test").expect("open");
            lock(&journal.writer).failed = Some("simulated".into());
        }
        store.record(&cp.id, 0, digest(0)).expect("record buffers");
        let err = store.flush(&cp.id).expect_err("must fail");
        assert!(err.to_string().contains("save a new snapshot"), "{err}");
        store.save(&cp).expect("save again");
        store.record(&cp.id, 0, digest(0)).expect("record");
        store.flush(&cp.id).expect("flush after save");
    }
}
