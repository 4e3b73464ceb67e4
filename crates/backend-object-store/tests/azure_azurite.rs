//! The Azure client against a real Azure Blob server: Azurite (npm `azurite`), started by the
//! test on 127.0.0.1 with an ephemeral port, in memory, telemetry off, with its published
//! development account. No npm (or PyPI, for the SDK that creates the container) fails the
//! test.

mod common;

use common::{AZURITE_ACCOUNT, Azurite};
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
    common::assert_store_conforms("Azure (Azurite)", &source).await;

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
