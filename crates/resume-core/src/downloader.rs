//! The public entry point: configure a [`Downloader`], then `download(key, dest)`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use checkpoint::{CheckpointStore, FileCheckpointStore, RangeSpec};
use tokio_util::sync::CancellationToken;

use crate::engine::{self, InOrderHashing};
use crate::error::Error;
use crate::event::{Event, Report};
use crate::integrity::Checksum;
use crate::limit::ConnectionLimit;
use crate::local_state::{self, SavedProgress};
use crate::part_file::{PART_SUFFIX, with_suffix};
use crate::retry::{LowestSpeed, RetryPolicy};
use crate::source::{ObjectMeta, RangeSource};
use crate::tune::AutoJobs;

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
    pub(crate) expected: Vec<Checksum>,
    pub(crate) require_checksum: bool,
    pub(crate) in_order_hashing: InOrderHashing,
    pub(crate) share_tail: bool,
    pub(crate) max_parts: u64,
    pub(crate) start_over: bool,
    pub(crate) lowest_speed: Option<LowestSpeed>,
    /// What a listing said about the object: replaces the first stat (see [`Downloader::listed`]).
    pub(crate) listed: Option<ObjectMeta>,
    /// Shared cap on part requests in flight (see [`Downloader::connection_limit`]).
    pub(crate) connections: Option<ConnectionLimit>,
    /// A rate limit shared with other downloads (see [`Downloader::shared_rate_limit`]).
    pub(crate) shared_rate: Option<crate::rate::RateLimit>,
    /// Give DEST the object's last-modified time (see [`Downloader::keep_modified_time`]).
    pub(crate) keep_modified_time: bool,
    /// Record the object with the finished file (see [`Downloader::record_object`]).
    pub(crate) record_object: bool,
    /// `--jobs auto` (see [`Downloader::auto_jobs`]).
    pub(crate) auto_jobs: Option<AutoJobs>,
    /// `--part-size auto` (see [`Downloader::auto_part_size`]).
    pub(crate) auto_part_size: bool,
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
            .field("expected", &self.expected)
            .field("require_checksum", &self.require_checksum)
            .field("in_order_hashing", &self.in_order_hashing)
            .field("share_tail", &self.share_tail)
            .field("max_parts", &self.max_parts)
            .field("start_over", &self.start_over)
            .field("lowest_speed", &self.lowest_speed)
            .field("listed", &self.listed)
            .field("connections", &self.connections)
            .field("shared_rate", &self.shared_rate)
            .field("keep_modified_time", &self.keep_modified_time)
            .field("auto_jobs", &self.auto_jobs)
            .field("auto_part_size", &self.auto_part_size)
            .finish_non_exhaustive()
    }
}

