//! [`ObjectStoreLister`]: the batch layer's [`Lister`] over any `object_store::ObjectStore`.
//!
//! # Pages and tokens
//!
//! A page is at most [`ObjectStoreLister::page_size`] objects (default 1 000) and its token is
//! the **last key it returned**: a listing resumes strictly after it, also in another process
//! (a job may store the token). Between two calls the lister keeps the listing that is under
//! way (one cursor: object_store's list stream, which holds at most one server page, or the
//! local walk below), so following the tokens of one listing sends each server page once. A
//! token that is not the live cursor's (another listing ran in between, a new process) starts
//! a new listing after that key: `list_with_offset` (S3 `start-after`, GCS `startOffset`,
//! Azure `startFrom`; the keys up to the token are also filtered out here, as a server may
//! ignore the offset, e.g. Azurite). That relies
//! on the store listing in key order, which every store here does except S3 Express directory
//! buckets; there only the live cursor is exact.
//!
//! # Prefixes
//!
//! The contract's prefix is a string prefix (`logs/2026-0` matches `logs/2026-01/x`);
//! object_store lists whole path segments. The lister lists the prefix's parent "directory"
//! (everything up to its last `/`) and keeps the keys that start with the prefix.
//!
//! # What the listing says
//!
//! Size, etag and last-modified as the store lists them (no request per object). An etag the
//! listing gives without quotes (Azure's `<Etag>`) is quoted, as the `ETag` header the same
//! store sends on `HEAD` is, so a job pins its reads to exactly what a stat would report.
//!
//! object_store parses listed keys as its `Path`: a key ending in `/` (a "folder marker") is
//! reported without the `/` by S3, GCS and Azure listings, and a key with an empty, `.` or
//! `..` segment fails the listing page (`Other`). Such keys cannot be read through
//! object_store either.
//!
//! # GCS
//!
//! A GCS source built by `from_url` lists through the JSON API (`objects.list`, `gcs.rs`), not
//! object_store's XML listing: its objects carry the same generation etag and the same
//! checksums (`crc32c`, `md5Hash`) as the source's stat, so a job reads each listed object
//! pinned to its generation and verified, without a stat. A page is one `objects.list` with
//! `maxResults` = the page size and `startOffset` = the token (filtered here too); keys are not
//! parsed as object_store paths, so folder markers (`dir/`) are listed as they are.
//!
//! # Local files
//!
//! A `file://` store is walked here, not by object_store, so that a token is a position that
//! survives a restart (object_store's walk is in directory order) and the etag is the same
//! file identity the source's `stat` pins (`local.rs`). The walk is depth-first in key order
//! (a directory's entries sorted, `name/` for directories): memory grows with the largest
//! directory on the current path, not with the number of files. What it lists:
//!
//! - regular files, and symbolic links to regular files (listed under the link's name with
//!   the target's size and identity, which is what a read of that key opens);
//! - not: directories as objects, symbolic links to directories (not followed: no loops, no
//!   escaping the tree), dangling links, FIFOs, sockets and devices (nothing to download; a
//!   FIFO would block a read);
//! - a file whose name cannot be a key (not UTF-8, a control character, a name ending in
//!   `#<digits>`, which object_store reserves for its own temporary files) fails the page
//!   with `Other`, naming the file: silently leaving it out would break "every key exactly
//!   once"; rename it or list a prefix without it;
//! - a directory that cannot be read is `Denied` (permissions) or `Other`; the prefix's own
//!   directory missing is an empty listing, as a prefix without keys is on a bucket.

use std::cmp::Ordering;
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use futures::stream::{BoxStream, Peekable};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use resume_core::{ListPage, ListedObject, Lister, ObjectMeta, SourceError, SourceErrorKind};

use crate::config::{BuildError, StoreOptions, open_url};
use crate::error::Op;
use crate::local::FileId;
use crate::source::ObjectStoreSource;

/// The default and the largest page: what S3, GCS and Azure return per request at most.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Lists a prefix of an [`ObjectStoreSource`]'s store, one page per call (see the module
/// docs for tokens, prefixes and local files). Built with [`ObjectStoreLister::new`] from a
/// source, or with [`lister_from_url`] from the same URL forms as [`from_url`](crate::from_url).
pub struct ObjectStoreLister {
    source: ObjectStoreSource,
    /// `Some` for a local store: the directory that key `""` names.
    local_root: Option<PathBuf>,
    page_size: usize,
    /// The listing under way: reused when the next call brings the token it handed out.
    cursor: Mutex<Option<Cursor>>,
}

type StoreStream =
    Pin<Box<Peekable<BoxStream<'static, object_store::Result<object_store::ObjectMeta>>>>>;

struct Cursor {
    prefix: String,
    token: String,
    walk: Walk,
}

