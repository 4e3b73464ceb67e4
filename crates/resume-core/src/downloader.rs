//! The public entry point: configure a [`Downloader`], then `download(key, dest)`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use checkpoint::{CheckpointStore, FileCheckpointStore, RangeSpec};
use tokio_util::sync::CancellationToken;

use crate::engine;
use crate::error::Error;
use crate::event::{Event, Report};
use crate::retry::RetryPolicy;
use crate::source::RangeSource;

/// What to do when the object changes while it is being downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChange {
    /// Discard the partial download and start over against the new version (bounded by
    /// [`Downloader::max_restarts`]). What the OSS SDKs document for a changed ETag.
    #[default]
    Restart,
    /// Stop with [`Error::Changed`](crate::Error::Changed); the stale partial download is
    /// discarded so that running again fetches the new version.
    Fail,
}

/// Where progress is remembered between runs.
#[derive(Clone, Default)]
pub enum CheckpointChoice {
    /// `DEST.rgcp`, beside the destination (the default).
    #[default]
    BesideDest,
    /// A file named after the download inside this directory.
    InDir(PathBuf),
    /// A store supplied by the caller.
    Store(Arc<dyn CheckpointStore>),
    /// No checkpoint: an interrupted download starts over.
    Disabled,
}

impl fmt::Debug for CheckpointChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BesideDest => f.write_str("BesideDest"),
            Self::InDir(d) => f.debug_tuple("InDir").field(d).finish(),
            Self::Store(s) => f.debug_tuple("Store").field(s).finish(),
            Self::Disabled => f.write_str("Disabled"),
        }
    }
}

pub(crate) type ProgressFn = Arc<dyn Fn(&Event) + Send + Sync>;

/// Downloads objects from a [`RangeSource`] in parallel ranged parts, into a temp file that
/// replaces the destination only once complete and verified, resumable from a checkpoint.
///
/// ```no_run
/// # async fn run(source: impl resume_core::RangeSource + 'static) -> Result<(), resume_core::Error> {
/// use resume_core::Downloader;
/// let report = Downloader::new(source)
///     .part_size(8 << 20)
///     .concurrency(8)
///     .download("abc/efg/123.jpg", "123.jpg")
///     .await?;
/// println!("{} bytes, {} reused from a checkpoint", report.range.end - report.range.start, report.reused_bytes);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Downloader {
    pub(crate) source: Arc<dyn RangeSource>,
    pub(crate) part_size: u64,
    pub(crate) concurrency: usize,
    pub(crate) checkpoint: CheckpointChoice,
    pub(crate) range: RangeSpec,
    pub(crate) version_id: Option<String>,
    pub(crate) retry: RetryPolicy,
    pub(crate) idle_timeout: Duration,
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) progress_interval: Duration,
    pub(crate) verify_on_resume: bool,
    pub(crate) on_change: OnChange,
    pub(crate) max_restarts: u32,
    pub(crate) cancel: CancellationToken,
    pub(crate) buffer_size: usize,
    pub(crate) sync_interval: Option<Duration>,
    pub(crate) rate_limit: Option<u64>,
}

impl fmt::Debug for Downloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Downloader")
            .field("source", &self.source.identity())
            .field("part_size", &self.part_size)
            .field("concurrency", &self.concurrency)
            .field("checkpoint", &self.checkpoint)
            .field("range", &self.range)
            .field("version_id", &self.version_id)
            .field("retry", &self.retry)
            .field("idle_timeout", &self.idle_timeout)
            .field("verify_on_resume", &self.verify_on_resume)
            .field("on_change", &self.on_change)
            .field("max_restarts", &self.max_restarts)
            .field("buffer_size", &self.buffer_size)
            .field("sync_interval", &self.sync_interval)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

/// Default part size: large enough to amortise a request, small enough to resume cheaply.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;
/// Default number of parts fetched at once.
pub const DEFAULT_CONCURRENCY: usize = 8;

