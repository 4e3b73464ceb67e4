//! The seed's call shape: `bucket.download_file(key, file_path, part_size, &[options])`.
//!
//! A thin translation onto [`resume_core::Downloader`]: every option becomes a builder call or
//! a [`ReadOptions`](crate::ReadOptions) field, and the engine does the rest (parts, retries, checkpoint,
//! verification, atomic rename). There is no download logic here.
//!
//! The seed's Go example,
//!
//! ```go
//! client, err := oss.New("Endpoint", "AccessKeyId", "AccessKeySecret")
//! bucket, err := client.Bucket("my-bucket")
//! err = bucket.DownloadFile("my-object", "LocalFile", 100*1024, oss.Routines(3), oss.Checkpoint(true, ""))
//! ```
//!
//! in Rust:
//!
//! ```no_run
//! use backend_oss::Client;
//! use backend_oss::DownloadOption::{Checkpoint, Routines};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("https://oss-cn-hangzhou.aliyuncs.com", "AccessKeyId", "AccessKeySecret")?;
//! let bucket = client.bucket("my-bucket")?;
//! let report = bucket
//!     .download_file("my-object", "LocalFile", 100 * 1024, &[Routines(3), Checkpoint(true, "")])
//!     .await?;
//! println!("{} bytes, CRC-64 verified: {}", report.range.end - report.range.start, report.crc64_verified);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use resume_core::checkpoint::FileCheckpointStore;
use resume_core::{
    CancellationToken, CheckpointChoice, Event, OnChange, RangeSpec, Report, RetryPolicy,
    parse_range,
};

use crate::client::Bucket;

/// A progress listener: called synchronously for every engine [`Event`]; keep it quick.
pub type ProgressListener = Arc<dyn Fn(&Event) + Send + Sync>;

/// An option of [`Bucket::download_file`], named as in the seed's Go SDK.
///
/// Later options override earlier ones of the same kind (the checkpoint options are one kind).
#[derive(Clone)]
#[non_exhaustive]
pub enum DownloadOption<'a> {
    /// Parts fetched at once (≥ 1). Default: 1, as in the seed.
    Routines(usize),
    /// `Checkpoint(true, "")`: checkpoint beside the file (`FILE.rgcp`), the default.
    /// `Checkpoint(true, path)`: the checkpoint file is exactly `path`; a directory
    /// (existing, or ending in `/`) holds it as with `CheckpointDir`.
    /// `Checkpoint(false, _)`: no checkpoint, an interrupted download starts over.
    Checkpoint(bool, &'a str),
    /// `CheckpointDir(true, dir)`: the checkpoint lives in `dir`, named after the download
    /// (`""` means beside the file). `CheckpointDir(false, _)`: no checkpoint.
    CheckpointDir(bool, &'a str),
    /// Download bytes `first..=last` only (both inclusive, like HTTP).
    Range(u64, u64),
    /// A range as a user types it: `"a-b"` (inclusive), `"a-"`, or `"-n"` (the last n bytes).
    NormalizedRange(&'a str),
    /// Download this version of the object.
    VersionId(&'a str),
    /// Receives every progress [`Event`].
    Progress(ProgressListener),
    /// `x-oss-request-payer: requester`, for requester-pays buckets.
    RequestPayer,
    /// `x-oss-traffic-limit` in bit/s (819 200 to 838 860 800).
    TrafficLimit(u64),
    /// One more request header (`x-oss-*` ones are signed).
    Header(&'a str, &'a str),
    /// On resume, re-hash every done part and re-fetch only the damaged ones.
    VerifyOnResume(bool),
    /// What to do when the object changes mid-download (default: restart).
    OnChange(OnChange),
    /// Retry policy of the engine (bounded attempts, backoff).
    Retry(RetryPolicy),
    /// Cancelling the token stops the download gracefully, progress saved.
    Cancel(CancellationToken),
}

impl DownloadOption<'_> {
    /// `Progress(Arc::new(f))`.
    pub fn progress(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        DownloadOption::Progress(Arc::new(f))
    }
}

impl fmt::Debug for DownloadOption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DownloadOption::*;
        match self {
            Routines(n) => f.debug_tuple("Routines").field(n).finish(),
            Checkpoint(on, p) => f.debug_tuple("Checkpoint").field(on).field(p).finish(),
            CheckpointDir(on, d) => f.debug_tuple("CheckpointDir").field(on).field(d).finish(),
            Range(a, b) => f.debug_tuple("Range").field(a).field(b).finish(),
            NormalizedRange(r) => f.debug_tuple("NormalizedRange").field(r).finish(),
            VersionId(v) => f.debug_tuple("VersionId").field(v).finish(),
            Progress(_) => f.write_str("Progress(..)"),
            RequestPayer => f.write_str("RequestPayer"),
            TrafficLimit(l) => f.debug_tuple("TrafficLimit").field(l).finish(),
            // Values are not shown: a user may pass anything there.
            Header(name, _) => f.debug_tuple("Header").field(name).finish_non_exhaustive(),
            VerifyOnResume(v) => f.debug_tuple("VerifyOnResume").field(v).finish(),
            OnChange(p) => f.debug_tuple("OnChange").field(p).finish(),
            Retry(p) => f.debug_tuple("Retry").field(p).finish(),
            Cancel(_) => f.write_str("Cancel(..)"),
        }
    }
}