enum Walk {
    Store(StoreStream),
    Local(LocalWalk),
}

impl fmt::Debug for ObjectStoreLister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreLister")
            .field("source", &self.source)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreLister {
    /// A lister over the store `source` reads, with the same identity.
    pub fn new(source: &ObjectStoreSource) -> Self {
        Self {
            local_root: source.local_root(),
            source: source.clone(),
            page_size: MAX_PAGE_SIZE,
            cursor: Mutex::new(None),
        }
    }

    /// At most `n` objects per page, clamped to `1..=`[`MAX_PAGE_SIZE`]. Smaller pages cost
    /// no extra requests on remote stores (a server page is consumed across calls).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// The largest number of objects one page holds.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    fn take_cursor(&self, prefix: &str, token: Option<&str>) -> Option<Walk> {
        let token = token?;
        let mut slot = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.take() {
            Some(c) if c.prefix == prefix && c.token == token => Some(c.walk),
            other => {
                *slot = other;
                None
            }
        }
    }

    fn keep_cursor(&self, prefix: &str, token: &str, walk: Walk) {
        *self.cursor.lock().unwrap_or_else(PoisonError::into_inner) = Some(Cursor {
            prefix: prefix.to_owned(),
            token: token.to_owned(),
            walk,
        });
    }

    async fn store_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage, SourceError> {
        let mut stream = match self.take_cursor(prefix, token) {
            Some(Walk::Store(s)) => s,
            _ => self.open_stream(prefix, token)?,
        };
        let mut objects = Vec::new();
        while objects.len() < self.page_size {
            match stream.next().await {
                None => {
                    return Ok(ListPage {
                        objects,
                        next: None,
                    });
                }
                Some(Err(e)) => return Err(self.source.map(&e, Op::List, prefix)),
                Some(Ok(meta)) => {
                    let key = meta.location.as_ref();
                    if key.starts_with(prefix) {
                        objects.push(listed(meta));
                    }
                }
            }
        }
        // A full page: the listing goes on if the stream has anything left.
        if stream.as_mut().peek().await.is_none() {
            return Ok(ListPage {
                objects,
                next: None,
            });
        }
        let last = objects.last().map(|o| o.key.clone()).unwrap_or_default();
        self.keep_cursor(prefix, &last, Walk::Store(stream));
        Ok(ListPage {
            objects,
            next: Some(last),
        })
    }

    /// object_store's listing of the prefix's parent path, after `token` if any.
    fn open_stream(&self, prefix: &str, token: Option<&str>) -> Result<StoreStream, SourceError> {
        let parent = match prefix.rfind('/') {
            Some(i) => Some(exact_path(&prefix[..i], "prefix", prefix)?),
            None => None,
        };
        let store = self.source.store();
        let stream = match token {
            None => store.list(parent.as_ref()),
            Some(t) => {
                let offset = exact_path(t, "continuation token", prefix)?;
                // Also filtered here: a server may ignore the offset (Azurite ignores Azure's
                // `startFrom` unless the store is configured as an emulator), and none of the
                // keys up to the token may come back.
                store
                    .list_with_offset(parent.as_ref(), &offset)
                    .try_filter(move |m| std::future::ready(m.location > offset))
                    .boxed()
            }
        };
        Ok(Box::pin(stream.peekable()))
    }

    async fn local_page(
        &self,
        root: PathBuf,
        prefix: &str,
        token: Option<&str>,
    ) -> Result<ListPage, SourceError> {
        let walk = match self.take_cursor(prefix, token) {
            Some(Walk::Local(w)) => w,
            _ => LocalWalk::start(root, prefix, token)?,
        };
        let page_size = self.page_size;
        let owned_prefix = prefix.to_owned();
        let (walk, page) = tokio::task::spawn_blocking(move || {
            let mut walk = walk;
            let page = walk.page(page_size, &owned_prefix);
            (walk, page)
        })
        .await
        .map_err(|e| {
            SourceError::new(
                SourceErrorKind::Other,
                format!("listing of the prefix {prefix:?} stopped: the local walk failed: {e}"),
            )
        })?;
        let page = page?;
        if let Some(next) = &page.next {
            self.keep_cursor(prefix, next, Walk::Local(walk));
        }
        Ok(page)
    }
}

/// `text` as an object_store path, only if it is exactly that path.
fn exact_path(text: &str, what: &str, prefix: &str) -> Result<Path, SourceError> {
    match Path::parse(text) {
        Ok(p) if p.as_ref() == text => Ok(p),
        _ => Err(SourceError::new(
            SourceErrorKind::Other,
            format!(
                "listing of the prefix {prefix:?} failed: the {what} {text:?} cannot be \
                 addressed through object_store exactly (leading or trailing '/', empty, '.' \
                 or '..' segments, or control characters); list a prefix without them"
            ),
        )),
    }
}

