//! The shared `RangeSource` conformance suite, run against the mock backend.

use std::sync::Arc;

use backend_mock::MockSource;
use bytes::Bytes;
use resume_core::conformance::{self, Capabilities, Fixture};

struct MockFixture(MockSource);

#[async_trait::async_trait]
impl Fixture for MockFixture {
    async fn put(&self, key: &str, content: Bytes) -> Result<(), String> {
        self.0.put(key, content);
        Ok(())
    }
}

#[tokio::test]
async fn mock_source_passes_the_range_source_conformance_suite() {
    let source = MockSource::new("conformance").with_crc64_fn(resume_core::crc64);
    let scratch = tempfile::tempdir().unwrap();
    let report = conformance::run(
        Arc::new(source.clone()),
        &MockFixture(source),
        Capabilities {
            etag: true,
            crc64: true,
            overwrite: true,
        },
        "",
        scratch.path(),
    )
    .await;
    report.assert_clean();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert!(report.passed.len() >= 14, "{:?}", report.passed);
}
