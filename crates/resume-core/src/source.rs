//! The contract every backend implements: [`RangeSource`].
//!
//! Backends only translate: a `stat`, a ranged read, and a mapping of their failures onto
//! [`SourceErrorKind`]. Everything else — retries, validation of what came back, hashing,
//! checkpoints — is the engine's job, so that every backend gets it right the same way.

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::integrity::{Algorithm, Checksum, Scope};

/// What a source knows about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    /// Opaque version tag as the source sends it (quotes included for HTTP sources).
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    pub version_id: Option<String>,
    /// The checksums the store published for the object, as it said them (e.g. OSS's
    /// `x-oss-hash-crc64ecma` as a CRC-64/XZ, its `Content-MD5` as an MD5), each with
    /// [`Origin::Store`](crate::Origin::Store). The engine checks the ones it can.
    pub checksums: Vec<Checksum>,
    /// Why the store's checksums could not be read, when they may exist but were not given
    /// (e.g. S3 refused checksum mode for a KMS-encrypted object): the download's report says
    /// it instead of "the store publishes no checksum".
    pub checksum_note: Option<String>,
}

impl ObjectMeta {
    /// The published whole-object CRC-64/XZ, if any.
    pub fn crc64(&self) -> Option<u64> {
        self.checksums
            .iter()
            .find(|c| c.algorithm == Algorithm::Crc64Xz && c.scope == Scope::FullObject)
            .and_then(|c| c.value.as_slice().try_into().ok())
            .map(u64::from_be_bytes)
    }
}

/// Preconditions every ranged read carries, so that a read never mixes object versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadConditions {
    /// Serve only if the object's etag still equals this (`If-Match`).
    pub if_match: Option<String>,
    /// Read this version of the object.
    pub version_id: Option<String>,
    /// The object's last-modified time when the download was pinned to it. Sources whose
    /// etags cannot pin a read (none, or weak ones, which `If-Match` never matches) send it
    /// as `If-Unmodified-Since` and report a response with another last-modified time as
    /// [`SourceErrorKind::Changed`]; sources with strong etags or versions may ignore it.
    pub if_unmodified_since: Option<SystemTime>,
}

/// A stream of body bytes; an `Err` item ends the read.
pub type ByteStream = BoxStream<'static, Result<Bytes, SourceError>>;

/// What a source says it is sending, before the body.
///
/// The engine compares every field with what it asked for: a different range, a whole object
/// instead of a range, another etag or another total size is an error, never data.
pub struct RangeRead {
    /// The object bytes `[start, end)` the body holds, as the source declared them
    /// (HTTP: from `Content-Range`; a `200` is declared as `0..size`).
    pub range: Range<u64>,
    /// Total object size the source declared alongside the range, if it did.
    pub total_size: Option<u64>,
    /// The etag the response carried, if any.
    pub etag: Option<String>,
    /// The body.
    pub body: ByteStream,
}

impl fmt::Debug for RangeRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeRead")
            .field("range", &self.range)
            .field("total_size", &self.total_size)
            .field("etag", &self.etag)
            .finish_non_exhaustive()
    }
}

/// A read that also describes the object, from the same response
/// ([`RangeSource::read_described`]).
#[derive(Debug)]
pub struct DescribedRead {
    /// The read, as [`RangeSource::read_range`] reports it.
    pub read: RangeRead,
    /// The object as this response described it, as a `stat` would: size, etag, version,
    /// last-modified and every checksum the store published for the whole object (S3's
    /// `x-amz-checksum-*` with `x-amz-checksum-mode: ENABLED`). `None` when the source cannot
    /// say it from a read (then the engine stats the object when it needs to).
    pub object: Option<ObjectMeta>,
}

/// The small set of failure kinds the engine acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceErrorKind {
    /// The object (or its bucket) does not exist. Not retried.
    NotFound,
    /// Credentials are missing, wrong or insufficient. Not retried.
    Denied,
    /// A precondition failed: the object is not the version being downloaded (412).
    Changed,
    /// The range cannot be satisfied (416). Not retried.
    InvalidRange,
    /// Worth retrying: 5xx, 408, 429, connection reset, timeout, truncated body.
    Transient,
    /// The request cannot succeed with the source's settings, whatever the server's state: a
    /// bucket in another region than the one configured, a version id for a store without
    /// versions. Not retried; the caller's configuration (a usage error) must change.
    Misconfigured,
    /// Anything else. Not retried.
    Other,
}

