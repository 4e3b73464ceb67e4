//! The conformance suite every [`Lister`] runs, next to the [`RangeSource`] suite.
//!
//! A backend's test calls [`run`] with a [`ListFixture`] (listers over the bucket the
//! [`Fixture`] writes, with page sizes the suite chooses, so it can force many small pages),
//! the backend's source for the same bucket, and what the store can hold
//! ([`ListCapabilities`]). Every check states the part of the [`Lister`] contract it proves;
//! a check the store cannot be tested for is named in the report as skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;

use super::{Fixture, Report, content};
use crate::list::{ListPage, ListedObject, Lister, ListerExt};
use crate::source::{RangeSource, SourceErrorKind};

/// Listers over the bucket the suite's [`Fixture`] writes.
pub trait ListFixture: Send + Sync {
    /// A lister returning at most `page_size` objects per page (`None`: the backend's
    /// default). Each call builds a new lister, as a new process would.
    fn lister(&self, page_size: Option<usize>) -> Arc<dyn Lister>;

    /// A lister for a bucket (or container) that does not exist; `None` when the backend has
    /// no buckets (local files), and the check is reported as skipped.
    fn missing_bucket(&self) -> Option<Arc<dyn Lister>>;
}

/// Keys a store can hold; checks of keys it cannot hold are skipped, and named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCapabilities {
    /// `a` and `a/b` can both be objects (not on a file system).
    pub file_and_prefix: bool,
    /// A key may end in `/` (a "folder marker"; not through object_store's `Path`).
    pub trailing_slash: bool,
}

/// What the suite writes under `<prefix>list/`, each with its own size.
fn keys(caps: ListCapabilities) -> Vec<String> {
    let mut keys: Vec<String> = (0..12).map(|i| format!("plain-{i:02}")).collect();
    keys.extend(
        [
            "dir/x",
            "dir/sub/y",
            "dir-z",
            "dir0",
            "with space.txt",
            "100%.txt",
            "%2F-not-a-slash",
            "a+b=c&d.txt",
            "caf\u{e9}.txt",   // NFC
            "cafe\u{301}.txt", // NFD: another key
            "\u{65e5}\u{672c}/\u{8a9e}.bin",
            "emoji-\u{1f980}",
        ]
        .map(str::to_owned),
    );
    if caps.file_and_prefix {
        keys.extend(["both", "both/inner"].map(str::to_owned));
    }
    if caps.trailing_slash {
        keys.push("folder/".to_owned());
    }
    keys
}

/// Keys next to the listed prefix that must never be listed with it.
const DECOYS: [&str; 4] = ["lis", "list-sibling/x", "listed", "lisu/list/x"];

/// Every page of one listing, following the tokens (bounded: a lister that never ends fails).
async fn pages(lister: &dyn Lister, prefix: &str) -> Result<Vec<ListPage>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1000 {
        let page = lister
            .list_page(prefix, token.as_deref())
            .await
            .map_err(|e| format!("page {} of {prefix:?}: {e}", out.len()))?;
        token = page.next.clone();
        out.push(page);
        if token.is_none() {
            return Ok(out);
        }
    }
    Err(format!("{prefix:?}: still not at the end after 1000 pages"))
}

/// The keys listed, each once, or what was wrong.
fn once(objects: &[ListedObject]) -> Result<BTreeSet<String>, String> {
    let mut seen = BTreeSet::new();
    for o in objects {
        if !seen.insert(o.key.clone()) {
            return Err(format!("{:?} listed twice", o.key));
        }
    }
    Ok(seen)
}

fn compare(got: &BTreeSet<String>, want: &BTreeSet<String>) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    Err(format!("missing {missing:?}, not expected {extra:?}"))
}

