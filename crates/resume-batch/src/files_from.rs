//! `--files-from FILE`: the objects of a job named by a list instead of a listing.
//!
//! One entry per line; blank lines and lines starting with `#` are ignored; surrounding
//! whitespace is trimmed. An entry is either a key relative to a source prefix
//! ([`EntryMode::Keys`]: key = prefix + entry, local path as for `-r`), or a full URL of any
//! scheme ([`EntryMode::Urls`]). [`FilesFrom`] is a [`Lister`] over the file: pages of up to
//! [`PAGE`] entries, the token being the byte offset of the next line, so a killed job's rerun
//! continues where its journal's last settled page ended (the job's identity includes a hash
//! of the file's content: an edited list is another job). A list gives no size or etag: the
//! job stats each entry ([`Job::stat_each`](crate::Job::stat_each)) unless its journal
//! already records it done.
//!
//! **URLs.** A URL may carry a signature or password, which must appear in no journal,
//! event, failures file or log: the key the job sees is the URL redacted
//! ([`resume_core::redact::redact_url`]) with `#<line number>` appended (so two entries never
//! share a key), and the full URL is kept in memory only, in the [`UrlBook`] the caller's
//! [`RangeSource`](resume_core::RangeSource) reads it from. The local path of a URL entry is
//! `HOST[:PORT]/PATH` (for object stores `BUCKET/KEY`; `file:///a/b` gives `a/b`): what
//! follows `://`, without query, fragment and leading `/`, mapped segment by segment as
//! `-r` maps keys (`..`, empty segments, … refused with a reason). Two entries with the same
//! path (`http://h/a` and `https://h/a`, or queries that differ): the first in the file is
//! downloaded, the others are reported as clashes, never written over it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use resume_core::{ListPage, ListedObject, Lister, ObjectMeta, SourceError, SourceErrorKind};

/// Entries per page.
pub const PAGE: usize = 1000;

/// What the entries of the list are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryMode {
    /// Keys relative to this prefix (`prefix + entry` is the key).
    Keys { prefix: String },
    /// Full URLs, any scheme.
    Urls,
}

/// The full URLs behind the redacted keys of a [`EntryMode::Urls`] job, shared between
/// [`FilesFrom`] (which fills it as it reads the list) and the source that reads them.
#[derive(Debug, Clone, Default)]
pub struct UrlBook(Arc<Mutex<HashMap<String, String>>>);

impl UrlBook {
    /// The full URL behind `key`, if the list named it.
    pub fn url(&self, key: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn insert(&self, key: String, url: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, url);
    }
}

/// The local name of a URL entry's key: what follows `://`, up to a query or fragment,
/// without leading `/`.
pub fn url_name(key: &str) -> &str {
    let rest = key.split_once("://").map_or(key, |(_, r)| r);
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    rest[..end].trim_start_matches('/')
}

/// A [`Lister`] over a list file.
#[derive(Debug, Clone)]
pub struct FilesFrom {
    path: PathBuf,
    mode: EntryMode,
    /// The source's identity (a job checks that lister and source name one store).
    identity: String,
    /// The list's path and content hash: give it to [`Job::identity_note`](crate::Job::identity_note).
    note: String,
    book: UrlBook,
}

impl FilesFrom {
    /// A lister over the list at `path` for the source whose identity is `identity`; reads
    /// the list once to fingerprint it (see [`FilesFrom::note`]).
    pub fn new(path: &Path, mode: EntryMode, identity: &str) -> std::io::Result<Self> {
        let mut h = blake3::Hasher::new();
        let mut f = std::fs::File::open(path)?;
        std::io::copy(&mut f, &mut h)?;
        Ok(Self {
            path: path.to_owned(),
            identity: identity.to_owned(),
            note: format!(
                " files-from={} ({})",
                path.display(),
                &h.finalize().to_hex()[..32]
            ),
            mode,
            book: UrlBook::default(),
        })
    }

    /// The full URLs behind the keys (filled as pages are read).
    pub fn url_book(&self) -> UrlBook {
        self.book.clone()
    }

    /// What names this list in a job's identity: its path and a hash of its content, so an
    /// edited list is another job.
    pub fn note(&self) -> &str {
        &self.note
    }

    pub fn mode(&self) -> &EntryMode {
        &self.mode
    }
}

