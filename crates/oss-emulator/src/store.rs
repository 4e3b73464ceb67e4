//! Buckets and object versions, in memory or in a directory.
//!
//! Directory layout (everything the emulator knows survives a restart):
//!
//! ```text
//! ROOT/<bucket>/bucket.json             versioning, ACL, creation time
//! ROOT/<bucket>/objects/<seq>.data      the bytes of one object version
//! ROOT/<bucket>/objects/<seq>.json      its metadata (key, version id, size, MD5, CRC-64, ...)
//! ROOT/<bucket>/tmp/                    uploads in progress (removed at start)
//! ```
//!
//! `<seq>` is a global, increasing 20-digit number, so object keys never become file names
//! (no escaping, no `..`). Data is hashed (MD5 for the ETag, CRC-64/XZ for
//! `x-oss-hash-crc64ecma`) while it is written, and read back in chunks: an object is never
//! held in memory in directory mode.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::EmulatorError;

/// Size of the chunks objects are read, hashed and served in.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Whether a bucket keeps older versions of its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Versioning {
    /// Never enabled: a PUT replaces the object; responses carry no version id.
    #[default]
    Disabled,
    /// Every PUT creates a new version with its own id; older ones stay readable by id.
    Enabled,
    /// Was enabled: new PUTs replace the `null` version, older versions stay.
    Suspended,
}

/// How a bucket is created through the library API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketOptions {
    pub versioning: Versioning,
    /// Anonymous GET/HEAD of its objects is allowed (ACL `public-read`).
    pub public_read: bool,
}

/// What the emulator stores about one object version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// Quoted upper-case hex MD5, as OSS sends it: `"5EB63BBBE01EEED093CB22BB8F5ACDC3"`.
    pub etag: String,
    /// CRC-64/XZ of the whole object (`x-oss-hash-crc64ecma`).
    pub crc64: u64,
    /// 1-second resolution.
    pub last_modified: SystemTime,
    /// `None` in a bucket whose versioning was never enabled.
    pub version_id: Option<String>,
    pub content_type: String,
    /// Whether this version is a delete marker (no data).
    pub delete_marker: bool,
}

/// Persisted metadata of one version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VersionMeta {
    pub seq: u64,
    pub key: String,
    pub version_id: Option<String>,
    pub size: u64,
    /// Upper-case hex MD5.
    pub md5_hex: String,
    pub crc64: u64,
    pub last_modified: u64,
    pub content_type: String,
    #[serde(default)]
    pub user_meta: Vec<(String, String)>,
    #[serde(default)]
    pub delete_marker: bool,
}

#[derive(Debug)]
pub(crate) enum Data {
    Memory(Bytes),
    File(PathBuf),
    None,
}

#[derive(Debug)]
pub(crate) struct Version {
    pub meta: VersionMeta,
    pub data: Data,
}

impl Version {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.meta.md5_hex)
    }

    pub fn last_modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.meta.last_modified)
    }

    pub fn md5_base64(&self) -> Option<String> {
        use base64::Engine as _;
        let bytes = hex_decode(&self.meta.md5_hex)?;
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn info(&self, bucket: &str) -> ObjectInfo {
        ObjectInfo {
            bucket: bucket.to_string(),
            key: self.meta.key.clone(),
            size: self.meta.size,
            etag: self.etag(),
            crc64: self.meta.crc64,
            last_modified: self.last_modified(),
            version_id: self.meta.version_id.clone(),
            content_type: self.meta.content_type.clone(),
            delete_marker: self.meta.delete_marker,
        }
    }

    /// Opens the data for reading (a file is opened now, so a later replacement of the
    /// version does not break a read in progress).
    pub fn open(&self) -> std::io::Result<OpenData> {
        Ok(match &self.data {
            Data::Memory(b) => OpenData::Memory(b.clone()),
            Data::File(p) => OpenData::File(fs::File::open(p)?),
            Data::None => OpenData::Memory(Bytes::new()),
        })
    }

    /// Reads the whole object (library API and fault injection only).
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        match self.open()? {
            OpenData::Memory(b) => Ok(b.to_vec()),
            OpenData::File(mut f) => {
                let mut v = Vec::with_capacity(self.meta.size as usize);
                f.read_to_end(&mut v)?;
                Ok(v)
            }
        }
    }
}

