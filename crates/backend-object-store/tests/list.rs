//! `ObjectStoreLister` against every store it is used with: the lister conformance suite for
//! local files, the in-memory store, S3 (moto) and Azure (Azurite), plus what is specific to
//! local files (links, special files, names that cannot be keys) and to URLs.

mod common;

use std::sync::Arc;

use backend_object_store::object_store::memory::InMemory;
use backend_object_store::{ObjectStoreLister, ObjectStoreSource, StoreOptions, lister_from_url};
use common::{Azurite, DirFixture, Moto, StoreFixture};
use futures::TryStreamExt;
use resume_core::conformance::list::{self, ListCapabilities, ListFixture};
use resume_core::conformance::{Fixture, Report};
use resume_core::{Lister, ListerExt, RangeSource, SourceErrorKind};

/// Listers over one source's store, and over a missing bucket's when there are buckets.
struct Listers {
    source: ObjectStoreSource,
    missing: Option<ObjectStoreSource>,
}

impl ListFixture for Listers {
    fn lister(&self, page_size: Option<usize>) -> Arc<dyn Lister> {
        let l = ObjectStoreLister::new(&self.source);
        Arc::new(match page_size {
            Some(n) => l.with_page_size(n),
            None => l,
        })
    }
    fn missing_bucket(&self) -> Option<Arc<dyn Lister>> {
        self.missing
            .as_ref()
            .map(|s| Arc::new(ObjectStoreLister::new(s)) as Arc<dyn Lister>)
    }
}

/// object_store's `Path` holds `a` next to `a/b`, never a key ending in `/`.
const STORE: ListCapabilities = ListCapabilities {
    file_and_prefix: true,
    trailing_slash: false,
};

async fn conform(
    name: &str,
    source: &ObjectStoreSource,
    fixture: &dyn Fixture,
    missing: Option<ObjectStoreSource>,
    caps: ListCapabilities,
    prefix: &str,
) -> Report {
    let listers = Listers {
        source: source.clone(),
        missing,
    };
    let report = list::run(Arc::new(source.clone()), fixture, &listers, caps, prefix).await;
    println!("{name}: {report:#?}");
    report
}

