//! [`ObjectStoreSource`]: the engine's [`RangeSource`] over any `object_store::ObjectStore`.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, GetResultPayload, ObjectStore};
use resume_core::{
    DescribedRead, ObjectMeta, RangeRead, RangeSource, ReadConditions, SourceError, SourceErrorKind,
};

use crate::azure_md5::AzureMd5;
use crate::error::{Op, is_range_ignored, map_error};
use crate::gcs::Gcs;
use crate::local::{self, FileId};
use crate::s3::S3Hints;
use crate::s3_checksum::{Pinned, S3Checksums};

/// A [`RangeSource`] reading from an [`ObjectStore`]: S3 and S3-compatible stores, GCS, Azure
/// Blob, plain HTTP(S) servers that honour `Range`, local files, memory.
///
/// * `stat` is a `HEAD` (`get_opts` with `head: true` and the version, if any): size, etag,
///   last-modified, version. A store that sends no etag (some HTTP servers) gets
///   `etag: None`; see the crate docs for what that means for change detection.
/// * `read_range` is one `get_opts` with `GetRange::Bounded`, `if_match` and `version` from
///   the [`ReadConditions`]; it reports the range, total size and etag the response declared
///   and streams the body. It never retries: the engine does.
/// * `read_described` of an S3 source built by `from_url`, for a range from byte 0, is one
///   GET of the whole object with `x-amz-checksum-mode: ENABLED` (`s3_checksum.rs`), which
///   describes the object as a stat would (so the engine sends no stat); other sources, and
///   answers other than 200, read as `read_range` does. An Azure source's is one GET of the
///   whole blob, described by its headers (its `Content-MD5`: `azure_md5.rs`).
///
/// Build one with [`from_url`](crate::from_url), [`ObjectStoreSource::local`], or
/// [`ObjectStoreSource::new`] around a store you configured yourself (then configure its
/// client with [`engine_client_options`](crate::engine_client_options) and
/// [`engine_retry_config`](crate::engine_retry_config)).
#[derive(Clone)]
pub struct ObjectStoreSource {
    store: Arc<dyn ObjectStore>,
    identity: String,
    kind: StoreKind,
    /// S3 stores built by `from_url`: what their errors need to be explained.
    s3: Option<Arc<S3Hints>>,
    /// S3 stores built by `from_url`: how to ask for the object's checksums.
    s3_checksums: Option<Arc<S3Checksums>>,
    /// Azure stores built by `from_url`: how to read a blob's `Content-MD5`.
    azure_md5: Option<Arc<AzureMd5>>,
    /// GCS stores built by `from_url`: stat, read and list through the JSON API (`gcs.rs`).
    gcs: Option<Arc<Gcs>>,
}

/// What the source must do differently for some stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    /// `LocalFileSystem`: pinned by file identity, re-checked after every read (`local.rs`).
    Local,
    /// `HttpStore`: no versions (object_store drops `GetOptions::version`), no buckets.
    Http,
    /// `InMemory`: no versions either.
    Memory,
    /// S3, GCS, Azure and anything else.
    Other,
}

impl StoreKind {
    /// Recognised by the store's `Display`, which object_store's stores keep stable
    /// (`LocalFileSystem(file:///…)`, `HttpStore`, `InMemory`).
    fn of(store: &dyn ObjectStore) -> Self {
        let shown = store.to_string();
        if shown.starts_with("LocalFileSystem(") {
            StoreKind::Local
        } else if shown == "HttpStore" {
            StoreKind::Http
        } else if shown == "InMemory" {
            StoreKind::Memory
        } else {
            StoreKind::Other
        }
    }

    /// What the store is, for a message about versions, when it has none.
    fn without_versions(self) -> Option<&'static str> {
        match self {
            StoreKind::Local => Some("a local file"),
            StoreKind::Http => Some("an HTTP server"),
            StoreKind::Memory => Some("the in-memory store"),
            StoreKind::Other => None,
        }
    }

    /// The advice for "not found" where the engine's (bucket, key, version id) does not fit.
    fn not_found_hint(self) -> Option<&'static str> {
        match self {
            StoreKind::Local => Some("check the path"),
            StoreKind::Http => Some("check the URL"),
            StoreKind::Memory | StoreKind::Other => None,
        }
    }
}