fn listed(meta: object_store::ObjectMeta) -> ListedObject {
    let last_modified = std::time::SystemTime::from(meta.last_modified);
    ListedObject {
        key: meta.location.as_ref().to_owned(),
        meta: ObjectMeta {
            size: meta.size,
            etag: meta.e_tag.map(|t| {
                if t.starts_with('"') || t.starts_with("W/\"") {
                    t
                } else {
                    format!("\"{t}\"")
                }
            }),
            // object_store's placeholder for "none" is the Unix epoch.
            last_modified: (last_modified != std::time::SystemTime::UNIX_EPOCH)
                .then_some(last_modified),
            version_id: meta.version,
            checksums: Vec::new(),
            checksum_note: None,
        },
    }
}

#[async_trait::async_trait]
impl Lister for ObjectStoreLister {
    fn identity(&self) -> String {
        resume_core::RangeSource::identity(&self.source)
    }

    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage, SourceError> {
        if let Some(gcs) = self.source.gcs() {
            // The JSON API's listing, with the generation etags and checksums its stat reports
            // (`gcs.rs`); the token is the last key, as for other stores.
            return gcs.list_page(prefix, token, self.page_size).await;
        }
        match &self.local_root {
            Some(root) => self.local_page(root.clone(), prefix, token).await,
            None => self.store_page(prefix, token).await,
        }
    }
}

/// A lister and the prefix a URL names: the same URL forms and options as
/// [`from_url`](crate::from_url), with the path read as a prefix (possibly empty, a trailing
/// `/` kept): `s3://bucket/logs/2026/` lists the keys starting with `logs/2026/`,
/// `file:///data/` the files under `/data` (keys `data/…`, the local store being rooted at
/// `/`). The source reads the listed keys. `http(s)://` URLs are refused: an HTTP server
/// cannot list (give the URLs one by one instead).
pub fn lister_from_url(
    url: &str,
    options: &StoreOptions,
) -> Result<(ObjectStoreSource, ObjectStoreLister, String), BuildError> {
    let (source, path, shown) = open_url(url, options)?;
    if source.is_http() {
        return Err(BuildError::new(format!(
            "{shown}: an HTTP server cannot list its files; name each URL (e.g. with a list \
             of URLs) instead of a prefix"
        )));
    }
    let mut prefix = path.as_ref().to_owned();
    let raw_path = url.split(['?', '#']).next().unwrap_or(url);
    if !prefix.is_empty() && raw_path.ends_with('/') {
        prefix.push('/');
    }
    let lister = ObjectStoreLister::new(&source);
    Ok((source, lister, prefix))
}

/// A depth-first walk of a local directory tree in key order, resumable after any key.
struct LocalWalk {
    root: PathBuf,
    /// The directories being walked, innermost last: each one's key prefix (`""` or ending
    /// in `/`) and its remaining entries, sorted.
    stack: Vec<(String, std::vec::IntoIter<Entry>)>,
    /// Keys at or before this one were returned already (a resumed walk).
    after: Option<String>,
}

struct Entry {
    name: String,
    is_dir: bool,
}

impl Entry {
    /// Where the entry's keys sort among its siblings: `name/…` for a directory.
    fn cmp_keys(&self, other: &Entry) -> Ordering {
        let a = self
            .name
            .as_bytes()
            .iter()
            .chain(self.is_dir.then_some(&b'/'));
        let b = other
            .name
            .as_bytes()
            .iter()
            .chain(other.is_dir.then_some(&b'/'));
        a.cmp(b)
    }
}

impl LocalWalk {
    fn start(root: PathBuf, prefix: &str, after: Option<&str>) -> Result<Self, SourceError> {
        let (dir_key, rest) = match prefix.rfind('/') {
            Some(i) => (&prefix[..=i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        if !dir_key.is_empty() {
            exact_path(&dir_key[..dir_key.len() - 1], "prefix", prefix)?;
        }
        if let Some(t) = after
            && !t.starts_with(prefix)
        {
            return Err(SourceError::new(
                SourceErrorKind::Other,
                format!(
                    "listing of the prefix {prefix:?} failed: the continuation token {t:?} is \
                     not a key under that prefix; start the listing again"
                ),
            ));
        }
        let mut walk = Self {
            root,
            stack: Vec::new(),
            after: after.map(str::to_owned),
        };
        if let Some(entries) = walk.read_dir(dir_key, prefix)? {
            let entries: Vec<Entry> = entries
                .into_iter()
                .filter(|e| e.name.starts_with(rest))
                .collect();
            walk.stack.push((dir_key.to_owned(), entries.into_iter()));
        }
        Ok(walk)
    }

    /// The sorted entries of the directory for `dir_key`; `None` if it does not exist.
    fn read_dir(&self, dir_key: &str, prefix: &str) -> Result<Option<Vec<Entry>>, SourceError> {
        let dir = self.root.join(dir_key);
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(dir_error(&dir, &e, prefix)),
        };
        let mut entries = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| dir_error(&dir, &e, prefix))?;
            let Ok(name) = entry.file_name().into_string() else {
                return Err(unnamable(&entry.path(), "its name is not UTF-8", prefix));
            };
            // The entry itself, not a link's target: links to directories are not followed.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            entries.push(Entry { name, is_dir });
        }
        entries.sort_by(Entry::cmp_keys);
        Ok(Some(entries))
    }

