//! The engine's [`RangeSource`](resume_core::RangeSource) for every store
//! [`object_store`] speaks: S3 and S3-compatible servers (MinIO, moto, R2…), Google Cloud
//! Storage, Azure Blob, plain HTTP(S) servers that honour `Range`, local files and memory.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use backend_object_store::{StoreOptions, from_url};
//! use resume_core::Downloader;
//!
//! // Credentials and region from AWS_* variables; a local S3-compatible server.
//! let options = StoreOptions::new()
//!     .endpoint("http://127.0.0.1:9000")
//!     .allow_http(true)
//!     .path_style();
//! let (source, key) = from_url("s3://my-bucket/abc/efg/123.jpg", &options)?;
//! let report = Downloader::new(source).download(&key, "123.jpg").await?;
//! # let _ = report; Ok(()) }
//! ```
//!
//! # What the backend does
//!
//! [`ObjectStoreSource`] only translates, like every backend: `stat` is a `HEAD` (size,
//! etag, last-modified, version), `read_range` one `GET` with `Range`, `If-Match` and the
//! version, reporting what the response declared (range, total size, etag), and
//! object_store's errors become the engine's kinds: `NotFound`; `PermissionDenied` /
//! `Unauthenticated` → `Denied`; `Precondition` (412) → `Changed`; `NotModified` → `Other`;
//! and `Generic`, object_store's wrapper for everything else, by what it wraps — 416 →
//! `InvalidRange`, 408 / 429 / 5xx and transport failures → `Transient`, other 4xx →
//! `Other`. A body that breaks part-way is `Transient`. Messages carry object_store's
//! error chain, the status, the server's error code and request id, with every URL in them
//! redacted by [`resume_core::redact`] (user-info passwords, and the values of signing and
//! token parameters of presigned URLs and SAS tokens).
//!
//! # Timeouts and retries: the engine's, not object_store's
//!
//! object_store's defaults suit small requests: a 30 s **whole-request** timeout
//! (`ClientOptions::timeout`, body included) and up to 10 retries within a 3-minute
//! `RetryConfig::retry_timeout`, including re-requesting the rest of a body that broke.
//! For this engine both are wrong:
//!
//! * a part of 8 MiB (or 1 GiB) on a slow link takes longer than 30 s while making steady
//!   progress; a whole-request timeout would kill it and every retry of it, forever. The
//!   engine instead applies an **idle** timeout to every request and every body chunk
//!   (`Downloader::idle_timeout`), which stops only a transfer that has stalled;
//! * the engine already retries per part, with bounded, jittered, seeded backoff, resuming
//!   a broken body at the byte where it broke and counting progress; object_store's retries
//!   underneath would multiply the attempts (10 × the engine's), hide failures from the
//!   engine's accounting and events, and sleep with a backoff the engine does not control.
//!
//! So every store built here (and any you build with [`engine_client_options`] and
//! [`engine_retry_config`]) has **no whole-request timeout**, a **5 s connect timeout**,
//! no read timeout by default (the engine's idle timeout covers it; set
//! [`ClientSettings::read_timeout`] as a backstop when using the source without the engine)
//! and **`max_retries = 0`**. All are adjustable through [`ClientSettings`].
//!
//! # Objects without an etag
//!
//! Some HTTP servers send no `ETag`. `stat` then reports `etag: None` (never an invented
//! one), so the engine sends no `If-Match`, and the object's identity is its **size and
//! last-modified**, which the checkpoint's object fingerprint records (with the etag as
//! `None`): a resume against a changed size or last-modified discards the checkpoint, and
//! every response's declared total size is checked against the size `stat` saw. The
//! residual risk: an object rewritten *during* a download with the *same size*, on a
//! server without etags, is not detected by the reads themselves (no precondition is
//! sent); a later resume still sees the new last-modified. A missing `Last-Modified` is
//! reported as `None` (object_store's placeholder, the Unix epoch, is not passed on).
//!
//! # Local files
//!
//! A `file://` source (any `LocalFileSystem`) pins the file by its identity — device, inode,
//! size, mtime and ctime — reported as the etag, checks it when a read opens the file and again,
//! on the open file and on the path, after the read's last block: a file rewritten, truncated,
//! appended to or replaced while a part is read ends that read with `Changed`, never with
//! bytes of two versions. See `local.rs` for what remains undetectable.
//!
//! # Versions
//!
//! A version id asked of a store without versions (local files, HTTP servers, memory), which
//! object_store would silently ignore, is `Misconfigured`; a store that answers with another
//! version than the one asked is `NotFound` (stat) or `Changed` (read).
//!
//! # Servers that ignore `Range`
//!
//! A server that answers a ranged `GET` with `200` and the whole object is refused by
//! object_store before the body is read. The source then repeats the request without a
//! range (same conditions) and reports what that response declares — the whole object —
//! so the engine accepts it only if the whole object is what it asked for (one part), and
//! otherwise stops with its "the source ignores Range" error. It never becomes data for a
//! part.
//!
//! # Listing
//!
//! [`ObjectStoreLister`] is the batch layer's [`Lister`](resume_core::Lister) for the same
//! stores (not HTTP servers, which cannot list): one page of at most 1 000 objects per call,
//! the token being the last key returned; [`lister_from_url`] reads a URL's path as the
//! prefix. Local files are walked in key order with the same file identity as etag that
//! `stat` reports. See `list.rs` for what each store can and cannot list.
//!
//! # TLS
//!
//! object_store's HTTP client is reqwest with rustls and the ring provider, like the rest
//! of the workspace (no OpenSSL, no aws-lc). Building a store through this crate installs
//! ring as the process's default rustls provider if none is installed
//! ([`ensure_crypto_provider`]); call it yourself before building stores by hand.
#![forbid(unsafe_code)]

mod azure_md5;
mod config;
mod error;
mod gcs;
mod list;
mod local;
mod request_log;
mod s3;
mod s3_checksum;
mod source;

pub use config::{
    Addressing, BuildError, ClientSettings, StoreOptions, engine_client_options,
    engine_retry_config, ensure_crypto_provider, from_url,
};
pub use list::{MAX_PAGE_SIZE, ObjectStoreLister, lister_from_url};
pub use object_store;
pub use source::ObjectStoreSource;
