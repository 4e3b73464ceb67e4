//! The temp file a download writes into (`DEST.rgpart`): locked, preallocated, written at
//! part offsets, and renamed over DEST only once complete and verified. A download without a
//! checkpoint writes into an unnamed file instead (`O_TMPFILE`), linked into the directory
//! only once complete: nothing could resume it, so a crash must leave nothing behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use checkpoint::{FileIdentity, Timestamp};

use crate::error::Error;

/// Suffix of the temp file beside DEST.
pub const PART_SUFFIX: &str = ".rgpart";

/// `path` with `suffix` appended to its file name (`a.tar.gz` → `a.tar.gz.rgpart`).
///
/// When that name would exceed the file system's limit (255 bytes on most), the file name is
/// shortened and a hash of the whole name added ([`checkpoint::names::sibling`]): the same
/// `path` always gives the same result, two different ones never the same.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    checkpoint::names::sibling(path, suffix)
}

/// An open, exclusively locked temp file.
///
/// The advisory lock lives on the temp file itself and is held until the file is renamed over
/// DEST, so a second download into the same DEST fails fast, and the lock can never be held on
/// a stale inode (see [`PartFile::open_locked`]).
#[derive(Debug)]
pub(crate) struct PartFile {
    file: File,
    /// Where the file is, or for an unnamed one, the name it is linked at if DEST exists when
    /// it is committed (and the name messages use).
    path: PathBuf,
    /// Created with `O_TMPFILE`: in no directory until [`commit`](Self::commit) links it.
    unnamed: bool,
}