fn unknown_meta() -> ObjectMeta {
    ObjectMeta {
        size: 0,
        etag: None,
        last_modified: None,
        version_id: None,
        checksums: Vec::new(),
        checksum_note: None,
    }
}

#[async_trait::async_trait]
impl Lister for FilesFrom {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    /// `prefix` is ignored (the list names the objects); the token is `offset:line`.
    async fn list_page(&self, _prefix: &str, token: Option<&str>) -> Result<ListPage, SourceError> {
        let (offset, line) = match token {
            None => (0u64, 0u64),
            Some(t) => t
                .split_once(':')
                .and_then(|(o, l)| Some((o.parse().ok()?, l.parse().ok()?)))
                .ok_or_else(|| SourceError::new(SourceErrorKind::Other, "bad list token"))?,
        };
        let io = |e: std::io::Error| {
            SourceError::new(
                SourceErrorKind::Other,
                format!(
                    "cannot read the list {}: {e}; check the file and run again",
                    self.path.display()
                ),
            )
        };
        let mut f = std::fs::File::open(&self.path).map_err(io)?;
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut r = BufReader::new(f);
        let (mut offset, mut line) = (offset, line);
        let mut objects = Vec::new();
        let mut buf = String::new();
        loop {
            if objects.len() == PAGE {
                return Ok(ListPage {
                    objects,
                    next: Some(format!("{offset}:{line}")),
                });
            }
            buf.clear();
            let n = r.read_line(&mut buf).map_err(io)?;
            if n == 0 {
                return Ok(ListPage {
                    objects,
                    next: None,
                });
            }
            offset += n as u64;
            line += 1;
            let entry = buf.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let key = match &self.mode {
                EntryMode::Keys { prefix } => format!("{prefix}{entry}"),
                EntryMode::Urls => {
                    let key = format!("{}#{line}", resume_core::redact::redact_url(entry));
                    self.book.insert(key.clone(), entry.to_owned());
                    key
                }
            };
            objects.push(ListedObject {
                key,
                meta: unknown_meta(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_comments_blank_lines_and_pages_with_a_token_that_survives() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("list.txt");
        let mut text = String::from("# a comment\n\n  a/b.txt  \n");
        for i in 0..1500 {
            text.push_str(&format!("k{i}\n"));
        }
        std::fs::write(&p, &text).unwrap();
        let l = FilesFrom::new(
            &p,
            EntryMode::Keys {
                prefix: "p/".into(),
            },
            "src",
        )
        .unwrap();
        let first = l.list_page("", None).await.unwrap();
        assert_eq!(first.objects.len(), PAGE);
        assert_eq!(first.objects[0].key, "p/a/b.txt");
        // A new lister (a new process) continues from the token.
        let l2 = FilesFrom::new(
            &p,
            EntryMode::Keys {
                prefix: "p/".into(),
            },
            "src",
        )
        .unwrap();
        let second = l2.list_page("", first.next.as_deref()).await.unwrap();
        assert_eq!(second.objects.len(), 501);
        assert_eq!(second.objects[0].key, "p/k999");
        assert!(second.next.is_none());
        assert_eq!(l.note(), l2.note());
        std::fs::write(&p, "other\n").unwrap();
        let l3 = FilesFrom::new(
            &p,
            EntryMode::Keys {
                prefix: "p/".into(),
            },
            "src",
        )
        .unwrap();
        assert_ne!(l.note(), l3.note(), "an edited list is another job");
    }

    #[tokio::test]
    async fn url_keys_are_redacted_and_the_full_url_stays_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("urls.txt");
        let signed = "https://h.example:8443/d/x.bin?X-Amz-Signature=s3cr3t&X-Amz-Credential=AK";
        std::fs::write(&p, format!("{signed}\noss://b/k/y.bin\n")).unwrap();
        let l = FilesFrom::new(&p, EntryMode::Urls, "files").unwrap();
        let page = l.list_page("", None).await.unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert!(!keys[0].contains("s3cr3t"), "{keys:?}");
        assert!(
            keys[0].ends_with("#1") && keys[1] == "oss://b/k/y.bin#2",
            "{keys:?}"
        );
        assert_eq!(l.url_book().url(keys[0]).as_deref(), Some(signed));
        assert_eq!(url_name(keys[0]), "h.example:8443/d/x.bin");
        assert_eq!(url_name(keys[1]), "b/k/y.bin");
        assert_eq!(url_name("file:///tmp/a#3"), "tmp/a");
    }
}
