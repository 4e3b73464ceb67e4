//! The listing contract a backend implements to take part in batch jobs: [`Lister`].
//!
//! Like [`RangeSource`](crate::RangeSource), a lister only translates: one page of a prefix's
//! objects per call, with what the listing says about each (size, etag, checksums), and its
//! failures mapped onto [`SourceErrorKind`](crate::SourceErrorKind). Paging, bounded buffering
//! and everything a job does with the keys live above it ([`ListerExt`], the batch layer).

use std::fmt;

use futures::stream::{self, BoxStream, StreamExt};

use crate::source::{ObjectMeta, SourceError};

/// One object as a listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// The full key, exactly as the store spells it (already URL-decoded; may contain any
    /// character the store allows, including `../`, `\` and keys ending in `/`).
    pub key: String,
    /// What the listing said about the object: `size`, `etag` and `last_modified` when the
    /// store lists them, `checksums` only when the listing carries them. A job downloads a
    /// listed object without a separate stat, pinned to this etag.
    pub meta: ObjectMeta,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    /// Where the next page starts: pass it back to [`Lister::list_page`]. `None`: this was the
    /// last page. Opaque to callers (an OSS/S3 continuation token, a start-after key…); a job
    /// may store it to resume a listing that was interrupted.
    pub next: Option<String>,
}

/// Lists the objects under a prefix, one page at a time. Implemented once per backend.
///
/// Contract (checked by the lister conformance suite):
/// - every object whose key starts with `prefix` is returned exactly once across the pages of
///   one listing, with no key outside the prefix; keys need not be sorted;
/// - a page may be empty while `next` is `Some` (stores do that); callers keep going;
/// - no "directory" aggregation: the listing is recursive (no delimiter);
/// - errors carry a kind, status, code and request id like [`RangeSource`](crate::RangeSource)
///   errors, and never credentials.
#[async_trait::async_trait]
pub trait Lister: Send + Sync + fmt::Debug {
    /// The same identity the backend's [`RangeSource`](crate::RangeSource) reports, so a job's
    /// journal taken against one store is never applied to another.
    fn identity(&self) -> String;

    /// One page of the objects under `prefix`, starting at `token` (`None`: the first page).
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage, SourceError>;
}

#[async_trait::async_trait]
impl<T: Lister + ?Sized> Lister for std::sync::Arc<T> {
    fn identity(&self) -> String {
        (**self).identity()
    }
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage, SourceError> {
        (**self).list_page(prefix, token).await
    }
}

/// Conveniences over any [`Lister`].
pub trait ListerExt: Lister {
    /// Every object under `prefix` as a stream, fetching one page at a time: at most one page
    /// is held, whatever the number of keys. The stream ends after the first error.
    fn list_all<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<ListedObject, SourceError>>
    where
        Self: Sized,
    {
        enum State {
            Next(Option<String>),
            Done,
        }
        stream::unfold(State::Next(None), move |state| async move {
            let State::Next(token) = state else {
                return None;
            };
            match self.list_page(prefix, token.as_deref()).await {
                Ok(page) => {
                    let next = match page.next {
                        Some(t) => State::Next(Some(t)),
                        None => State::Done,
                    };
                    Some((stream::iter(page.objects.into_iter().map(Ok)).boxed(), next))
                }
                Err(e) => Some((stream::iter([Err(e)]).boxed(), State::Done)),
            }
        })
        .flatten()
        .boxed()
    }
}

impl<T: Lister> ListerExt for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceErrorKind;

    /// Pages of two keys each, with an empty page in the middle, then optionally a failure.
    #[derive(Debug)]
    struct Paged {
        keys: Vec<&'static str>,
        fail_at_page: Option<usize>,
    }

    fn listed(key: &str) -> ListedObject {
        ListedObject {
            key: key.to_owned(),
            meta: ObjectMeta {
                size: key.len() as u64,
                etag: Some(format!("\"{key}\"")),
                last_modified: None,
                version_id: None,
                checksums: Vec::new(),
                checksum_note: None,
            },
        }
    }

    #[async_trait::async_trait]
    impl Lister for Paged {
        fn identity(&self) -> String {
            "paged".into()
        }
        async fn list_page(
            &self,
            prefix: &str,
            token: Option<&str>,
        ) -> Result<ListPage, SourceError> {
            let page: usize = token.map_or(0, |t| t.parse().unwrap());
            if self.fail_at_page == Some(page) {
                return Err(SourceError::new(SourceErrorKind::Denied, "page refused"));
            }
            let keys: Vec<_> = self.keys.iter().filter(|k| k.starts_with(prefix)).collect();
            // Page 1 is empty but not last, as some stores do.
            let objects = match page {
                0 => keys.iter().take(2).map(|k| listed(k)).collect(),
                1 => Vec::new(),
                n => keys
                    .iter()
                    .skip(2 * (n - 1))
                    .take(2)
                    .map(|k| listed(k))
                    .collect(),
            };
            let last = page >= 1 && 2 * page >= keys.len();
            Ok(ListPage {
                objects,
                next: (!last).then(|| (page + 1).to_string()),
            })
        }
    }

    #[tokio::test]
    async fn list_all_follows_tokens_through_empty_pages() {
        let lister = Paged {
            keys: vec!["p/a", "p/b", "p/c", "p/d", "p/e", "q/x"],
            fail_at_page: None,
        };
        let keys: Vec<String> = lister
            .list_all("p/")
            .map(|r| r.unwrap().key)
            .collect()
            .await;
        assert_eq!(keys, ["p/a", "p/b", "p/c", "p/d", "p/e"]);
    }

    #[tokio::test]
    async fn list_all_ends_with_the_first_error() {
        let lister = Paged {
            keys: vec!["p/a", "p/b", "p/c", "p/d"],
            fail_at_page: Some(2),
        };
        let items: Vec<_> = lister.list_all("p/").collect().await;
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_ref().unwrap().key, "p/a");
        assert_eq!(items[1].as_ref().unwrap().key, "p/b");
        assert_eq!(items[2].as_ref().unwrap_err().kind, SourceErrorKind::Denied);
    }
}