impl PartFile {
    /// Opens and locks the existing file at `path`, without changing its contents; `None`
    /// when there is none. Whether the file is this download's to write is for the caller to
    /// establish (the checkpoint's claim): opening and locking a file changes nothing in it.
    pub(crate) fn open_existing_locked(path: &Path, dest: &Path) -> Result<Option<Self>, Error> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        Self::lock_opened(path, dest, || match options.open(path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("open temp file", path, e)),
        })
    }

    /// Creates and locks a new, empty file at `path`; `None` when a file appeared there since
    /// the caller looked (another download started), which is never taken over.
    pub(crate) fn create_locked(path: &Path, dest: &Path) -> Result<Option<Self>, Error> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        Self::lock_opened(path, dest, || match options.open(path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(Error::io("create temp file", path, e)),
        })
    }

    /// Creates an unnamed file (`O_TMPFILE`) in the directory of `path`, for a download that
    /// keeps no checkpoint: the kernel frees it when the process ends, so a download killed
    /// at any instruction leaves no file that the next run would have to refuse (nothing
    /// proves a named one without a checkpoint is ours). `None` where the OS or the file
    /// system has no unnamed files; the caller then creates a named one.
    ///
    /// It takes no lock: nothing else can find it, so another download into the same DEST
    /// cannot interleave with it (each replaces DEST by one complete, verified file); one that
    /// holds `path` still makes this download fail fast, at its start.
    pub(crate) fn create_unnamed(path: &Path) -> Result<Option<Self>, Error> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Ok(unnamed::create(dir)
            .map_err(|e| Error::io("create an unnamed temp file in", dir, e))?
            .map(|file| Self {
                file,
                path: path.to_owned(),
                unnamed: true,
            }))
    }

    fn lock_opened(
        path: &Path,
        dest: &Path,
        mut open: impl FnMut() -> Result<Option<File>, Error>,
    ) -> Result<Option<Self>, Error> {
        // Bounded: each retry means another process replaced the file between our open and our
        // lock, which cannot keep happening unless something is badly wrong.
        for _ in 0..8 {
            let Some(file) = open()? else {
                return Ok(None);
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        dest: dest.to_owned(),
                        lock: path.to_owned(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
            }
            // A previous holder may have renamed this inode over DEST after we opened it and
            // before we locked it: the lock then guards the wrong file. Check it is still ours.
            if same_file(&file, path) {
                return Ok(Some(Self {
                    file,
                    path: path.to_owned(),
                    unnamed: false,
                }));
            }
        }
        Err(Error::io(
            "lock",
            path,
            io::Error::other("the temp file keeps being replaced by another process"),
        ))
    }

    /// This file's identity, which the checkpoint records as its claim on the file.
    pub(crate) fn identity(&self) -> Result<FileIdentity, Error> {
        self.file
            .metadata()
            .map(|m| identity_of(&m))
            .map_err(|e| Error::io("inspect temp file", &self.path, e))
    }

    /// Removes the file (only ever called for this download's own temp file).
    pub(crate) fn remove(&self) {
        if self.unnamed {
            // In no directory: freed when closed.
            return;
        }
        // Best effort: a failed cleanup leaves a file the next run recognises by its claim.
        let _ = std::fs::remove_file(&self.path);
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn len(&self) -> Result<u64, Error> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("inspect temp file", &self.path, e))
    }

    /// Empties the file and reserves `len` bytes, so a full disk fails now, before any
    /// transfer, rather than after hours.
    pub(crate) fn reset(&self, len: u64) -> Result<(), Error> {
        self.file
            .set_len(0)
            .map_err(|e| Error::io("truncate temp file", &self.path, e))?;
        preallocate(&self.file, len).map_err(|e| Error::io("reserve space for", &self.path, e))?;
        self.file
            .set_len(len)
            .map_err(|e| Error::io("size temp file", &self.path, e))
    }

    pub(crate) fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        positional::write_all_at(&self.file, buf, offset)
            .map_err(|e| Error::io("write temp file", &self.path, e))
    }

    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        positional::read_exact_at(&self.file, buf, offset)
            .map_err(|e| Error::io("read temp file", &self.path, e))
    }

    /// A second handle on the same open file, for reading it from another thread (the lock
    /// belongs to the open file, which stays open until both handles are closed).
    pub(crate) fn reader(&self) -> Result<Self, Error> {
        Ok(Self {
            file: self
                .file
                .try_clone()
                .map_err(|e| Error::io("open temp file again", &self.path, e))?,
            path: self.path.clone(),
            unnamed: self.unnamed,
        })
    }

    /// Sets the file's modification time (before [`commit`](Self::commit), which syncs it).
    pub(crate) fn set_modified(&self, at: std::time::SystemTime) -> Result<(), Error> {
        self.file
            .set_modified(at)
            .map_err(|e| Error::io("set the modification time of", &self.path, e))
    }

    /// Records the object the file holds ([`crate::recorded`]), made from the file's current
    /// modification time; `false` when it could not be (no user extended attributes here).
    pub(crate) fn record_object(
        &self,
        make: impl FnOnce(i128) -> crate::recorded::RecordedObject,
    ) -> bool {
        let Some(modified) = self.file.metadata().ok().and_then(|m| m.modified().ok()) else {
            return false;
        };
        crate::recorded::write(&self.file, &make(crate::recorded::nanos(modified)))
    }

    pub(crate) fn sync_data(&self) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("sync temp file", &self.path, e))
    }

    /// Makes the file durable and atomically replaces `dest` with it. The lock stays held
    /// (same inode) until `self` is dropped.
    pub(crate) fn commit(&self, dest: &Path) -> Result<(), Error> {
        self.file
            .sync_all()
            .map_err(|e| Error::io("sync temp file", &self.path, e))?;
        if self.unnamed {
            self.link_unnamed(dest)?;
        } else {
            std::fs::rename(&self.path, dest)
                .map_err(|e| Error::io("rename temp file onto", dest, e))?;
        }
        sync_parent_dir(dest)
    }

    /// Gives the unnamed file the name `dest`: a link where there is no DEST (never replacing
    /// one that appears meanwhile); else a link at the temp file's name, renamed over DEST.
    /// A crash between those two leaves the complete file at the temp file's name, which the
    /// next run refuses as it did every interrupted download without a checkpoint before.
    fn link_unnamed(&self, dest: &Path) -> Result<(), Error> {
        match unnamed::link(&self.file, dest) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("link the temp file as", dest, e)),
        }
        unnamed::link(&self.file, &self.path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::ForeignFile {
                    path: self.path.clone(),
                    why: "appeared while this download was running (another program or \
                          download created it)"
                        .into(),
                }
            } else {
                Error::io("link the temp file as", &self.path, e)
            }
        })?;
        std::fs::rename(&self.path, dest).map_err(|e| {
            // The link is ours (just made, never replacing anything): take it back.
            let _ = std::fs::remove_file(&self.path);
            Error::io("rename temp file onto", dest, e)
        })
    }
}