/// A local file's I/O error (after object_store opened it) as the engine's.
fn local_error(e: std::io::Error, op: Op, key: &str) -> SourceError {
    map_error(
        &object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        },
        op,
        key,
    )
}

impl fmt::Debug for ObjectStoreSource {
    // The store's own `Debug` may include its credentials; its `Display` and our identity
    // do not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreSource")
            .field("identity", &self.identity)
            .field("store", &format_args!("{}", self.store))
            .finish()
    }
}

impl ObjectStoreSource {
    /// Wraps `store`. `identity` names backend, endpoint and bucket (e.g.
    /// `s3://bucket@http://127.0.0.1:9000`); it goes into checkpoints so that progress made
    /// against one store is never applied to another, so it must be stable across runs,
    /// distinct per store, and free of credentials.
    pub fn new(store: Arc<dyn ObjectStore>, identity: impl Into<String>) -> Self {
        let kind = StoreKind::of(store.as_ref());
        Self {
            store,
            identity: identity.into(),
            kind,
            s3: None,
            s3_checksums: None,
            azure_md5: None,
            gcs: None,
        }
    }

    pub(crate) fn with_gcs(mut self, gcs: Gcs) -> Self {
        self.gcs = Some(Arc::new(gcs));
        self
    }

    /// A GCS store's JSON API, when the source was built by `from_url`.
    pub(crate) fn gcs(&self) -> Option<&Gcs> {
        self.gcs.as_deref()
    }

    pub(crate) fn with_azure_md5(mut self, md5: AzureMd5) -> Self {
        self.azure_md5 = Some(Arc::new(md5));
        self
    }

    pub(crate) fn with_s3_checksums(mut self, checksums: S3Checksums) -> Self {
        self.s3_checksums = Some(Arc::new(checksums));
        self
    }

    pub(crate) fn with_s3_hints(mut self, hints: S3Hints) -> Self {
        self.s3 = Some(Arc::new(hints));
        self
    }

    /// object_store's error as the engine's, with what S3 hints can add, and "not found"
    /// advice that fits a path or a URL.
    pub(crate) fn map(&self, err: &object_store::Error, op: Op, key: &str) -> SourceError {
        if let Some(h) = &self.s3
            && let Some(e) = h.explain(err, op, key)
        {
            return e;
        }
        let e = map_error(err, op, key);
        match self.kind.not_found_hint() {
            Some(hint) if e.kind == SourceErrorKind::NotFound && e.hint.is_none() => {
                e.with_hint(hint)
            }
            _ => e,
        }
    }

    /// The root directory of a local store (`LocalFileSystem`), `None` for any other store.
    pub(crate) fn local_root(&self) -> Option<std::path::PathBuf> {
        if self.kind != StoreKind::Local {
            return None;
        }
        // `LocalFileSystem(file:///root/)`: object_store's stable `Display`.
        let shown = self.store.to_string();
        let url = shown.strip_prefix("LocalFileSystem(")?.strip_suffix(')')?;
        url::Url::parse(url).ok()?.to_file_path().ok()
    }

    /// Whether the store is an HTTP server (which cannot list).
    pub(crate) fn is_http(&self) -> bool {
        self.kind == StoreKind::Http
    }

    /// `Misconfigured` when a version is asked of a store that has none.
    fn refuse_version(&self, version: Option<&str>) -> Result<(), SourceError> {
        let (Some(v), Some(store)) = (version, self.kind.without_versions()) else {
            return Ok(());
        };
        Err(SourceError::new(
            SourceErrorKind::Misconfigured,
            format!(
                "version {v:?} was asked of {store}, which has no object versions, so it could \
                 only serve the current content; drop the version id (--version-id)"
            ),
        ))
    }