impl Downloader {
    pub fn new(source: impl RangeSource + 'static) -> Self {
        Self::from_arc(Arc::new(source))
    }

    pub fn from_arc(source: Arc<dyn RangeSource>) -> Self {
        Self {
            source,
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            checkpoint: CheckpointChoice::BesideDest,
            range: RangeSpec::Full,
            version_id: None,
            retry: RetryPolicy::default(),
            idle_timeout: Duration::from_secs(30),
            progress: None,
            progress_interval: Duration::from_millis(100),
            verify_on_resume: false,
            on_change: OnChange::Restart,
            max_restarts: 3,
            cancel: CancellationToken::new(),
            buffer_size: 256 << 10,
            sync_interval: Some(Duration::from_secs(1)),
            rate_limit: None,
        }
    }

    /// Bytes per part (≥ 1; no upper cap). The last part may be shorter.
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// Parts fetched at once (≥ 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Keep the checkpoint in `store`.
    pub fn checkpoint(mut self, store: impl CheckpointStore + 'static) -> Self {
        self.checkpoint = CheckpointChoice::Store(Arc::new(store));
        self
    }

    /// Choose where the checkpoint lives (beside DEST, in a directory, a store, or nowhere).
    pub fn checkpoint_choice(mut self, choice: CheckpointChoice) -> Self {
        self.checkpoint = choice;
        self
    }

    /// Download without a checkpoint: an interrupted run starts over.
    pub fn no_checkpoint(self) -> Self {
        self.checkpoint_choice(CheckpointChoice::Disabled)
    }

    /// Download only `range` of the object.
    pub fn range(mut self, range: RangeSpec) -> Self {
        self.range = range;
        self
    }

    /// Download this version of the object.
    pub fn version_id(mut self, version_id: impl Into<String>) -> Self {
        self.version_id = Some(version_id.into());
        self
    }

    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Give up on a request when no byte arrives for this long (not a whole-request timeout:
    /// a multi-GB part may take as long as it keeps moving).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Called for every [`Event`], synchronously; keep it quick.
    pub fn on_progress(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Minimum time between two [`Event::Progress`] events.
    pub fn progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = interval;
        self
    }

    /// On resume, re-hash every done part (BLAKE3) and re-fetch only the damaged ones.
    /// Without it, reused parts are still checked with CRC-64 before the file is committed.
    pub fn verify_on_resume(mut self, yes: bool) -> Self {
        self.verify_on_resume = yes;
        self
    }

    pub fn on_change(mut self, policy: OnChange) -> Self {
        self.on_change = policy;
        self
    }

    /// How many times [`OnChange::Restart`] may start over before giving up.
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }

    /// Cancelling this token stops the download gracefully: progress is saved and
    /// [`Error::Cancelled`](crate::Error::Cancelled) returned. (Dropping the `download` future
    /// instead stops it like a crash: everything already flushed is still resumable.)
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Per-worker write buffer; memory use is about `concurrency × buffer_size`.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes;
        self
    }

    /// How often the temp file and checkpoint are fsynced (power-loss durability); `None`
    /// syncs only at the end. A crash of the process alone never needs a sync to resume.
    pub fn sync_interval(mut self, interval: Option<Duration>) -> Self {
        self.sync_interval = interval;
        self
    }

    /// Caps the download's total throughput (all workers together) at `bytes_per_sec`;
    /// `None` for no limit.
    pub fn rate_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.rate_limit = bytes_per_sec;
        self
    }

    /// Downloads `key` into `dest`.
    ///
    /// `dest` is replaced atomically once the bytes are complete and verified; until then it is
    /// untouched. The work in progress lives in `DEST.rgpart` (locked against a second
    /// download into the same `dest`) and the checkpoint.
    pub async fn download(&self, key: &str, dest: impl AsRef<Path>) -> Result<Report, Error> {
        let result = self.download_inner(key, dest.as_ref()).await;
        if let Err(e) = &result {
            self.emit(&Event::Failed {
                error: e.to_string(),
            });
        }
        result
    }

    async fn download_inner(&self, key: &str, dest: &Path) -> Result<Report, Error> {
        self.validate()?;
        let dest = resolve_dest(dest)?;
        let store: Option<Arc<dyn CheckpointStore>> = match &self.checkpoint {
            CheckpointChoice::BesideDest => Some(Arc::new(FileCheckpointStore::beside(&dest))),
            CheckpointChoice::InDir(dir) => Some(Arc::new(FileCheckpointStore::in_dir(dir))),
            CheckpointChoice::Store(s) => Some(s.clone()),
            CheckpointChoice::Disabled => None,
        };
        engine::run(self, key, &dest, store).await
    }

    fn validate(&self) -> Result<(), Error> {
        if self.part_size == 0 {
            return Err(Error::Config(
                "part size is 0 bytes; use at least 1 byte (e.g. 8 MiB)".into(),
            ));
        }
        if self.concurrency == 0 {
            return Err(Error::Config(
                "concurrency is 0; use at least 1 parallel request".into(),
            ));
        }
        if self.buffer_size == 0 {
            return Err(Error::Config(
                "buffer size is 0 bytes; use at least 1".into(),
            ));
        }
        if self.rate_limit == Some(0) {
            return Err(Error::Config(
                "rate limit is 0 bytes/s; give a positive limit or none".into(),
            ));
        }
        if self.idle_timeout.is_zero() {
            return Err(Error::Config(
                "idle timeout is 0; use a positive duration".into(),
            ));
        }
        if self.retry.max_attempts == 0 || self.retry.max_requests_per_part == 0 {
            return Err(Error::Config(
                "retry policy allows no request at all; max attempts must be ≥ 1".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn emit(&self, event: &Event) {
        if let Some(f) = &self.progress {
            f(event);
        }
    }
}

/// Absolute DEST with its directory resolved (symlinks included), so the same file is always
/// named the same way in checkpoints and locks.
fn resolve_dest(dest: &Path) -> Result<PathBuf, Error> {
    let name = match dest.file_name() {
        Some(n)
            if !dest
                .as_os_str()
                .to_string_lossy()
                .ends_with(std::path::MAIN_SEPARATOR) =>
        {
            n
        }
        _ => {
            return Err(Error::Config(format!(
                "destination {} does not name a file; give a file path",
                dest.display()
            )));
        }
    };
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .map_err(|e| Error::io("open destination directory", &parent, e))?;
    if !parent.is_dir() {
        return Err(Error::io(
            "open destination directory",
            &parent,
            std::io::Error::from(std::io::ErrorKind::NotADirectory),
        ));
    }
    let dest = parent.join(name);
    if dest.is_dir() {
        return Err(Error::Config(format!(
            "destination {} is a directory; give a file path inside it",
            dest.display()
        )));
    }
    check_name_length(&dest)?;
    Ok(dest)
}

/// Refuses, before any transfer, a file name the file system cannot hold: the download would
/// otherwise fail only at the final rename.
fn check_name_length(path: &Path) -> Result<(), Error> {
    let (Some(name), Some(dir)) = (path.file_name(), path.parent()) else {
        return Ok(());
    };
    let len = name.as_encoded_bytes().len();
    let max = checkpoint::names::name_max(dir);
    if len <= max {
        return Ok(());
    }
    Err(Error::io(
        "use destination",
        path,
        std::io::Error::new(
            std::io::ErrorKind::InvalidFilename,
            format!("its file name is {len} bytes, the file system allows at most {max}"),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_longer_than_the_file_system_allows_is_refused_before_any_transfer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().canonicalize().expect("canonical tempdir");
        let max = checkpoint::names::name_max(&d);
        assert!(resolve_dest(&d.join("n".repeat(max))).is_ok());
        let err = resolve_dest(&d.join("n".repeat(max + 1))).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::LocalIo { .. }), "{err:?}");
        assert!(
            msg.contains(&format!("{} bytes", max + 1)) && msg.contains("shorter file name"),
            "{msg}"
        );
    }
}
