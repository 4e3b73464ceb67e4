//! [`Lister`] for [`MockSource`]: the bucket's current objects under a prefix, in key order,
//! [`MockSource::with_page_size`] keys per page, the token being the last key of the page
//! (like S3's `start-after`); page requests can be made to fail.

use std::collections::BTreeMap;
use std::ops::Bound;

use resume_core::{ListPage, ListedObject, Lister, SourceError, SourceErrorKind};

use crate::source::MockSource;

/// Keys per page unless [`MockSource::with_page_size`] says otherwise (S3's and OSS's maximum).
const DEFAULT_PAGE_SIZE: usize = 1000;

#[derive(Debug, Default)]
pub(crate) struct ListingState {
    page_size: Option<usize>,
    requests: u64,
    /// Page request number → the error it gets.
    failures: BTreeMap<u64, SourceErrorKind>,
    log: Vec<ListLogEntry>,
}

/// One `list_page` call, as the mock saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLogEntry {
    /// List request number (0-based, in call order).
    pub n: u64,
    /// The prefix listed.
    pub prefix: String,
    /// The token passed (the last key of the previous page).
    pub token: Option<String>,
    /// Keys returned (0 when it failed).
    pub returned: usize,
    /// The kind of error injected, if any.
    pub error: Option<SourceErrorKind>,
}

impl MockSource {
    /// Keys per listing page (at least 1; default 1000).
    pub fn with_page_size(self, n: usize) -> Self {
        self.with_listing(|_, l| l.page_size = Some(n.max(1)));
        self
    }

    /// Makes list request number `n` (0-based, counting every `list_page` call) fail with
    /// `kind`.
    pub fn fail_list_request(&self, n: u64, kind: SourceErrorKind) {
        self.with_listing(|_, l| {
            l.failures.insert(n, kind);
        });
    }

    /// Number of `list_page` calls so far.
    pub fn list_requests(&self) -> u64 {
        self.with_listing(|_, l| l.requests)
    }

    /// Every `list_page` call so far.
    pub fn list_log(&self) -> Vec<ListLogEntry> {
        self.with_listing(|_, l| l.log.clone())
    }
}

#[async_trait::async_trait]
impl Lister for MockSource {
    /// The same as the source's: `mock://<name>`.
    fn identity(&self) -> String {
        resume_core::RangeSource::identity(self)
    }

    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage, SourceError> {
        self.with_listing(|objects, l| {
            let n = l.requests;
            l.requests += 1;
            let mut entry = ListLogEntry {
                n,
                prefix: prefix.to_owned(),
                token: token.map(str::to_owned),
                returned: 0,
                error: None,
            };
            if let Some(&kind) = l.failures.get(&n) {
                entry.error = Some(kind);
                l.log.push(entry);
                return Err(SourceError::new(
                    kind,
                    format!("injected failure of list request {n}"),
                )
                .with_request_id(format!("mock-l{n}")));
            }
            let size = l.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
            let after = token.map_or(Bound::Unbounded, Bound::Excluded);
            let mut page: Vec<ListedObject> = Vec::with_capacity(size.min(1024));
            let mut more = false;
            for (key, meta) in objects {
                if !key.starts_with(prefix) || !bound_allows(&after, key) {
                    continue;
                }
                if page.len() == size {
                    more = true;
                    break;
                }
                page.push(ListedObject {
                    key: key.clone(),
                    meta: meta.clone(),
                });
            }
            entry.returned = page.len();
            l.log.push(entry);
            let next = more.then(|| page.last().map(|o| o.key.clone())).flatten();
            Ok(ListPage {
                objects: page,
                next,
            })
        })
    }
}

fn bound_allows(after: &Bound<&str>, key: &str) -> bool {
    match after {
        Bound::Excluded(a) => key > *a,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use resume_core::ListerExt;

    #[tokio::test]
    async fn pages_cover_the_prefix_once_in_key_order() {
        let src = MockSource::new("b").with_page_size(2);
        for k in ["p/a", "p/b", "p/c", "p/d/e", "p/e", "q/x", "p"] {
            src.put(k, vec![1u8; k.len()]);
        }
        src.remove("p/c");
        let keys: Vec<String> = src.list_all("p/").map(|r| r.unwrap().key).collect().await;
        assert_eq!(keys, ["p/a", "p/b", "p/d/e", "p/e"]);
        assert_eq!(src.list_requests(), 2);
        let log = src.list_log();
        assert_eq!(log[1].token.as_deref(), Some("p/b"));
        let first = src.list_page("p/", None).await.unwrap();
        assert_eq!(first.objects[0].meta, src.meta("p/a").unwrap());
    }

    #[tokio::test]
    async fn a_chosen_list_request_fails_with_its_kind() {
        let src = MockSource::new("b").with_page_size(1);
        src.put("a", b"x".to_vec());
        src.put("b", b"y".to_vec());
        src.fail_list_request(1, SourceErrorKind::Denied);
        let items: Vec<_> = src.list_all("").collect().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].as_ref().unwrap_err().kind, SourceErrorKind::Denied);
        assert_eq!(src.list_log()[1].error, Some(SourceErrorKind::Denied));
    }
}