/// The checkpoint `Checkpoint(true, path)` asks for; see [`DownloadOption::Checkpoint`]:
/// a directory (an existing one, or a path ending in `/`) holds it like `CheckpointDir`,
/// anything else is the checkpoint file itself.
fn checkpoint_at(path: &str) -> CheckpointChoice {
    if path.ends_with(std::path::MAIN_SEPARATOR) || Path::new(path).is_dir() {
        return CheckpointChoice::InDir(PathBuf::from(path));
    }
    CheckpointChoice::Store(Arc::new(FileCheckpointStore::at(path)))
}

impl Bucket {
    /// Downloads `key` into `file_path` in parts of `part_size` bytes: the seed's
    /// `bucket.DownloadFile`, on top of [`resume_core::Downloader`].
    ///
    /// Unless an option says otherwise: one part at a time (`Routines`), a checkpoint beside
    /// the file (`FILE.rgcp`; resumable after any interruption), the whole object, the current
    /// version, the engine's retry policy, and the client's read timeout as the idle timeout.
    /// The file is replaced atomically once its bytes are complete and verified (CRC-64
    /// against OSS's, when published).
    pub async fn download_file(
        &self,
        key: &str,
        file_path: impl AsRef<Path>,
        part_size: u64,
        options: &[DownloadOption<'_>],
    ) -> Result<Report, resume_core::Error> {
        let config = resume_core::Error::Config;
        // First the options every request carries, which make the source…
        let mut read = (*self.options).clone();
        for option in options {
            match option {
                DownloadOption::RequestPayer => read.request_payer = true,
                DownloadOption::TrafficLimit(limit) => read.traffic_limit = Some(*limit),
                DownloadOption::Header(name, value) => {
                    read.headers.push((name.to_string(), value.to_string()))
                }
                _ => {}
            }
        }
        let bucket = self.with_options(read).map_err(|e| config(e.to_string()))?;
        // …then the engine's settings.
        let mut d = bucket
            .downloader()
            .part_size(part_size)
            .concurrency(1)
            .checkpoint_choice(CheckpointChoice::BesideDest);
        for option in options {
            d = match option {
                DownloadOption::Routines(n) => d.concurrency(*n),
                DownloadOption::Checkpoint(false, _) | DownloadOption::CheckpointDir(false, _) => {
                    d.no_checkpoint()
                }
                DownloadOption::Checkpoint(true, "") | DownloadOption::CheckpointDir(true, "") => {
                    d.checkpoint_choice(CheckpointChoice::BesideDest)
                }
                DownloadOption::Checkpoint(true, path) => d.checkpoint_choice(checkpoint_at(path)),
                DownloadOption::CheckpointDir(true, dir) => {
                    d.checkpoint_choice(CheckpointChoice::InDir(PathBuf::from(dir)))
                }
                DownloadOption::Range(first, last) => {
                    if first > last {
                        return Err(config(format!(
                            "range {first}-{last} starts after it ends; give first <= last \
                             (both inclusive)"
                        )));
                    }
                    d.range(RangeSpec::Inclusive {
                        first: *first,
                        last: *last,
                    })
                }
                DownloadOption::NormalizedRange(text) => {
                    d.range(parse_range(text).map_err(|p| config(p.0))?)
                }
                DownloadOption::VersionId(v) => {
                    if v.is_empty() {
                        return Err(config(
                            "the version id is empty; omit VersionId to download the current \
                             version"
                                .into(),
                        ));
                    }
                    d.version_id(*v)
                }
                DownloadOption::Progress(listener) => {
                    let listener = listener.clone();
                    d.on_progress(move |e| listener(e))
                }
                DownloadOption::VerifyOnResume(yes) => d.verify_on_resume(*yes),
                DownloadOption::OnChange(policy) => d.on_change(*policy),
                DownloadOption::Retry(policy) => d.retry(policy.clone()),
                DownloadOption::Cancel(token) => d.cancel_token(token.clone()),
                DownloadOption::RequestPayer
                | DownloadOption::TrafficLimit(_)
                | DownloadOption::Header(..) => d,
            };
        }
        d.download(key, file_path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_path_is_the_checkpoint_file_and_a_directory_holds_one() {
        let id = resume_core::checkpoint::CheckpointId {
            source: "s".into(),
            key: "k".into(),
            version_id: None,
            range: RangeSpec::Full,
            destination: "/tmp/d".into(),
        };
        for path in ["/tmp/x/my.rgcp", "/tmp/x/my.cp", ".rgcp"] {
            let CheckpointChoice::Store(store) = checkpoint_at(path) else {
                panic!("a store for {path}")
            };
            assert_eq!(store.path(&id), Some(PathBuf::from(path)));
        }
        let dir = std::env::temp_dir();
        assert!(matches!(
            checkpoint_at(dir.to_str().unwrap()),
            CheckpointChoice::InDir(d) if d == dir
        ));
        assert!(matches!(
            checkpoint_at("not/yet/there/"),
            CheckpointChoice::InDir(d) if d == Path::new("not/yet/there/")
        ));
    }
}