/// Object bytes ready to be served.
#[derive(Debug)]
pub(crate) enum OpenData {
    Memory(Bytes),
    File(fs::File),
}

#[derive(Debug, Serialize, Deserialize)]
struct BucketMeta {
    versioning: Versioning,
    public_read: bool,
    created: u64,
}

#[derive(Debug)]
pub(crate) struct Bucket {
    pub versioning: Versioning,
    pub public_read: bool,
    pub created: u64,
    /// Versions of each key, oldest first; the last one is the current version.
    objects: BTreeMap<String, Vec<Arc<Version>>>,
}

/// Where a version is looked up.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(Arc<Version>),
    NoSuchBucket,
    NoSuchKey,
    NoSuchVersion,
    /// The current version is a delete marker.
    DeleteMarker(Arc<Version>),
}

#[derive(Debug)]
struct Inner {
    buckets: BTreeMap<String, Bucket>,
    next_seq: u64,
}

/// The object store shared by the server and the library API.
#[derive(Debug)]
pub(crate) struct Store {
    root: Option<PathBuf>,
    inner: Mutex<Inner>,
}

/// MD5, CRC-64 and length of data, computed as it passes.
#[derive(Clone)]
pub(crate) struct Hasher {
    md5: Md5,
    crc: u64,
    size: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self {
            md5: Md5::new(),
            crc: 0,
            size: 0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.md5.update(data);
        self.crc =
            resume_core::crc64_combine(self.crc, resume_core::crc64(data), data.len() as u64);
        self.size += data.len() as u64;
    }