/// The identity of the file at `path` (not following a final symlink), if there is one.
pub(crate) fn identity_at(path: &Path) -> Option<(FileIdentity, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| (identity_of(&m), m.len()))
}

fn identity_of(m: &std::fs::Metadata) -> FileIdentity {
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(m);
    #[cfg(not(unix))]
    let ino = 0;
    // statx's birth time where the file system keeps one: tells a reused inode number apart.
    let birth = m.created().ok().and_then(|t| {
        let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(Timestamp {
            secs: i64::try_from(d.as_secs()).ok()?,
            nanos: d.subsec_nanos(),
        })
    });
    FileIdentity { ino, birth }
}

fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// Flushes the directory entry of a rename (POSIX needs the parent fsynced).
pub(crate) fn sync_parent_dir(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("sync directory", dir, e))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    if len == 0 {
        return Ok(());
    }
    match fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        // File systems without fallocate: a sparse file is the best we can do.
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

#[cfg(not(target_os = "linux"))]
fn preallocate(_file: &File, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Unnamed files: `O_TMPFILE` and `linkat` (Linux).
mod unnamed {
    use std::fs::File;
    use std::io;
    use std::path::Path;

    #[cfg(target_os = "linux")]
    pub(super) fn create(dir: &Path) -> io::Result<Option<File>> {
        use rustix::fs::{CWD, Mode, OFlags, openat};
        use rustix::io::Errno;
        // Linking one needs /proc where AT_EMPTY_PATH is not allowed (kernels before 6.10
        // without CAP_DAC_READ_SEARCH): without it, a named file.
        if !Path::new("/proc/self/fd").is_dir() {
            return Ok(None);
        }
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        // As `File::create`: 0666 less the umask.
        match openat(CWD, dir, flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => Ok(Some(File::from(fd))),
            // A file system without unnamed files (EOPNOTSUPP), a kernel before 3.11 (EISDIR,
            // EINVAL).
            Err(e) if [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL, Errno::NOSYS].contains(&e) => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn create(_dir: &Path) -> io::Result<Option<File>> {
        Ok(None)
    }

    /// A new name for `file` at `to`, never replacing one (EEXIST).
    #[cfg(target_os = "linux")]
    pub(super) fn link(file: &File, to: &Path) -> io::Result<()> {
        use std::os::fd::AsRawFd;

        use rustix::fs::{AtFlags, CWD, linkat};
        use rustix::io::Errno;
        match linkat(file, "", CWD, to, AtFlags::EMPTY_PATH) {
            Err(e) if e != Errno::EXIST => {
                let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
                linkat(CWD, proc_path.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW)
                    .map_err(io::Error::from)
            }
            other => other.map_err(io::Error::from),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn link(_file: &File, _to: &Path) -> io::Result<()> {
        Err(io::Error::other("no unnamed files on this OS"))
    }
}

mod positional {
    use std::fs::File;
    use std::io;

    #[cfg(unix)]
    pub(super) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }

    #[cfg(unix)]
    pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }

    #[cfg(windows)]
    pub(super) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            let n = file.seek_write(buf, offset)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    #[cfg(windows)]
    pub(super) fn read_exact_at(
        file: &File,
        mut buf: &mut [u8],
        mut offset: u64,
    ) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            let n = file.seek_read(buf, offset)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_a_locked_temp_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let part = with_suffix(&dest, PART_SUFFIX);
        let first = PartFile::create_locked(&part, &dest).unwrap().unwrap();
        let err = PartFile::open_existing_locked(&part, &dest).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("another download"));
        drop(first);
        PartFile::open_existing_locked(&part, &dest)
            .unwrap()
            .expect("the file is still there");
    }

    #[test]
    fn reset_truncates_a_stale_larger_file_to_exact_length() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let part = with_suffix(&dest, PART_SUFFIX);
        std::fs::write(&part, vec![0xAB; 10_000]).unwrap();
        let f = PartFile::open_existing_locked(&part, &dest)
            .unwrap()
            .unwrap();
        f.reset(100).unwrap();
        assert_eq!(f.len().unwrap(), 100);
        let mut buf = vec![1u8; 100];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "stale bytes survived a reset");
    }

    #[test]
    fn commit_replaces_dest_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        std::fs::write(&dest, b"old").unwrap();
        let part = with_suffix(&dest, PART_SUFFIX);
        let f = PartFile::create_locked(&part, &dest).unwrap().unwrap();
        let before = f.identity().unwrap();
        f.reset(3).unwrap();
        f.write_all_at(b"new", 0).unwrap();
        f.commit(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert!(!part.exists());
        // The renamed file is the temp file: what lets a stale checkpoint recognise DEST.
        assert!(identity_at(&dest).unwrap().0.same_as(&before));
    }

    /// The names in `dir`.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_unnamed_file_is_in_no_directory_until_committed_then_replaces_dest_or_becomes_it() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let part = with_suffix(&dest, PART_SUFFIX);
        for (old, new) in [(None, &b"first"[..]), (Some(&b"old"[..]), b"second")] {
            if let Some(old) = old {
                std::fs::write(&dest, old).unwrap();
            }
            let f = PartFile::create_unnamed(&part)
                .unwrap()
                .expect("this file system has unnamed files (tmpfs, ext4, xfs, btrfs)");
            f.reset(new.len() as u64).unwrap();
            f.write_all_at(new, 0).unwrap();
            let expect_before: Vec<String> = old.iter().map(|_| "out.bin".to_owned()).collect();
            assert_eq!(
                names_in(dir.path()),
                expect_before,
                "nothing named before commit"
            );
            f.remove();
            f.commit(&dest).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), new);
            assert_eq!(names_in(dir.path()), ["out.bin"], "no temp file left");
        }
        // One dropped uncommitted leaves nothing; a file at the temp file's name that appears
        // meanwhile is never replaced (DEST exists, so the commit would need that name).
        drop(PartFile::create_unnamed(&part).unwrap().unwrap());
        assert_eq!(names_in(dir.path()), ["out.bin"]);
        let f = PartFile::create_unnamed(&part).unwrap().unwrap();
        std::fs::write(&part, b"somebody's").unwrap();
        let err = f.commit(&dest).unwrap_err();
        assert!(matches!(err, Error::ForeignFile { .. }), "{err}");
        assert_eq!(std::fs::read(&part).unwrap(), b"somebody's");
        assert_eq!(std::fs::read(&dest).unwrap(), b"second");
    }

    #[test]
    fn create_never_takes_over_an_existing_file_and_open_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let part = with_suffix(&dest, PART_SUFFIX);
        assert!(
            PartFile::open_existing_locked(&part, &dest)
                .unwrap()
                .is_none()
        );
        assert!(!part.exists(), "opening must not create the file");
        std::fs::write(&part, b"somebody's file").unwrap();
        assert!(PartFile::create_locked(&part, &dest).unwrap().is_none());
        assert_eq!(std::fs::read(&part).unwrap(), b"somebody's file");
    }

    #[test]
    fn identities_tell_files_apart_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let part = with_suffix(&dest, PART_SUFFIX);
        let a = PartFile::create_locked(&part, &dest).unwrap().unwrap();
        let id_a = a.identity().unwrap();
        drop(a);
        let again = PartFile::open_existing_locked(&part, &dest)
            .unwrap()
            .unwrap();
        assert!(again.identity().unwrap().same_as(&id_a));
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").unwrap();
        assert!(!identity_at(&other).unwrap().0.same_as(&id_a));
        assert!(identity_at(&dir.path().join("missing")).is_none());
    }
}