fn assert_skipped(report: &Report, want: &[&str]) {
    report.assert_clean();
    let mut got: Vec<&str> = report.skipped.iter().map(String::as_str).collect();
    got.sort_unstable();
    let mut want = want.to_vec();
    want.sort_unstable();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_store_lists_conformantly() {
    let source = ObjectStoreSource::new(Arc::new(InMemory::new()), "memory://list");
    let fixture = StoreFixture(source.store().clone());
    let report = conform("InMemory", &source, &fixture, None, STORE, "p/").await;
    assert_skipped(
        &report,
        &[
            "key_ending_in_slash",
            "missing_bucket_is_not_found_or_denied",
        ],
    );
    // The same at the store's root (empty prefix).
    let source = ObjectStoreSource::new(Arc::new(InMemory::new()), "memory://root");
    let fixture = StoreFixture(source.store().clone());
    let report = conform("InMemory (root)", &source, &fixture, None, STORE, "").await;
    report.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_list_conformantly() {
    let root = tempfile::tempdir().unwrap();
    let source = ObjectStoreSource::local(root.path()).unwrap();
    let fixture = DirFixture(root.path().canonicalize().unwrap());
    // A file system cannot hold `a` next to `a/b`, nor a file named `x/`.
    let caps = ListCapabilities {
        file_and_prefix: false,
        trailing_slash: false,
    };
    let report = conform("LocalFileSystem", &source, &fixture, None, caps, "p/").await;
    assert_skipped(
        &report,
        &[
            "key_that_is_also_a_prefix",
            "key_ending_in_slash",
            "missing_bucket_is_not_found_or_denied",
        ],
    );
    let report = conform("LocalFileSystem (root)", &source, &fixture, None, caps, "").await;
    report.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3_lists_conformantly() {
    let moto = Moto::start();
    moto.create_bucket("listing");
    let source = moto.source("listing");
    let fixture = StoreFixture(source.store().clone());
    let missing = moto.source("no-such-bucket");
    // Pages of 1000 keys from the server, handed out 1, 5 or 7 at a time.
    let report = conform("S3 (moto)", &source, &fixture, Some(missing), STORE, "p/").await;
    assert_skipped(&report, &["key_ending_in_slash"]);
    let err = ObjectStoreLister::new(&moto.source("no-such-bucket"))
        .list_page("", None)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.status, err.code.as_deref()),
        (SourceErrorKind::NotFound, Some(404), Some("NoSuchBucket")),
        "{err}"
    );
    assert!(err.to_string().contains("listing of the prefix"), "{err}");

    // What object_store's `Path` does to keys it cannot hold (documented in list.rs): a
    // folder marker is listed without its '/' (and a read of that key finds nothing); a key
    // with an empty segment fails the page.
    moto.create_bucket("markers");
    moto.put_raw("markers", "m/folder/", b"");
    moto.put_raw("markers", "m/file", b"abc");
    let lister = ObjectStoreLister::new(&moto.source("markers"));
    let keys: Vec<(String, u64)> = lister
        .list_all("m/")
        .map_ok(|o| (o.key, o.meta.size))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys, [("m/file".into(), 3), ("m/folder".into(), 0)]);
    moto.put_raw("markers", "e/a//b", b"x");
    let err = lister.list_page("e/", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Other, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_lists_conformantly() {
    let az = Azurite::start();
    az.create_container("listing");
    let source = az.source("listing");
    let fixture = StoreFixture(source.store().clone());
    let missing = az.source("no-such-container");
    let report = conform(
        "Azure (Azurite)",
        &source,
        &fixture,
        Some(missing),
        STORE,
        "p/",
    )
    .await;
    assert_skipped(&report, &["key_ending_in_slash"]);
}

/// Keys of a local listing, in order.
async fn local_keys(lister: &ObjectStoreLister, prefix: &str) -> Vec<String> {
    lister
        .list_all(prefix)
        .map_ok(|o| o.key)
        .try_collect()
        .await
        .unwrap()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_walk_lists_file_links_and_leaves_out_what_is_not_a_file() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let tree = root.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/file"), b"12345").unwrap();
    std::fs::write(root.join("outside"), b"xyz").unwrap();
    symlink(tree.join("sub/file"), tree.join("link-to-file")).unwrap();
    symlink(root.join("outside"), tree.join("link-outside")).unwrap();
    symlink(&tree, tree.join("sub/loop")).unwrap(); // a directory link: not followed
    symlink(root.join("missing"), tree.join("dangling")).unwrap();
    let fifo = tree.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir(tree.join("empty-dir")).unwrap();

    let source = ObjectStoreSource::local(&root).unwrap();
    let lister = ObjectStoreLister::new(&source).with_page_size(1);
    let keys = local_keys(&lister, "tree/").await;
    assert_eq!(
        keys,
        ["tree/link-outside", "tree/link-to-file", "tree/sub/file"]
    );

    // A link is listed with its target's size and the identity a read of the key pins.
    let page = lister.list_page("tree/link-to-file", None).await.unwrap();
    let linked = &page.objects[0];
    assert_eq!(linked.meta.size, 5);
    let stat = source.stat("tree/link-to-file", None).await.unwrap();
    assert_eq!(linked.meta.etag, stat.etag);

    // A prefix whose directory does not exist lists nothing.
    assert!(local_keys(&lister, "tree/nowhere/").await.is_empty());
    assert!(local_keys(&lister, "no-such-dir/x").await.is_empty());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_name_that_cannot_be_a_key_stops_the_listing_and_is_named() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("ok")).unwrap();
    std::fs::write(root.join("ok/a"), b"a").unwrap();
    std::fs::create_dir_all(root.join("bad")).unwrap();
    std::fs::write(root.join("bad").join(OsStr::from_bytes(b"caf\xe9")), b"x").unwrap();
    std::fs::create_dir_all(root.join("ctl")).unwrap();
    std::fs::write(root.join("ctl/line\nbreak"), b"x").unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(root.join("tmp/upload#3"), b"x").unwrap();

    let source = ObjectStoreSource::local(&root).unwrap();
    let lister = ObjectStoreLister::new(&source);
    assert_eq!(local_keys(&lister, "ok/").await, ["ok/a"]);
    for (prefix, why) in [
        ("bad/", "not UTF-8"),
        ("ctl/", "control character"),
        ("tmp/", "temporary files"),
    ] {
        let err = lister.list_page(prefix, None).await.unwrap_err();
        assert_eq!(err.kind, SourceErrorKind::Other, "{err}");
        let text = err.to_string();
        assert!(text.contains(why) && text.contains("rename it"), "{text}");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_local_directory_is_denied() {
    use std::os::unix::fs::PermissionsExt;
    // Root reads any directory whatever its mode (CI runs as root): there, this test runs
    // itself again as user `nobody` (util-linux `setpriv`), where the mode stops the read.
    const AS_NOBODY: &str = "RESUME_GET_TEST_AS_NOBODY";
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if is_root {
        assert!(
            std::env::var_os(AS_NOBODY).is_none(),
            "setpriv did not drop root"
        );
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "an_unreadable_local_directory_is_denied",
                "--exact",
                "--nocapture",
            ])
            .env(AS_NOBODY, "1")
            .env("TMPDIR", "/tmp")
            .output()
            .expect("setpriv (util-linux) runs this test as nobody");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "as nobody: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("locked")).unwrap();
    std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let source = ObjectStoreSource::local(&root).unwrap();
    let err = ObjectStoreLister::new(&source)
        .list_page("locked/", None)
        .await
        .unwrap_err();
    std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(err.kind, SourceErrorKind::Denied, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lister_from_url_reads_the_path_as_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("data dir/sub")).unwrap();
    std::fs::write(root.join("data dir/sub/x"), b"x").unwrap();
    std::fs::write(root.join("data dir-2"), b"y").unwrap();
    let base = root.to_str().unwrap().trim_start_matches('/').to_owned();
    let url = format!("file:///{}/data%20dir/", base);
    let (source, lister, prefix) = lister_from_url(&url, &StoreOptions::new()).unwrap();
    assert_eq!(prefix, format!("{base}/data dir/"));
    assert_eq!(lister.identity(), source.identity());
    let keys = local_keys(&lister, &prefix).await;
    assert_eq!(keys, [format!("{base}/data dir/sub/x")]);
    // The listed key is what the source reads.
    assert_eq!(source.stat(&keys[0], None).await.unwrap().size, 1);
    // Without the trailing slash the prefix is a string prefix: `data dir-2` too.
    let (_, lister, prefix) =
        lister_from_url(&format!("file:///{base}/data%20dir"), &StoreOptions::new()).unwrap();
    assert_eq!(local_keys(&lister, &prefix).await.len(), 2);

    let err = lister_from_url("http://127.0.0.1:9/dir/", &StoreOptions::new()).unwrap_err();
    assert!(err.to_string().contains("cannot list"), "{err}");
    let dbg = format!("{lister:?}");
    assert!(dbg.contains("ObjectStoreLister"), "{dbg}");
}

/// An in-memory store that counts the listings started on it.
#[derive(Debug, Default)]
struct Counting {
    inner: InMemory,
    lists: std::sync::atomic::AtomicUsize,
    offsets: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counting")
    }
}

mod counting {
    use backend_object_store::object_store::path::Path;
    use backend_object_store::object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
    };
    use futures::stream::BoxStream;
    use std::sync::atomic::Ordering;

    #[async_trait::async_trait]
    impl ObjectStore for super::Counting {
        async fn put_opts(&self, p: &Path, b: PutPayload, o: PutOptions) -> Result<PutResult> {
            self.inner.put_opts(p, b, o).await
        }
        async fn put_multipart_opts(
            &self,
            p: &Path,
            o: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(p, o).await
        }
        async fn get_opts(&self, p: &Path, o: GetOptions) -> Result<GetResult> {
            self.inner.get_opts(p, o).await
        }
        fn delete_stream(
            &self,
            l: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(l)
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            self.inner.list(prefix)
        }
        fn list_with_offset(
            &self,
            prefix: Option<&Path>,
            offset: &Path,
        ) -> BoxStream<'static, Result<ObjectMeta>> {
            self.offsets.fetch_add(1, Ordering::SeqCst);
            self.inner.list_with_offset(prefix, offset)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> Result<()> {
            self.inner.copy_opts(f, t, o).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_listing_is_one_store_listing_however_small_the_pages() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(Counting::default());
    let source = ObjectStoreSource::new(store.clone(), "counting://");
    let fixture = StoreFixture(source.store().clone());
    for i in 0..25 {
        fixture
            .put(&format!("a/k{i:02}"), bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
        fixture
            .put(&format!("b/k{i:02}"), bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    let lister = ObjectStoreLister::new(&source).with_page_size(2);
    let all = local_keys(&lister, "a/").await;
    assert_eq!(all.len(), 25);
    // 13 pages, one store listing (the live cursor followed), none restarted.
    assert_eq!(
        (store.lists.load(SeqCst), store.offsets.load(SeqCst)),
        (1, 0)
    );

    // Two listings interleaved on one lister: the one whose cursor was replaced resumes
    // after its token with one offset listing, and still lists every key once.
    let a1 = lister.list_page("a/", None).await.unwrap();
    let b1 = lister.list_page("b/", None).await.unwrap();
    let mut keys: Vec<String> = a1.objects.into_iter().map(|o| o.key).collect();
    let mut token = a1.next;
    while let Some(t) = token {
        let p = lister.list_page("a/", Some(&t)).await.unwrap();
        keys.extend(p.objects.into_iter().map(|o| o.key));
        token = p.next;
    }
    assert_eq!(keys, all);
    assert_eq!(b1.objects.len(), 2);
    assert_eq!(
        (store.lists.load(SeqCst), store.offsets.load(SeqCst)),
        (3, 1)
    );
}
