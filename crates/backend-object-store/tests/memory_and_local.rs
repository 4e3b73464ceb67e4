//! The shared `RangeSource` conformance suite against object_store's `InMemory` and
//! `LocalFileSystem` stores, plus what is specific to them.

mod common;

use std::sync::Arc;

use backend_object_store::object_store::memory::InMemory;
use backend_object_store::{ObjectStoreSource, StoreOptions, from_url};
use resume_core::conformance;
use resume_core::{Downloader, RangeSource, ReadConditions, SourceErrorKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_store_passes_the_conformance_suite() {
    let source = ObjectStoreSource::new(Arc::new(InMemory::new()), "memory://conformance");
    common::assert_store_conforms("InMemory", &source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_file_system_passes_the_conformance_suite() {
    let root = tempfile::tempdir().unwrap();
    let source = ObjectStoreSource::local(root.path()).unwrap();
    assert_eq!(
        source.identity(),
        format!("file://{}", root.path().canonicalize().unwrap().display())
    );
    common::assert_store_conforms("LocalFileSystem", &source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_url_downloads_a_local_file_and_maps_local_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("data dir/ü file.bin");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let data = conformance::content(9, 300_001);
    std::fs::write(&file, &data).unwrap();
    let url = url::Url::from_file_path(&file).unwrap();
    let (source, key) = from_url(url.as_str(), &StoreOptions::new().no_env()).unwrap();
    assert_eq!(source.identity(), "file:///");
    assert_eq!(key, file.to_str().unwrap().trim_start_matches('/'));

    let meta = source.stat(&key, None).await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert!(meta.etag.is_some() && meta.last_modified.is_some());

    let dest = dir.path().join("out.bin");
    let report = Downloader::new(source.clone())
        .part_size(65_536)
        .concurrency(3)
        .download(&key, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data[..]);
    assert_eq!(report.fetched_bytes, data.len() as u64);

    // Past the end: InvalidRange, never data.
    let err = source
        .read_range(&key, 300_001..300_011, &ReadConditions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::InvalidRange, "{err}");
    // A key object_store would silently rewrite is refused, not read as another object.
    let err = source.stat(&format!("{key}/"), None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Other, "{err}");
    // A directory is not an object.
    let parent = key.rsplit_once('/').unwrap().0;
    assert!(source.stat(parent, None).await.is_err());
}