/// Runs every lister check, writing objects under `prefix` through `fixture` (`prefix` is
/// empty or ends in `/`, and holds nothing else).
pub async fn run(
    source: Arc<dyn RangeSource>,
    fixture: &dyn Fixture,
    listers: &dyn ListFixture,
    caps: ListCapabilities,
    prefix: &str,
) -> Report {
    let mut r = Report::default();
    let base = format!("{prefix}list/");
    let keys = keys(caps);
    let mut sizes = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        let key = format!("{base}{k}");
        // Distinct sizes, so a size listed for the wrong key shows.
        let len = if k.ends_with('/') { 0 } else { i + 1 };
        if let Err(e) = fixture.put(&key, content(i as u8, len)).await {
            r.failures
                .push(format!("fixture could not write {key:?}: {e}"));
            return r;
        }
        sizes.insert(key, len as u64);
    }
    for d in DECOYS {
        let key = format!("{prefix}{d}");
        if let Err(e) = fixture.put(&key, content(200, 3)).await {
            r.failures
                .push(format!("fixture could not write {key:?}: {e}"));
            return r;
        }
    }
    let want: BTreeSet<String> = sizes.keys().cloned().collect();

    // The default page size, then pages forced small: one key, and a size that leaves a
    // partial last page.
    for (name, page_size) in [
        ("every_key_once_default_pages", None),
        ("every_key_once_pages_of_1", Some(1)),
        ("every_key_once_pages_of_7", Some(7)),
    ] {
        let lister = listers.lister(page_size);
        let result = async {
            let pages = pages(&*lister, &base).await?;
            if let Some(n) = page_size {
                if let Some(p) = pages.iter().find(|p| p.objects.len() > n) {
                    return Err(format!(
                        "a page of {} objects, more than the {n} asked for",
                        p.objects.len()
                    ));
                }
                let min = want.len().div_ceil(n);
                if pages.len() < min {
                    return Err(format!(
                        "{} pages for {} keys at {n} per page",
                        pages.len(),
                        want.len()
                    ));
                }
            }
            let all: Vec<ListedObject> = pages.into_iter().flat_map(|p| p.objects).collect();
            compare(&once(&all)?, &want)
        }
        .await;
        r.check(name, result);
    }

    // list_all (one page at a time) over the same keys.
    let lister = listers.lister(Some(5));
    let result = async {
        let mut all = Vec::new();
        let mut stream = lister.list_all(&base);
        while let Some(item) = stream.next().await {
            all.push(item.map_err(|e| e.to_string())?);
        }
        compare(&once(&all)?, &want)
    }
    .await;
    r.check("list_all_streams_every_key_once", result);

    // A token handed out by one lister resumes in a new one (a restarted job).
    let result = async {
        let first = listers
            .lister(Some(4))
            .list_page(&base, None)
            .await
            .map_err(|e| format!("first page: {e}"))?;
        let token = first
            .next
            .clone()
            .ok_or("the first page of 4 claims to be the last")?;
        let mut all = first.objects;
        let fresh = listers.lister(Some(4));
        let mut token = Some(token);
        for _ in 0..1000 {
            let Some(t) = token.take() else { break };
            let page = fresh
                .list_page(&base, Some(&t))
                .await
                .map_err(|e| format!("after {t:?}: {e}"))?;
            all.extend(page.objects);
            token = page.next;
        }
        compare(&once(&all)?, &want)
    }
    .await;
    r.check("token_resumes_in_a_new_lister", result);

    // A prefix that ends mid-segment is a string prefix: `dir` matches `dir/x`, `dir-z`,
    // `dir0`, not `plain-…`.
    let result = async {
        let pages = pages(&*listers.lister(Some(2)), &format!("{base}dir")).await?;
        let all: Vec<ListedObject> = pages.into_iter().flat_map(|p| p.objects).collect();
        let want: BTreeSet<String> = want
            .iter()
            .filter(|k| k.starts_with(&format!("{base}dir")))
            .cloned()
            .collect();
        compare(&once(&all)?, &want)
    }
    .await;
    r.check("prefix_is_a_string_prefix", result);

    // Nothing under a prefix: an empty listing, not an error.
    let result = async {
        let pages = pages(&*listers.lister(None), &format!("{base}nothing-here/")).await?;
        let n: usize = pages.iter().map(|p| p.objects.len()).sum();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} objects under a prefix with none"))
        }
    }
    .await;
    r.check("empty_prefix_lists_nothing", result);

    // Size and etag as the source's stat reports them, so a job reads pinned to the listing.
    let result = async {
        let pages = pages(&*listers.lister(None), &base).await?;
        let mut problems = Vec::new();
        for o in pages.into_iter().flat_map(|p| p.objects) {
            if sizes.get(&o.key) != Some(&o.meta.size) {
                problems.push(format!(
                    "{:?}: listed size {}, written {:?}",
                    o.key,
                    o.meta.size,
                    sizes.get(&o.key)
                ));
            }
            match source.stat(&o.key, None).await {
                Ok(m) if m.size == o.meta.size && m.etag == o.meta.etag => {}
                Ok(m) => problems.push(format!(
                    "{:?}: listed size {} etag {:?}, stat says {} {:?}",
                    o.key, o.meta.size, o.meta.etag, m.size, m.etag
                )),
                Err(e) => problems.push(format!("{:?}: stat failed: {e}", o.key)),
            }
            if o.meta.etag.is_none() {
                problems.push(format!("{:?}: listed without an etag", o.key));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
    .await;
    r.check("listed_size_and_etag_match_stat", result);

    // The keys a file system or a path type would bend, each listed as written.
    let special: [(&str, bool, &[&str]); 4] = [
        (
            "key_that_is_also_a_prefix",
            caps.file_and_prefix,
            &["both", "both/inner"],
        ),
        ("key_ending_in_slash", caps.trailing_slash, &["folder/"]),
        (
            "keys_with_spaces_percent_plus",
            true,
            &[
                "with space.txt",
                "100%.txt",
                "%2F-not-a-slash",
                "a+b=c&d.txt",
            ],
        ),
        (
            "unicode_keys_nfc_and_nfd_distinct",
            true,
            &[
                "caf\u{e9}.txt",
                "cafe\u{301}.txt",
                "\u{65e5}\u{672c}/\u{8a9e}.bin",
                "emoji-\u{1f980}",
            ],
        ),
    ];
    for (name, supported, wanted) in special {
        if !supported {
            r.skipped.push(name.into());
            continue;
        }
        let result = async {
            // Listed with a prefix that is the key's first characters, so the key must come
            // back exactly (not normalised, not decoded, not stripped of a '/').
            let mut problems = Vec::new();
            for k in wanted {
                let full = format!("{base}{k}");
                let short: String = full.chars().take(full.chars().count() - 1).collect();
                let pages = pages(&*listers.lister(Some(3)), &short).await?;
                let all: Vec<ListedObject> = pages.into_iter().flat_map(|p| p.objects).collect();
                let got = once(&all)?;
                if !got.contains(&full) {
                    problems.push(format!("{full:?} not listed under {short:?}: got {got:?}"));
                }
                if let Some(o) = all.iter().find(|o| o.key == full)
                    && Some(&o.meta.size) != sizes.get(&full)
                {
                    problems.push(format!("{full:?}: size {}", o.meta.size));
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        }
        .await;
        r.check(name, result);
    }

    match listers.missing_bucket() {
        None => r
            .skipped
            .push("missing_bucket_is_not_found_or_denied".into()),
        Some(lister) => {
            let result = match lister.list_page(&base, None).await {
                Ok(p) => Err(format!(
                    "listed {} objects from a bucket that does not exist",
                    p.objects.len()
                )),
                Err(e) if matches!(e.kind, SourceErrorKind::NotFound | SourceErrorKind::Denied) => {
                    Ok(())
                }
                Err(e) => Err(format!("kind {:?}: {e}", e.kind)),
            };
            r.check("missing_bucket_is_not_found_or_denied", result);
        }
    }
    r
}
