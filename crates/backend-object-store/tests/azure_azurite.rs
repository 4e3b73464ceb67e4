//! The Azure client against a real Azure Blob server: Azurite (npm `azurite`), started by the
//! test on 127.0.0.1 with an ephemeral port, in memory, telemetry off, with its published
//! development account. No npm (or PyPI, for the SDK that creates the container) fails the
//! test.

mod common;

use std::sync::Arc;

use common::{AZURITE_ACCOUNT, Azurite, StoreFixture, assert_report};
use resume_core::conformance::{self, Capabilities};
use resume_core::{RangeSource, SourceErrorKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_passes_the_conformance_suite() {
    let az = Azurite::start();
    az.create_container("conformance");
    let source = az.source("conformance");
    assert_eq!(
        source.identity(),
        format!("az://{AZURITE_ACCOUNT}/conformance@{}", az.endpoint)
    );
    let scratch = tempfile::tempdir().unwrap();
    let report = conformance::run(
        Arc::new(source.clone()),
        &StoreFixture(source.store().clone()),
        Capabilities {
            etag: true,
            crc64: false,
            overwrite: true,
        },
        "",
        scratch.path(),
    )
    .await;
    assert_report(
        "Azure (Azurite)",
        &report,
        &["stat_reports_the_whole_object_crc64"],
    );

    // A container that does not exist is NotFound, and a wrong key is Denied: both named.
    let nowhere = az.source("no-such-container");
    let err = nowhere.stat("k", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotFound, "{err}");
    let wrong = backend_object_store::from_url(
        "az://conformance/any",
        &az.options().config(
            "azure_storage_account_key",
            "d3JvbmcgYnV0IHdlbGwtZm9ybWVkIGtleSBvZiBhIHN0b3JhZ2UgYWNjb3VudA==",
        ),
    )
    .unwrap()
    .0;
    let err = wrong.stat("k", None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Denied, "{err}");
}