/// Default part size: large enough to amortise a request, small enough to resume cheaply.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;
/// Default number of parts fetched at once.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Default bound on the number of parts of one download (see [`Downloader::max_parts`]).
///
/// A download keeps about 100 bytes of state per part (its digest and CRCs, its place in the
/// queue) and its checkpoint 64 bytes of journal per part, plus a snapshot of ~45 bytes per
/// done part on each resume; 100 000 parts bound these to ~10 MB of memory and ~11 MB of
/// checkpoint (figures in docs/ARCHITECTURE.md). Parts of a 5 TiB object are then 52 MiB,
/// which costs nothing in memory (bodies are streamed through a fixed buffer) and at most
/// `concurrency` part-fetches of work lost to a crash.
pub const DEFAULT_MAX_PARTS: u64 = 100_000;

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
            expected: Vec::new(),
            require_checksum: false,
            in_order_hashing: InOrderHashing::default(),
            share_tail: true,
            max_parts: DEFAULT_MAX_PARTS,
            start_over: false,
            lowest_speed: None,
            listed: None,
            connections: None,
            shared_rate: None,
            keep_modified_time: false,
            record_object: true,
            auto_jobs: None,
            auto_part_size: false,
        }
    }

    /// Bytes per part (≥ 1). The last part may be shorter. A size that would make more than
    /// [`max_parts`](Self::max_parts) parts is raised, and saved progress made with another
    /// part size is resumed with its own (unless [`start_over`](Self::start_over)); either is
    /// reported once with [`Event::PartSizeChanged`].
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// At most this many parts per download (≥ 1; default [`DEFAULT_MAX_PARTS`]): a larger
    /// count raises the part size to the smallest that keeps within it, so that memory and
    /// checkpoint size do not grow with the object's size.
    pub fn max_parts(mut self, n: u64) -> Self {
        self.max_parts = n;
        self
    }

    /// With `true`, saved progress of this download is discarded (reported with
    /// [`Event::CheckpointDiscarded`]) and the download starts from zero. By default it is
    /// resumed, with the part layout it was made with whatever [`part_size`](Self::part_size)
    /// says now, so that no saved byte is fetched again.
    pub fn start_over(mut self, yes: bool) -> Self {
        self.start_over = yes;
        self
    }

    /// Parts fetched at once (≥ 1), unless [`auto_jobs`](Self::auto_jobs) chooses.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// `Some`: the number of connections is chosen while the download runs (`--jobs auto`,
    /// see [`crate::tune`]): from `start`, doubled while the aggregate rate still grows, up to
    /// `max` (and the [`connection_limit`](Self::connection_limit), if any), halved when the
    /// server throttles; each change is reported with [`Event::JobsChanged`] and the outcome
    /// in [`Report::jobs`](crate::Report::jobs). [`concurrency`](Self::concurrency) is then
    /// not used. `None` (the default): [`concurrency`](Self::concurrency) connections.
    pub fn auto_jobs(mut self, auto: Option<AutoJobs>) -> Self {
        self.auto_jobs = auto;
        self
    }

    /// With `true`, the part size is chosen for the download's length and connections
    /// ([`auto_part_size`](crate::auto_part_size); `--part-size auto`) instead of
    /// [`part_size`](Self::part_size). The bound on parts and the reuse of saved layouts apply
    /// as to any part size.
    pub fn auto_part_size(mut self, yes: bool) -> Self {
        self.auto_part_size = yes;
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

    /// Abandons a request whose body is slower than this and retries the part on a new
    /// connection, counting a failed attempt (see [`LowestSpeed`]). `None` (the default, as
    /// in curl, wget and aria2c): only a transfer that stalls completely
    /// ([`idle_timeout`](Self::idle_timeout)) is abandoned; a per-connection floor cannot tell
    /// a trickling server from a slow link shared by `concurrency` connections.
    pub fn lowest_speed(mut self, limit: Option<LowestSpeed>) -> Self {
        self.lowest_speed = limit;
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

    /// Also checks the written bytes against `checksum`, a digest the caller knows (say,
    /// from a `SHA256SUMS` file). Unlike the store's checksums, which describe the whole
    /// object, it describes the file written: with a range, the range's bytes. May be given
    /// several times; every one must match.
    pub fn expect_checksum(mut self, checksum: Checksum) -> Self {
        self.expected.push(checksum);
        self
    }

    /// With `true`, a download with nothing to verify it against (the store publishes no
    /// checksum that applies, and none was given with [`expect_checksum`](Self::expect_checksum))
    /// fails with [`Error::Unverifiable`] before any byte is fetched. Default `false`: such a
    /// download completes, and its report says it was not verified.
    pub fn require_checksum(mut self, yes: bool) -> Self {
        self.require_checksum = yes;
        self
    }

    /// How digests that do not combine from parts (MD5, SHA-*) are computed: while parts
    /// complete in order (default), or in one read of the finished file (for measurements;
    /// BENCHMARKS.md compares both).
    pub fn in_order_hashing(mut self, how: InOrderHashing) -> Self {
        self.in_order_hashing = how;
        self
    }

    /// Whether a worker left without a part, once every part is claimed, takes over the end
    /// of the slowest part in flight (default `true`): on a slow or lossy link the last parts
    /// then finish on every connection instead of a few. A kill loses at most 1 MiB per
    /// worker either way; an interrupt does not keep a helper's bytes (at most 1 MiB each,
    /// only while the tail is shared). On a fast link nothing is split (ARCHITECTURE.md,
    /// "Sharing the tail").
    pub fn share_tail(mut self, yes: bool) -> Self {
        self.share_tail = yes;
        self
    }

    /// The object's metadata as a listing gave it (a batch job's [`ListedObject::meta`]):
    /// the download sends no stat request and pins every read to this etag (and version).
    ///
    /// - Without an etag (some S3 servers, e.g. `s3s-fs`, list none) the listing cannot pin
    ///   anything: the download stats the object first, as one without `listed` does, and
    ///   pins its reads to the stat's etag and verifies with the stat's checksums.
    /// - If the object is no longer that version, the first read fails with `Changed` and
    ///   [`OnChange`] applies as usual (a restart stats the object afresh).
    /// - With an etag, the stat before the rename that a download nothing verified gets
    ///   otherwise is skipped too: every byte came from responses pinned to, and checked
    ///   against, the listed etag, so the file is exactly the version the listing named.
    ///
    /// Use it only for the key the metadata describes; the download's checkpoint still pins
    /// size, etag and last-modified as for a stat.
    ///
    /// [`ListedObject::meta`]: crate::ListedObject::meta
    pub fn listed(mut self, meta: ObjectMeta) -> Self {
        self.listed = Some(meta);
        self
    }

    /// Shares `limit` with other downloads: each part request (with its retries) holds one of
    /// its permits, so downloads running at once never have more than `limit.max()` requests
    /// in flight together, while each still runs up to [`concurrency`](Self::concurrency)
    /// parts when permits are free. What a batch job's `--jobs` means.
    pub fn connection_limit(mut self, limit: ConnectionLimit) -> Self {
        self.connections = Some(limit);
        self
    }

    /// Shares one rate limit with other downloads (a batch job's `--limit-rate`): their
    /// workers together stay under it. Replaces [`rate_limit`](Self::rate_limit), which
    /// caps this download alone.
    pub fn shared_rate_limit(mut self, limit: crate::rate::RateLimit) -> Self {
        self.shared_rate = Some(limit);
        self
    }

    /// With `true`, the file gets the object's last-modified time (when the source reports
    /// one), set on the temp file before the atomic rename: DEST never appears, and no crash
    /// leaves it, with the object's bytes and another time. A batch job's skip rule relies on
    /// it; like `curl -R` / `wget -N` for one download. Default `false`: the time of the
    /// download.
    pub fn keep_modified_time(mut self, yes: bool) -> Self {
        self.keep_modified_time = yes;
        self
    }

    /// With `true` (the default), a download of the whole object records it with the
    /// finished file ([`crate::recorded`]: a user extended attribute naming the source and
    /// key, size, etag, version, CRC-64 and the file's modification time, set on the temp
    /// file before the rename), so a later run can tell, with no request, that the file is
    /// that version of the object and unchanged since. Silently nothing where the file system
    /// keeps no user extended attributes.
    pub fn record_object(mut self, yes: bool) -> Self {
        self.record_object = yes;
        self
    }

    /// Downloads `key` into `dest`.
    ///
    /// `dest` is replaced atomically once the bytes are complete and verified; until then it is
    /// untouched. The work in progress lives in `DEST.rgpart` (locked against a second
    /// download into the same `dest`) and the checkpoint. A symbolic link at `dest` is
    /// written through: its final target is the file replaced (and the download's identity),
    /// the link is left as it is.
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
        let store = self.store_for(&dest);
        engine::run(self, key, &dest, store).await
    }

    /// The checkpoint store of a download into `dest` (resolved), if it keeps one.
    fn store_for(&self, dest: &Path) -> Option<Arc<dyn CheckpointStore>> {
        match &self.checkpoint {
            CheckpointChoice::BesideDest => Some(Arc::new(FileCheckpointStore::beside(dest))),
            CheckpointChoice::InDir(dir) => Some(Arc::new(FileCheckpointStore::in_dir(dir))),
            CheckpointChoice::Store(s) => Some(s.clone()),
            CheckpointChoice::Disabled => None,
        }
    }

    /// What a run of `download(key, dest)` with these settings would resume from: the
    /// progress its checkpoint records, if the checkpoint is this download's, records a done
    /// part, and claims a temp file of the expected length. For saying what a failed or
    /// interrupted download left, having looked rather than assumed.
    pub fn saved_progress(&self, key: &str, dest: impl AsRef<Path>) -> Option<SavedProgress> {
        let dest = resolve_dest(dest.as_ref()).ok()?;
        let store = self.store_for(&dest)?;
        let id = engine::checkpoint_id(self, key, &dest);
        local_state::saved_progress(store.as_ref(), &id, &with_suffix(&dest, PART_SUFFIX))
    }

    /// Removes what an interrupted `download(key, dest)` with these settings left for a later
    /// run, when that run will never come (a batch job whose object was deleted from the
    /// source): its checkpoint, if it is this download's, and the temp file only if that
    /// checkpoint claims it (anybody else's file of that name stays). `true` when anything was
    /// removed. Never call it while that download runs.
    pub fn discard_saved_progress(&self, key: &str, dest: impl AsRef<Path>) -> bool {
        let Ok(dest) = resolve_dest(dest.as_ref()) else {
            return false;
        };
        let Some(store) = self.store_for(&dest) else {
            return false;
        };
        let id = engine::checkpoint_id(self, key, &dest);
        local_state::discard(store.as_ref(), &id, &with_suffix(&dest, PART_SUFFIX))
    }

    /// The file a download of `key` into `dest` with these settings keeps its checkpoint in,
    /// if its store keeps one in a file (whether it exists is for the caller to look). A batch
    /// job uses it to notice a checkpoint an interrupted run left beside a finished file.
    pub fn checkpoint_path(&self, key: &str, dest: impl AsRef<Path>) -> Option<PathBuf> {
        let dest = resolve_dest(dest.as_ref()).ok()?;
        let store = self.store_for(&dest)?;
        store.path(&engine::checkpoint_id(self, key, &dest))
    }

    fn validate(&self) -> Result<(), Error> {
        if self.part_size == 0 {
            return Err(Error::Config(
                "part size is 0 bytes; use at least 1 byte (e.g. 8 MiB)".into(),
            ));
        }
        if self.max_parts == 0 {
            return Err(Error::Config(
                "max parts is 0; allow at least 1 part (default 100 000)".into(),
            ));
        }
        if let Some(a) = &self.auto_jobs
            && (a.start == 0 || a.max == 0)
        {
            return Err(Error::Config(
                "automatic jobs with 0 connections; start with and allow at least 1".into(),
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
        if let Some(s) = self.lowest_speed
            && (s.bytes_per_sec == 0 || s.window.is_zero())
        {
            return Err(Error::Config(
                "lowest speed needs a positive rate and a positive time to measure it over".into(),
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

/// Most symbolic links followed from DEST to the file it names (Linux's own limit).
const MAX_LINKS: usize = 40;

/// The file a download into `dest` writes: absolute, its directory canonicalised, and
/// symbolic links at `dest` followed to their final target, so the same file is always named
/// the same way in checkpoints and locks.
///
/// A symbolic link at DEST is written *through*, as curl and wget do: the temp file lives
/// beside the link's final target (same directory, so the same file system and an atomic
/// rename) and replaces the target, so the link keeps pointing at the new content. A dangling
/// link creates its target. A chain of links is followed; a loop is refused.
///
/// Public so that a caller can find the files a download left (the CLI says what is saved).
pub fn resolve_dest(dest: &Path) -> Result<PathBuf, Error> {
    let (dir, name) = split_dest(dest).ok_or_else(|| {
        Error::Config(format!(
            "destination {} does not name a file; give a file path",
            dest.display()
        ))
    })?;
    let mut path = canonical_dir(&dir, None)?.join(name);
    // Every link passed on the way, to describe the chain and to notice a loop.
    let mut links: Vec<PathBuf> = Vec::new();
    loop {
        check_name_length(&path)?;
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // A new file, or the target of a dangling link: created by the download.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io("inspect destination", &path, e)),
        };
        if !meta.file_type().is_symlink() {
            break;
        }
        let is_loop = links.contains(&path);
        if is_loop || links.len() >= MAX_LINKS {
            links.push(path);
            return Err(Error::Config(format!(
                "destination {} is a symbolic link that never reaches a file ({}: {}); fix or \
                 remove the link, or give another destination",
                dest.display(),
                if is_loop { "a loop" } else { "too many links" },
                chain(&links),
            )));
        }
        let target =
            std::fs::read_link(&path).map_err(|e| Error::io("read destination link", &path, e))?;
        let link_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        links.push(path);
        let next = link_dir.join(&target);
        let Some((dir, name)) = split_dest(&next) else {
            return Err(Error::Config(format!(
                "destination {} is a symbolic link to a directory ({} → {}); give a file path",
                dest.display(),
                chain(&links),
                target.display()
            )));
        };
        path = canonical_dir(&dir, Some((dest, &links)))?.join(name);
    }
    if path.is_dir() {
        return Err(Error::Config(if links.is_empty() {
            format!(
                "destination {} is a directory; give a file path inside it",
                path.display()
            )
        } else {
            format!(
                "destination {} is a symbolic link to a directory ({} → {}); give a file path",
                dest.display(),
                chain(&links),
                path.display()
            )
        }));
    }
    Ok(path)
}

/// `dest` split into its directory (`.` when it has none) and file name; `None` when it names
/// no file (`/`, `..`, a trailing separator).
fn split_dest(dest: &Path) -> Option<(PathBuf, std::ffi::OsString)> {
    let ends_with_separator = dest
        .as_os_str()
        .as_encoded_bytes()
        .last()
        .is_some_and(|&b| std::path::is_separator(char::from(b)));
    let name = dest.file_name().filter(|_| !ends_with_separator)?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some((dir, name.to_owned()))
}

/// `dir`, canonicalised; it must be an existing directory. `via` is the destination and the
/// links followed when `dir` is where a link points, for the message.
fn canonical_dir(dir: &Path, via: Option<(&Path, &[PathBuf])>) -> Result<PathBuf, Error> {
    let explain = |e: std::io::Error| match via {
        None => e,
        Some((dest, links)) => std::io::Error::new(
            e.kind(),
            format!(
                "{e} (destination {} is a symbolic link into it: {})",
                dest.display(),
                chain(links)
            ),
        ),
    };
    let canonical = dir
        .canonicalize()
        .map_err(|e| Error::io("open destination directory", dir, explain(e)))?;
    if !canonical.is_dir() {
        return Err(Error::io(
            "open destination directory",
            &canonical,
            explain(std::io::Error::from(std::io::ErrorKind::NotADirectory)),
        ));
    }
    Ok(canonical)
}

/// `a → b → c`.
fn chain(links: &[PathBuf]) -> String {
    links
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(" → ")
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let canonical = dir.path().canonicalize().expect("canonical tempdir");
        (dir, canonical)
    }

    #[test]
    fn a_plain_destination_is_made_absolute() {
        let (_guard, d) = dir();
        assert_eq!(resolve_dest(&d.join("new.bin")).unwrap(), d.join("new.bin"));
        std::fs::write(d.join("old.bin"), b"x").unwrap();
        assert_eq!(resolve_dest(&d.join("old.bin")).unwrap(), d.join("old.bin"));
        let err = resolve_dest(&d.join("new.bin/")).unwrap_err();
        assert!(err.to_string().contains("does not name a file"), "{err}");
        let err = resolve_dest(&d).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn links_are_followed_to_their_final_target() {
        let (_guard, d) = dir();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/target.bin"), b"x").unwrap();
        // Relative, into another directory.
        symlink("sub/target.bin", d.join("rel")).unwrap();
        assert_eq!(
            resolve_dest(&d.join("rel")).unwrap(),
            d.join("sub/target.bin")
        );
        // Absolute, in the same directory, through a chain of two.
        symlink(d.join("sub/target.bin"), d.join("sub/abs")).unwrap();
        symlink("sub/abs", d.join("chain")).unwrap();
        assert_eq!(
            resolve_dest(&d.join("chain")).unwrap(),
            d.join("sub/target.bin")
        );
        // A relative target is relative to the link's directory, even when that directory is
        // reached through another link.
        symlink("sub", d.join("sublink")).unwrap();
        symlink("target.bin", d.join("sub/same-dir")).unwrap();
        assert_eq!(
            resolve_dest(&d.join("sublink/same-dir")).unwrap(),
            d.join("sub/target.bin")
        );
    }

    #[test]
    fn a_dangling_link_names_the_file_to_create() {
        let (_guard, d) = dir();
        std::fs::create_dir(d.join("sub")).unwrap();
        symlink("sub/not-yet.bin", d.join("dangling")).unwrap();
        assert_eq!(
            resolve_dest(&d.join("dangling")).unwrap(),
            d.join("sub/not-yet.bin")
        );
        symlink("missing-dir/x.bin", d.join("nowhere")).unwrap();
        let err = resolve_dest(&d.join("nowhere")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::LocalIo { .. }), "{err:?}");
        assert!(
            msg.contains("missing-dir")
                && msg.contains("is a symbolic link into it")
                && msg.contains("check that the directory exists"),
            "{msg}"
        );
    }

    #[test]
    fn loops_and_links_to_directories_are_refused_with_the_chain() {
        let (_guard, d) = dir();
        symlink("self", d.join("self")).unwrap();
        symlink("b", d.join("a")).unwrap();
        symlink("a", d.join("b")).unwrap();
        for (name, chain) in [("self", "self → "), ("a", "a → ")] {
            let err = resolve_dest(&d.join(name)).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
            assert!(
                msg.contains("never reaches a file (a loop: ")
                    && msg.contains(chain)
                    && msg.contains("fix or remove the link"),
                "{msg}"
            );
        }
        // A long chain that ends nowhere near a loop.
        for i in 0..=MAX_LINKS {
            symlink(format!("l{}", i + 1), d.join(format!("l{i}"))).unwrap();
        }
        let err = resolve_dest(&d.join("l0")).unwrap_err();
        assert!(err.to_string().contains("too many links"), "{err}");
        std::fs::create_dir(d.join("sub")).unwrap();
        symlink("sub", d.join("to-dir")).unwrap();
        symlink("sub/", d.join("to-dir-slash")).unwrap();
        symlink("..", d.join("to-parent")).unwrap();
        for name in ["to-dir", "to-dir-slash", "to-parent"] {
            let err = resolve_dest(&d.join(name)).unwrap_err();
            assert!(
                err.to_string()
                    .contains("is a symbolic link to a directory"),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn a_name_longer_than_the_file_system_allows_is_refused_before_any_transfer() {
        let (_guard, d) = dir();
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