    /// `(upper-case hex MD5, raw MD5, CRC-64, size)`.
    pub fn finish(self) -> Hashes {
        let md5: [u8; 16] = self.md5.finalize().into();
        Hashes {
            md5_hex: hex_upper(&md5),
            md5,
            crc64: self.crc,
            size: self.size,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Hashes {
    pub md5_hex: String,
    pub md5: [u8; 16],
    pub crc64: u64,
    pub size: u64,
}

/// An upload in progress: the bytes go to a temp file (directory mode) or a buffer.
#[derive(Debug)]
pub(crate) struct Upload {
    pub seq: u64,
    pub sink: UploadSink,
}

#[derive(Debug)]
pub(crate) enum UploadSink {
    Memory(BytesMut),
    File { tmp: PathBuf },
}

/// Attributes of a new version besides its bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewObject {
    pub content_type: Option<String>,
    pub user_meta: Vec<(String, String)>,
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `name` is a valid OSS bucket name: 3–63 of `a-z0-9-`, not starting or ending with `-`.
pub fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `key` is a valid object key: 1–1023 bytes of UTF-8, not starting with `/` or `\`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 1023 && !key.starts_with('/') && !key.starts_with('\\')
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> EmulatorError {
    EmulatorError::Storage {
        path: path.to_path_buf(),
        what: what.to_string(),
        source: e,
    }
}

impl Store {
    pub fn memory() -> Self {
        Self {
            root: None,
            inner: Mutex::new(Inner {
                buckets: BTreeMap::new(),
                next_seq: 1,
            }),
        }
    }

    /// A store in `root`, loading the buckets and objects already there.
    pub fn directory(root: &Path) -> Result<Self, EmulatorError> {
        fs::create_dir_all(root).map_err(|e| io_err(root, "create the storage directory", e))?;
        let mut buckets = BTreeMap::new();
        let mut max_seq = 0u64;
        let entries =
            fs::read_dir(root).map_err(|e| io_err(root, "list the storage directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(root, "list the storage directory", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            let meta_path = dir.join("bucket.json");
            if !valid_bucket_name(&name) || !meta_path.is_file() {
                continue;
            }
            let text = fs::read_to_string(&meta_path)
                .map_err(|e| io_err(&meta_path, "read bucket metadata", e))?;
            let meta: BucketMeta =
                serde_json::from_str(&text).map_err(|e| EmulatorError::CorruptMetadata {
                    path: meta_path.clone(),
                    message: e.to_string(),
                })?;
            let tmp = dir.join("tmp");
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, "create the upload directory", e))?;
            let objects_dir = dir.join("objects");
            fs::create_dir_all(&objects_dir)
                .map_err(|e| io_err(&objects_dir, "create the objects directory", e))?;
            let mut versions: Vec<Version> = Vec::new();
            for f in
                fs::read_dir(&objects_dir).map_err(|e| io_err(&objects_dir, "list objects", e))?
            {
                let f = f.map_err(|e| io_err(&objects_dir, "list objects", e))?;
                let path = f.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let text = fs::read_to_string(&path)
                    .map_err(|e| io_err(&path, "read object metadata", e))?;
                let vm: VersionMeta =
                    serde_json::from_str(&text).map_err(|e| EmulatorError::CorruptMetadata {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                let data_path = path.with_extension("data");
                let data = if vm.delete_marker {
                    Data::None
                } else if data_path.is_file() {
                    Data::File(data_path)
                } else {
                    // Metadata without data: an interrupted write. Drop it.
                    let _ = fs::remove_file(&path);
                    continue;
                };
                max_seq = max_seq.max(vm.seq);
                versions.push(Version { meta: vm, data });
            }
            versions.sort_by_key(|v| v.meta.seq);
            let mut objects: BTreeMap<String, Vec<Arc<Version>>> = BTreeMap::new();
            for v in versions {
                objects
                    .entry(v.meta.key.clone())
                    .or_default()
                    .push(Arc::new(v));
            }
            buckets.insert(
                name,
                Bucket {
                    versioning: meta.versioning,
                    public_read: meta.public_read,
                    created: meta.created,
                    objects,
                },
            );
        }
        Ok(Self {
            root: Some(root.to_path_buf()),
            inner: Mutex::new(Inner {
                buckets,
                next_seq: max_seq + 1,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bucket_dir(&self, bucket: &str) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join(bucket))
    }

    fn save_bucket_meta(&self, name: &str, b: &Bucket) -> Result<(), EmulatorError> {
        let Some(dir) = self.bucket_dir(name) else {
            return Ok(());
        };
        for sub in ["objects", "tmp"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(|e| io_err(&d, "create a bucket directory", e))?;
        }
        let meta = BucketMeta {
            versioning: b.versioning,
            public_read: b.public_read,
            created: b.created,
        };
        let json = serde_json::to_vec_pretty(&meta).expect("bucket metadata serializes");
        write_atomic(&dir.join("bucket.json"), &json)
    }

    /// Creates a bucket; `Ok(false)` if it exists already.
    pub fn create_bucket(&self, name: &str, opts: BucketOptions) -> Result<bool, EmulatorError> {
        if !valid_bucket_name(name) {
            return Err(EmulatorError::InvalidBucketName(name.to_string()));
        }
        let mut inner = self.lock();
        if inner.buckets.contains_key(name) {
            return Ok(false);
        }
        let b = Bucket {
            versioning: opts.versioning,
            public_read: opts.public_read,
            created: unix_now(),
            objects: BTreeMap::new(),
        };
        self.save_bucket_meta(name, &b)?;
        inner.buckets.insert(name.to_string(), b);
        Ok(true)
    }

    pub fn bucket_names(&self) -> Vec<String> {
        self.lock().buckets.keys().cloned().collect()
    }

    pub fn bucket_exists(&self, name: &str) -> bool {
        self.lock().buckets.contains_key(name)
    }

    /// `(versioning, public_read, created)` of a bucket.
    pub fn bucket_info(&self, name: &str) -> Option<(Versioning, bool, u64)> {
        self.lock()
            .buckets
            .get(name)
            .map(|b| (b.versioning, b.public_read, b.created))
    }

    pub fn set_versioning(&self, name: &str, v: Versioning) -> Result<(), EmulatorError> {
        let mut inner = self.lock();
        let b = inner
            .buckets
            .get_mut(name)
            .ok_or_else(|| EmulatorError::NoSuchBucket(name.to_string()))?;
        // Once enabled, versioning can only be suspended, as on OSS.
        b.versioning = match (b.versioning, v) {
            (Versioning::Enabled | Versioning::Suspended, Versioning::Disabled) => {
                Versioning::Suspended
            }
            (_, v) => v,
        };
        self.save_bucket_meta(name, b)
    }

    pub fn set_public_read(&self, name: &str, public: bool) -> Result<(), EmulatorError> {
        let mut inner = self.lock();
        let b = inner
            .buckets
            .get_mut(name)
            .ok_or_else(|| EmulatorError::NoSuchBucket(name.to_string()))?;
        b.public_read = public;
        self.save_bucket_meta(name, b)
    }

    /// Finds a version: the current one, or the one named `version_id`.
    pub fn lookup(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Lookup {
        let inner = self.lock();
        let Some(b) = inner.buckets.get(bucket) else {
            return Lookup::NoSuchBucket;
        };
        let Some(versions) = b.objects.get(key) else {
            return if version_id.is_some() && b.versioning != Versioning::Disabled {
                Lookup::NoSuchVersion
            } else {
                Lookup::NoSuchKey
            };
        };
        match version_id {
            None => match versions.last() {
                Some(v) if v.meta.delete_marker => Lookup::DeleteMarker(v.clone()),
                Some(v) => Lookup::Found(v.clone()),
                None => Lookup::NoSuchKey,
            },
            Some(id) => {
                let found = versions.iter().find(|v| match &v.meta.version_id {
                    Some(vid) => vid == id,
                    None => id == "null",
                });
                match found {
                    Some(v) => Lookup::Found(v.clone()),
                    None => Lookup::NoSuchVersion,
                }
            }
        }
    }

    /// All versions of `key`, oldest first.
    pub fn versions(&self, bucket: &str, key: &str) -> Vec<Arc<Version>> {
        self.lock()
            .buckets
            .get(bucket)
            .and_then(|b| b.objects.get(key))
            .cloned()
            .unwrap_or_default()
    }

    /// Hands `take` the current (not deleted) version of each key starting with `prefix` and
    /// sorting after `after`, in key order, until `take` has accepted `limit` of them (it
    /// returns whether it counted one: keys rolled up into a common prefix are not). `None`:
    /// no such bucket. Holds the lock for one page; never copies the bucket's keys.
    pub fn list_after(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        mut take: impl FnMut(&str, &Arc<Version>) -> bool,
    ) -> Option<()> {
        use std::ops::Bound;
        let inner = self.lock();
        let b = inner.buckets.get(bucket)?;
        let start = if after.as_bytes() >= prefix.as_bytes() {
            Bound::Excluded(after)
        } else {
            Bound::Included(prefix)
        };
        let mut taken = 0;
        for (k, versions) in b.objects.range::<str, _>((start, Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            let Some(v) = versions.last().filter(|v| !v.meta.delete_marker) else {
                continue;
            };
            if taken >= limit {
                break;
            }
            if take(k, v) {
                taken += 1;
            }
        }
        Some(())
    }

    /// Starts an upload into `bucket` (which must exist).
    pub fn begin_upload(&self, bucket: &str) -> Result<Upload, EmulatorError> {
        let mut inner = self.lock();
        if !inner.buckets.contains_key(bucket) {
            return Err(EmulatorError::NoSuchBucket(bucket.to_string()));
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        drop(inner);
        let sink = match self.bucket_dir(bucket) {
            None => UploadSink::Memory(BytesMut::new()),
            Some(dir) => UploadSink::File {
                tmp: dir.join("tmp").join(format!("{seq:020}.part")),
            },
        };
        Ok(Upload { seq, sink })
    }

    /// Abandons an upload (removes its temp file).
    pub fn abort_upload(&self, upload: Upload) {
        if let UploadSink::File { tmp } = upload.sink {
            let _ = fs::remove_file(tmp);
        }
    }

    /// Makes an upload the current version of `key` and returns it.
    pub fn commit_upload(
        &self,
        bucket: &str,
        key: &str,
        upload: Upload,
        hashes: Hashes,
        attrs: NewObject,
    ) -> Result<Arc<Version>, EmulatorError> {
        let seq = upload.seq;
        let mut inner = self.lock();
        let Some(b) = inner.buckets.get_mut(bucket) else {
            drop(inner);
            self.abort_upload(upload);
            return Err(EmulatorError::NoSuchBucket(bucket.to_string()));
        };
        let version_id = match b.versioning {
            Versioning::Disabled => None,
            Versioning::Enabled => Some(version_id_for(seq)),
            Versioning::Suspended => Some("null".to_string()),
        };
        let meta = VersionMeta {
            seq,
            key: key.to_string(),
            version_id,
            size: hashes.size,
            md5_hex: hashes.md5_hex,
            crc64: hashes.crc64,
            last_modified: unix_now(),
            content_type: attrs
                .content_type
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "application/octet-stream".to_string()),
            user_meta: attrs.user_meta,
            delete_marker: false,
        };
        let data = match upload.sink {
            UploadSink::Memory(buf) => Data::Memory(buf.freeze()),
            UploadSink::File { tmp } => {
                let dir = self
                    .bucket_dir(bucket)
                    .expect("directory store")
                    .join("objects");
                let data_path = dir.join(format!("{seq:020}.data"));
                fs::rename(&tmp, &data_path)
                    .map_err(|e| io_err(&data_path, "move an uploaded object into place", e))?;
                let json = serde_json::to_vec_pretty(&meta).expect("object metadata serializes");
                write_atomic(&dir.join(format!("{seq:020}.json")), &json)?;
                Data::File(data_path)
            }
        };
        let version = Arc::new(Version { meta, data });
        let versioning = b.versioning;
        let list = b.objects.entry(key.to_string()).or_default();
        let removed: Vec<Arc<Version>> = match versioning {
            Versioning::Disabled => std::mem::take(list),
            Versioning::Enabled => Vec::new(),
            Versioning::Suspended => {
                let (null, keep): (Vec<_>, Vec<_>) = std::mem::take(list)
                    .into_iter()
                    .partition(|v| v.meta.version_id.as_deref() == Some("null"));
                *list = keep;
                null
            }
        };
        list.push(version.clone());
        drop(inner);
        for v in removed {
            self.remove_files(bucket, &v);
        }
        Ok(version)
    }

    fn remove_files(&self, bucket: &str, v: &Version) {
        if let Some(dir) = self.bucket_dir(bucket) {
            let base = dir.join("objects").join(format!("{:020}", v.meta.seq));
            let _ = fs::remove_file(base.with_extension("json"));
            let _ = fs::remove_file(base.with_extension("data"));
        }
    }

    /// Deletes `key` (or one version of it). In a versioned bucket, deleting without a
    /// version id adds a delete marker. Returns the version id the response names, and
    /// whether it is a delete marker.
    pub fn delete(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Option<String>, bool), EmulatorError> {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        let b = inner
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| EmulatorError::NoSuchBucket(bucket.to_string()))?;
        let versioning = b.versioning;
        let mut removed = Vec::new();
        let mut result = (None, false);
        match (version_id, versioning) {
            (Some(id), _) => {
                if let Some(list) = b.objects.get_mut(key) {
                    let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(list)
                        .into_iter()
                        .partition(|v| v.meta.version_id.as_deref().unwrap_or("null") == id);
                    *list = keep;
                    if let Some(v) = gone.first() {
                        result = (Some(id.to_string()), v.meta.delete_marker);
                    }
                    removed = gone;
                    if list.is_empty() {
                        b.objects.remove(key);
                    }
                }
            }
            (None, Versioning::Disabled) => {
                removed = b.objects.remove(key).unwrap_or_default();
            }
            (None, Versioning::Enabled | Versioning::Suspended) => {
                let id = if versioning == Versioning::Enabled {
                    version_id_for(seq)
                } else {
                    "null".to_string()
                };
                let meta = VersionMeta {
                    seq,
                    key: key.to_string(),
                    version_id: Some(id.clone()),
                    size: 0,
                    md5_hex: String::new(),
                    crc64: 0,
                    last_modified: unix_now(),
                    content_type: String::new(),
                    user_meta: Vec::new(),
                    delete_marker: true,
                };
                if let Some(dir) = self.bucket_dir(bucket) {
                    let json = serde_json::to_vec_pretty(&meta).expect("metadata serializes");
                    write_atomic(&dir.join("objects").join(format!("{seq:020}.json")), &json)?;
                }
                let list = b.objects.entry(key.to_string()).or_default();
                if versioning == Versioning::Suspended {
                    let (null, keep): (Vec<_>, Vec<_>) = std::mem::take(list)
                        .into_iter()
                        .partition(|v| v.meta.version_id.as_deref() == Some("null"));
                    *list = keep;
                    removed = null;
                }
                list.push(Arc::new(Version {
                    meta,
                    data: Data::None,
                }));
                inner.next_seq += 1;
                result = (Some(id), true);
            }
        }
        drop(inner);
        for v in removed {
            self.remove_files(bucket, &v);
        }
        Ok(result)
    }

    /// Stores `reader`'s bytes as a new version of `key` (library API; blocking I/O).
    pub fn put_reader(
        &self,
        bucket: &str,
        key: &str,
        mut reader: impl Read,
        attrs: NewObject,
    ) -> Result<Arc<Version>, EmulatorError> {
        if !valid_key(key) {
            return Err(EmulatorError::InvalidKey(key.to_string()));
        }
        let mut upload = self.begin_upload(bucket)?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let result: Result<(), EmulatorError> = (|| {
            match &mut upload.sink {
                UploadSink::Memory(out) => loop {
                    let n = reader.read(&mut buf).map_err(EmulatorError::Read)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    out.extend_from_slice(&buf[..n]);
                },
                UploadSink::File { tmp } => {
                    let mut f = fs::File::create(&*tmp)
                        .map_err(|e| io_err(tmp, "create an upload file", e))?;
                    loop {
                        let n = reader.read(&mut buf).map_err(EmulatorError::Read)?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buf[..n]);
                        f.write_all(&buf[..n])
                            .map_err(|e| io_err(tmp, "write an upload file", e))?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.abort_upload(upload);
            return Err(e);
        }
        self.commit_upload(bucket, key, upload, hasher.finish(), attrs)
    }

    /// Replaces the current version of `key` with different bytes (fault injection): every
    /// byte is XOR-ed with a non-zero byte of a keystream seeded by `seed`, and the size is
    /// changed to `new_size` if given (extra bytes come from the keystream). The new version
    /// has a new ETag and CRC-64.
    pub fn mutate(
        &self,
        bucket: &str,
        key: &str,
        seed: u64,
        new_size: Option<u64>,
    ) -> Result<Arc<Version>, EmulatorError> {
        let current = match self.lookup(bucket, key, None) {
            Lookup::Found(v) => v,
            _ => return Err(EmulatorError::NoSuchKey(key.to_string())),
        };
        let old_size = current.meta.size;
        let size = new_size.unwrap_or(if old_size == 0 { 16 } else { old_size });
        let mut rng = crate::fault::SplitMix64::new(seed);
        let source = current
            .open()
            .map_err(|e| io_err(Path::new(key), "open an object to change it", e))?;
        let reader = MutatingReader {
            source: match source {
                OpenData::Memory(b) => Box::new(std::io::Cursor::new(b)) as Box<dyn Read + Send>,
                OpenData::File(f) => Box::new(f),
            },
            rng: &mut rng,
            remaining: size,
        };
        let attrs = NewObject {
            content_type: Some(current.meta.content_type.clone()),
            user_meta: current.meta.user_meta.clone(),
        };
        self.put_reader(bucket, key, reader, attrs)
    }

    /// Reads a whole version (library API).
    pub fn read_all(&self, v: &Version) -> Result<Vec<u8>, EmulatorError> {
        v.read_all()
            .map_err(|e| io_err(Path::new(&v.meta.key), "read an object", e))
    }
}

struct MutatingReader<'a> {
    source: Box<dyn Read + Send>,
    rng: &'a mut crate::fault::SplitMix64,
    remaining: u64,
}

impl Read for MutatingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let buf = &mut buf[..want];
        let mut n = 0;
        while n < want {
            let r = self.source.read(&mut buf[n..])?;
            if r == 0 {
                break;
            }
            n += r;
        }
        for b in &mut buf[n..] {
            *b = 0;
        }
        for b in buf.iter_mut() {
            let k = (self.rng.next_u64() as u8) | 1;
            *b ^= k;
        }
        self.remaining -= want as u64;
        Ok(want)
    }
}

/// OSS-looking version ids, unique per store and increasing.
fn version_id_for(seq: u64) -> String {
    format!("CAEQ{seq:016}")
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EmulatorError> {
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| io_err(&tmp, "create a metadata file", e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err(&tmp, "write a metadata file", e))?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, "move a metadata file into place", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hasher_matches_one_shot_crc_and_md5() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = Hasher::new();
        for chunk in data.chunks(4097) {
            h.update(chunk);
        }
        let out = h.finish();
        assert_eq!(out.crc64, resume_core::crc64(&data));
        assert_eq!(out.size, data.len() as u64);
        let md5: [u8; 16] = Md5::digest(&data).into();
        assert_eq!(out.md5_hex, hex_upper(&md5));
        assert_eq!(out.md5, md5);
    }

    #[test]
    fn bucket_names_follow_oss_rules() {
        assert!(valid_bucket_name("my-bucket-1"));
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name("-abc"));
        assert!(!valid_bucket_name("Abc"));
        assert!(!valid_bucket_name("a_bc"));
    }

    #[test]
    fn directory_store_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::directory(dir.path()).unwrap();
            s.create_bucket(
                "bkt",
                BucketOptions {
                    versioning: Versioning::Enabled,
                    public_read: true,
                },
            )
            .unwrap();
            s.put_reader("bkt", "a/b", &b"one"[..], NewObject::default())
                .unwrap();
            s.put_reader("bkt", "a/b", &b"two"[..], NewObject::default())
                .unwrap();
        }
        let s = Store::directory(dir.path()).unwrap();
        assert_eq!(s.bucket_info("bkt").unwrap().0, Versioning::Enabled);
        let vs = s.versions("bkt", "a/b");
        assert_eq!(vs.len(), 2);
        assert_eq!(s.read_all(&vs[0]).unwrap(), b"one");
        assert_eq!(s.read_all(&vs[1]).unwrap(), b"two");
        let next = s
            .put_reader("bkt", "c", &b"x"[..], NewObject::default())
            .unwrap();
        assert!(next.meta.seq > vs[1].meta.seq);
    }

    #[test]
    fn mutate_changes_every_byte_and_the_etag() {
        let s = Store::memory();
        s.create_bucket("bkt", BucketOptions::default()).unwrap();
        let old = s
            .put_reader("bkt", "k", &[7u8; 1000][..], NewObject::default())
            .unwrap();
        let new = s.mutate("bkt", "k", 42, None).unwrap();
        assert_ne!(old.etag(), new.etag());
        let a = s.read_all(&old).unwrap();
        let b = s.read_all(&new).unwrap();
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    }
}
