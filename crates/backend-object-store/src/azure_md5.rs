//! An Azure blob's `Content-MD5` (set by the uploader, or computed by the service for a blob
//! uploaded in one request), which object_store does not expose: one `HEAD` (Get Blob
//! Properties) signed by object_store's own [`AzureAuthorizer`] with the store's credential
//! provider, sent through the store's own HTTP client to the blob's URL as object_store forms
//! it. The engine checks it in order (MD5 does not combine).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use object_store::azure::{AzureAuthorizer, AzureCredentialProvider};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use resume_core::{Algorithm, Checksum, Origin, SourceError, SourceErrorKind};
use url::Url;

use crate::s3_checksum::check_store_status;

/// What an Azure source needs to read a blob's properties.
pub(crate) struct AzureMd5 {
    /// The store's HTTP client (captured when object_store connected it).
    pub(crate) http: Arc<Mutex<Option<HttpClient>>>,
    /// `https://ACCOUNT.blob.core.windows.net/CONTAINER`, or the emulator's
    /// `http://127.0.0.1:10000/ACCOUNT/CONTAINER`.
    pub(crate) container_url: Url,
    pub(crate) account: String,
    /// `None` when requests are not signed (`azure_skip_signature`).
    pub(crate) credentials: Option<AzureCredentialProvider>,
}

impl fmt::Debug for AzureMd5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureMd5")
            .field(
                "container_url",
                &resume_core::redact::redact_url(self.container_url.as_str()),
            )
            .field("account", &self.account)
            .field("signed", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl AzureMd5 {
    /// The blob's `Content-MD5` as a whole-object MD5, if it has one.
    pub(crate) async fn content_md5(
        &self,
        key: &str,
        etag: Option<&str>,
        version: Option<&str>,
    ) -> Result<Option<Checksum>, SourceError> {
        let http = self
            .http
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                SourceError::new(
                    SourceErrorKind::Other,
                    "internal error: the Azure store has no HTTP client for its properties \
                     request; please report this",
                )
            })?;
        let mut url = self.container_url.clone();
        url.path_segments_mut()
            .map_err(|()| {
                SourceError::new(
                    SourceErrorKind::Other,
                    "the Azure endpoint cannot hold a blob path; check the endpoint",
                )
            })?
            .extend(key.split('/'));
        if let Some(v) = version {
            url.query_pairs_mut().append_pair("versionid", v);
        }
        let mut builder = http::Request::builder().method("HEAD").uri(url.as_str());
        if let Some(tag) = etag {
            builder = builder.header("if-match", tag);
        }
        let mut request: HttpRequest = builder.body(HttpRequestBody::empty()).map_err(|e| {
            SourceError::new(
                SourceErrorKind::Other,
                format!("cannot build the Azure properties request for {key:?}: {e}"),
            )
        })?;
        if let Some(provider) = &self.credentials {
            let credential = provider.get_credential().await.map_err(|e| {
                SourceError::new(
                    SourceErrorKind::Denied,
                    format!(
                        "no Azure credentials to read the properties of {key:?}: {}",
                        resume_core::redact::redact_text(&e.to_string())
                    ),
                )
            })?;
            AzureAuthorizer::new(&credential, &self.account)
                .try_authorize(&mut request)
                .map_err(|_| {
                    SourceError::new(
                        SourceErrorKind::Other,
                        format!("cannot sign the Azure properties request for {key:?}"),
                    )
                })?;
        }
        let response = http.execute(request).await.map_err(|e| {
            SourceError::new(
                SourceErrorKind::Transient,
                format!(
                    "Azure properties request for {key:?} failed: {}",
                    resume_core::redact::redact_text(&e.to_string())
                ),
            )
        })?;
        check_store_status(
            "Azure",
            response.status().as_u16(),
            key,
            "the properties HEAD",
        )?;
        let Some(md5) = response
            .headers()
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            return Ok(None);
        };
        let value = B64
            .decode(md5)
            .ok()
            .filter(|v| v.len() == 16)
            .ok_or_else(|| {
                SourceError::new(
                    SourceErrorKind::Other,
                    format!(
                        "Azure sent Content-MD5: {md5:?} for {key:?}, which is not a base64 MD5; \
                     the blob cannot be verified against it"
                    ),
                )
            })?;
        Checksum::new(Algorithm::Md5, value, Origin::Store("Azure".into()))
            .map(Some)
            .map_err(|e| SourceError::new(SourceErrorKind::Other, e.to_string()))
    }
}