    /// A ranged read of a local file: opened without object_store's `If-Match` (the pin is
    /// the [`FileId`] in the etag), checked at open and after the last block (`local.rs`).
    async fn read_local(
        &self,
        key: &str,
        path: &Path,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        let result = self
            .store
            .get_opts(path, GetOptions::default())
            .await
            .map_err(|e| self.map(&e, Op::Read, key))?;
        let GetResultPayload::File(file, fs_path) = result.payload else {
            return Err(SourceError::new(
                SourceErrorKind::Other,
                format!("the local store answered {key:?} with a stream instead of a file"),
            ));
        };
        let metadata = file.metadata().map_err(|e| local_error(e, Op::Read, key))?;
        let open = FileId::of(&metadata);
        let pinned = match conditions.if_match.as_deref() {
            None => open,
            Some(tag) => FileId::parse_tag(tag).ok_or_else(|| {
                SourceError::new(
                    SourceErrorKind::Changed,
                    format!(
                        "local file {} does not match the etag {tag} the read is pinned to",
                        fs_path.display()
                    ),
                )
            })?,
        };
        if open != pinned {
            return Err(local::changed(&fs_path, key, Some(&open), &pinned));
        }
        if range.end > open.size() {
            return Err(SourceError::new(
                SourceErrorKind::InvalidRange,
                format!(
                    "bytes {}-{} of {key:?} are past the end of its {} bytes",
                    range.start,
                    range.end.saturating_sub(1),
                    open.size()
                ),
            ));
        }
        Ok(RangeRead {
            range: range.clone(),
            total_size: Some(open.size()),
            etag: Some(open.tag()),
            body: local::body(file, fs_path, pinned, range, key),
        })
    }