    fn page(&mut self, page_size: usize, prefix: &str) -> Result<ListPage, SourceError> {
        let mut objects = Vec::new();
        while objects.len() < page_size {
            let Some((dir_key, entries)) = self.stack.last_mut() else {
                return Ok(ListPage {
                    objects,
                    next: None,
                });
            };
            let Some(entry) = entries.next() else {
                self.stack.pop();
                continue;
            };
            let key = format!("{dir_key}{}", entry.name);
            if entry.is_dir {
                let sub = format!("{key}/");
                // Every key in it sorts before `after` (and none is `after` itself): skip it.
                if let Some(a) = &self.after
                    && a.as_str() > sub.as_str()
                    && !a.starts_with(&sub)
                {
                    continue;
                }
                if let Some(entries) = self.read_dir(&sub, prefix)? {
                    self.stack.push((sub, entries.into_iter()));
                }
                continue;
            }
            if self.after.as_deref().is_some_and(|a| key.as_str() <= a) {
                continue;
            }
            let path = self.root.join(&key);
            // Follows a symbolic link: a read of this key opens the target.
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                // Gone since the directory was read, or a dangling link: nothing to list.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(dir_error(&path, &e, prefix)),
            };
            if !meta.is_file() {
                continue;
            }
            if let Some(why) = not_a_key(&key) {
                return Err(unnamable(&path, why, prefix));
            }
            let id = FileId::of(&meta);
            objects.push(ListedObject {
                key,
                meta: ObjectMeta {
                    size: id.size(),
                    etag: Some(id.tag()),
                    last_modified: meta.modified().ok(),
                    version_id: None,
                    checksums: Vec::new(),
                    checksum_note: None,
                },
            });
        }
        let next = objects.last().map(|o| o.key.clone());
        if let Some(n) = &next {
            self.after = Some(n.clone());
        }
        Ok(ListPage { objects, next })
    }
}

/// Why a local file's key cannot be read through object_store, if it cannot.
fn not_a_key(key: &str) -> Option<&'static str> {
    if key.chars().any(|c| c.is_ascii_control()) {
        return Some("its name has a control character");
    }
    if Path::parse(key).map_or(true, |p| p.as_ref() != key) {
        return Some("object_store cannot address it exactly");
    }
    let name = key.rsplit('/').next().unwrap_or(key);
    if let Some((_, suffix)) = name.rsplit_once('#')
        && !suffix.is_empty()
        && suffix.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(
            "its name ends in '#' and digits, which object_store reserves for its temporary files",
        );
    }
    None
}

fn unnamable(path: &std::path::Path, why: &str, prefix: &str) -> SourceError {
    SourceError::new(
        SourceErrorKind::Other,
        format!(
            "listing of the prefix {prefix:?} stopped at {}: {why}, so it cannot be named as a \
             key; rename it, or list a prefix that does not contain it",
            path.display()
        ),
    )
}

fn dir_error(path: &std::path::Path, e: &std::io::Error, prefix: &str) -> SourceError {
    let kind = match e.kind() {
        std::io::ErrorKind::PermissionDenied => SourceErrorKind::Denied,
        _ => SourceErrorKind::Other,
    };
    SourceError::new(
        kind,
        format!(
            "listing of the prefix {prefix:?} failed at {}: {e}; check that it is readable",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_sort_as_their_keys_do() {
        let e = |name: &str, is_dir| Entry {
            name: name.into(),
            is_dir,
        };
        // "a-c" < "a/…" because '-' < '/'; "a0" > "a/…".
        let mut v = [e("a0", false), e("a", true), e("a-c", false)];
        v.sort_by(Entry::cmp_keys);
        let names: Vec<_> = v.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a-c", "a", "a0"]);
    }

    #[test]
    fn keys_object_store_cannot_address_are_named() {
        assert!(not_a_key("a/b c/ü+%.bin").is_none());
        assert!(not_a_key("a\nb").is_some());
        assert!(not_a_key("dir/upload#12").is_some());
        assert!(not_a_key("dir/issue#12a").is_none());
    }
}