impl SourceErrorKind {
    /// Whether the engine retries a request that failed this way.
    pub fn is_retryable(self) -> bool {
        matches!(self, SourceErrorKind::Transient)
    }
}

impl fmt::Display for SourceErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceErrorKind::NotFound => "not found",
            SourceErrorKind::Denied => "access denied",
            SourceErrorKind::Changed => "object changed",
            SourceErrorKind::InvalidRange => "invalid range",
            SourceErrorKind::Transient => "transient failure",
            SourceErrorKind::Misconfigured => "wrong settings",
            SourceErrorKind::Other => "failure",
        })
    }
}

/// A failure reported by a [`RangeSource`], with what the server said about it.
///
/// Backends build it once, at the boundary where a protocol status is mapped to a kind.
/// It must never contain credentials.
#[derive(Debug)]
pub struct SourceError {
    pub kind: SourceErrorKind,
    /// What failed, in words (without secrets).
    pub message: String,
    /// Protocol status, e.g. the HTTP status code.
    pub status: Option<u16>,
    /// The server's error code, e.g. `NoSuchKey` or `SignatureDoesNotMatch`.
    pub code: Option<String>,
    /// The server's request id, for support tickets.
    pub request_id: Option<String>,
    /// What the user can do, when the backend knows better than the engine's advice for
    /// `kind`: the engine's error ends with this instead of its own. Empty when `message`
    /// already says it (then the engine adds no advice, rather than repeating it).
    pub hint: Option<String>,
    /// The underlying error.
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl SourceError {
    pub fn new(kind: SourceErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            code: None,
            request_id: None,
            hint: None,
            source: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Sets [`SourceError::hint`].
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Shorthand for a retryable failure.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(SourceErrorKind::Transient, message)
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        let mut extras = Vec::new();
        if let Some(s) = self.status {
            extras.push(format!("status {s}"));
        }
        if let Some(c) = &self.code {
            extras.push(format!("code {c}"));
        }
        if let Some(r) = &self.request_id {
            extras.push(format!("request id {r}"));
        }
        if !extras.is_empty() {
            write!(f, " ({})", extras.join(", "))?;
        }
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Where object bytes come from. Implemented once per backend (OSS, `object_store`, mock…).
///
/// Implementations must be cheap to share (`Arc`) and safe to call concurrently: the engine
/// issues up to `concurrency` reads at once.
#[async_trait::async_trait]
pub trait RangeSource: Send + Sync + fmt::Debug {
    /// A stable string naming backend, endpoint and bucket (never credentials), so that a
    /// checkpoint taken against one source is never applied to another.
    fn identity(&self) -> String;

    /// Size, etag and the rest of what identifies the object's current content.
    async fn stat(&self, key: &str, version_id: Option<&str>) -> Result<ObjectMeta, SourceError>;

    /// Starts reading object bytes `range` (`[start, end)`, never empty) under `conditions`.
    /// Implementations send every condition they are given (If-Match, version) and report
    /// honestly what the response declares; they do not retry.
    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError>;

    /// Reads `range` as [`read_range`](Self::read_range) does, and describes the object from
    /// the same response ([`DescribedRead::object`]), so that one request can stand in for a
    /// stat and a read. The engine asks it for an object it reads whole in one request (one
    /// part, its size known from a listing): the etag pins the download, the checksums
    /// verify it. Sources that cannot describe the object from a read keep this default:
    /// a plain read, `object: None`.
    async fn read_described(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<DescribedRead, SourceError> {
        Ok(DescribedRead {
            read: self.read_range(key, range, conditions).await?,
            object: None,
        })
    }
}

#[async_trait::async_trait]
impl<T: RangeSource + ?Sized> RangeSource for std::sync::Arc<T> {
    fn identity(&self) -> String {
        (**self).identity()
    }
    async fn stat(&self, key: &str, version_id: Option<&str>) -> Result<ObjectMeta, SourceError> {
        (**self).stat(key, version_id).await
    }
    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        (**self).read_range(key, range, conditions).await
    }
    async fn read_described(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<DescribedRead, SourceError> {
        (**self).read_described(key, range, conditions).await
    }
}