    /// The local directory `root` as a store (`LocalFileSystem` with that prefix); keys are
    /// paths relative to it. Identity `file://<canonical root>`.
    pub fn local(root: impl AsRef<std::path::Path>) -> Result<Self, crate::BuildError> {
        let root = std::fs::canonicalize(root.as_ref()).map_err(|e| {
            crate::BuildError::new(format!("cannot open {}: {e}", root.as_ref().display()))
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&root).map_err(|e| {
            crate::BuildError::new(format!("local store at {}: {e}", root.display()))
        })?;
        Ok(Self::new(
            Arc::new(fs),
            format!("file://{}", root.to_string_lossy()),
        ))
    }

    /// The wrapped store, e.g. to write objects in tests.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

/// The store path for an engine key, only if it addresses exactly that key: object_store's
/// `Path` drops leading and trailing `/` and cannot hold empty segments, and reading a
/// different object than the one named would be worse than failing.
fn path_for(key: &str) -> Result<Path, SourceError> {
    match Path::parse(key) {
        Ok(p) if p.as_ref() == key && !key.is_empty() => Ok(p),
        Ok(_) => Err(SourceError::new(
            SourceErrorKind::Other,
            format!(
                "key {key:?} cannot be addressed through object_store exactly (empty, leading \
                 or trailing '/', or empty segments)"
            ),
        )),
        Err(e) => Err(SourceError::new(
            SourceErrorKind::Other,
            format!("key {key:?} is not a valid object_store path: {e}"),
        )),
    }
}

/// object_store reports a missing `Last-Modified` as the Unix epoch; no real object has it.
fn last_modified(meta: &object_store::ObjectMeta) -> Option<SystemTime> {
    let t = SystemTime::from(meta.last_modified);
    (t != SystemTime::UNIX_EPOCH).then_some(t)
}

fn into_read(result: GetResult, key: &str) -> RangeRead {
    let range = result.range.clone();
    let total_size = Some(result.meta.size);
    let etag = result.meta.e_tag.clone();
    let body = match result.payload {
        // A local file through a store not recognised as one (e.g. a wrapper): pinned to what
        // was opened, and still re-checked after the last block.
        GetResultPayload::File(file, path) => match file.metadata() {
            Ok(m) => local::body(file, path, FileId::of(&m), range.clone(), key),
            Err(e) => {
                let e = local_error(e, Op::Body, key);
                futures::stream::once(async move { Err(e) }).boxed()
            }
        },
        GetResultPayload::Stream(stream) => {
            let key = key.to_owned();
            stream
                .map(move |chunk| chunk.map_err(|e| map_error(&e, Op::Body, &key)))
                .boxed()
        }
    };
    RangeRead {
        range,
        total_size,
        etag,
        body,
    }
}

#[async_trait::async_trait]
impl RangeSource for ObjectStoreSource {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    async fn stat(&self, key: &str, version_id: Option<&str>) -> Result<ObjectMeta, SourceError> {
        if let Some(gcs) = &self.gcs {
            return gcs.stat(key, version_id).await;
        }
        let path = path_for(key)?;
        self.refuse_version(version_id)?;
        let options = GetOptions {
            head: true,
            version: version_id.map(str::to_owned),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&path, options)
            .await
            .map_err(|e| self.map(&e, Op::Stat, key))?;
        let meta = &result.meta;
        // A store that drops the version would describe the current object instead.
        if let Some(v) = version_id
            && meta.version.as_deref() != Some(v)
        {
            return Err(SourceError::new(
                SourceErrorKind::NotFound,
                format!(
                    "version {v:?} of {key:?} was asked for and the store answered with {}; it \
                     does not serve that version (check the version id, and that the bucket \
                     keeps versions)",
                    match &meta.version {
                        Some(got) => format!("version {got:?}"),
                        None => "no version at all".to_owned(),
                    }
                ),
            ));
        }
        let (size, etag) = match (&self.kind, &result.payload) {
            // The full identity of the file opened, taken now (see local.rs).
            (StoreKind::Local, GetResultPayload::File(file, _)) => {
                let m = file.metadata().map_err(|e| local_error(e, Op::Stat, key))?;
                let id = FileId::of(&m);
                (id.size(), Some(id.tag()))
            }
            _ => (meta.size, meta.e_tag.clone()),
        };
        let mut out = ObjectMeta {
            size,
            etag,
            last_modified: last_modified(meta),
            version_id: meta.version.clone(),
            checksums: Vec::new(),
            checksum_note: None,
        };
        if let Some(s3) = &self.s3_checksums {
            let published = s3
                .published(&Pinned {
                    key,
                    etag: out.etag.as_deref(),
                    version: out.version_id.as_deref(),
                    size: out.size,
                })
                .await?;
            out.checksums = published.checksums;
            out.checksum_note = published.note;
        }
        if let Some(azure) = &self.azure_md5 {
            out.checksums.extend(
                azure
                    .content_md5(key, out.etag.as_deref(), out.version_id.as_deref())
                    .await?,
            );
        }
        Ok(out)
    }

    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        if let Some(gcs) = &self.gcs {
            // The JSON API names objects by their whole name: no object_store path rules.
            return gcs.read(key, range, conditions).await;
        }
        let path = path_for(key)?;
        self.refuse_version(conditions.version_id.as_deref())?;
        if self.kind == StoreKind::Local {
            return self.read_local(key, &path, range, conditions).await;
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            if_match: conditions.if_match.clone(),
            version: conditions.version_id.clone(),
            ..GetOptions::default()
        };
        match self.store.get_opts(&path, options.clone()).await {
            Ok(result) => {
                // The version served must be the one asked for (a store that dropped it
                // would serve the current object).
                if let (Some(asked), Some(got)) = (&conditions.version_id, &result.meta.version)
                    && asked != got
                {
                    return Err(SourceError::new(
                        SourceErrorKind::Changed,
                        format!(
                            "version {asked:?} of {key:?} was asked for, the store served {got:?}"
                        ),
                    ));
                }
                Ok(into_read(result, key))
            }
            Err(e) if is_range_ignored(&e) => {
                // The server answered with the whole object (200, not 206) and object_store
                // refused it. Ask again without a range, under the same conditions, and report
                // what that response declares — the whole object — so the engine accepts it
                // only when the whole object is what it asked for, and otherwise stops with
                // its own "the source ignores Range" error. The body is not read unless used.
                let whole = GetOptions {
                    range: None,
                    ..options
                };
                let result = self
                    .store
                    .get_opts(&path, whole)
                    .await
                    .map_err(|e| self.map(&e, Op::Read, key))?;
                Ok(into_read(result, key))
            }
            Err(e) => Err(self.map(&e, Op::Read, key)),
        }
    }

    async fn read_described(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<DescribedRead, SourceError> {
        if let Some(s3) = &self.s3_checksums
            && self.gcs.is_none()
            && range.start == 0
            && path_for(key).is_ok()
            && let Some(described) = s3.read_whole(key, conditions).await?
        {
            return Ok(described);
        }
        if let Some(azure) = &self.azure_md5
            && range.start == 0
            && path_for(key).is_ok()
            && let Some(described) = azure.read_whole(key, conditions).await?
        {
            return Ok(described);
        }
        Ok(DescribedRead {
            read: self.read_range(key, range, conditions).await?,
            object: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_object_store_would_rewrite_are_refused() {
        for bad in ["", "/a", "a/", "a//b", "a/../b"] {
            assert!(path_for(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a/b c/ü+x.bin", "dir/file.tar.gz"] {
            assert_eq!(path_for(good).unwrap().as_ref(), good);
        }
    }
}
