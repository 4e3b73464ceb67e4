//! An Azure blob's `Content-MD5` (set by the uploader, or computed by the service for a blob
//! uploaded in one request), which object_store does not expose: one `HEAD` (Get Blob
//! Properties) signed by object_store's own [`AzureAuthorizer`] with the store's credential
//! provider, sent through the store's own HTTP client to the blob's URL as object_store forms
//! it. The engine checks it in order (MD5 does not combine). A listed blob of one part is read
//! by one GET sent the same way, whose headers describe it (`read_whole`).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use object_store::azure::{AzureAuthorizer, AzureCredentialProvider};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody, HttpResponse};
use resume_core::http_syntax::parse_decimal;
use resume_core::{
    Algorithm, Checksum, DescribedRead, ObjectMeta, Origin, RangeRead, ReadConditions, SourceError,
    SourceErrorKind,
};
use url::Url;

use crate::s3_checksum::{check_store_status, header_text, whole_body};

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
        let response = self.send("HEAD", key, etag, version).await?;
        check_store_status(
            "Azure",
            response.status().as_u16(),
            key,
            "the properties HEAD",
        )?;
        md5_of(key, response.headers())
    }

    /// One GET of the whole blob (pinned to `conditions`), described by its own headers: size,
    /// etag, version, last-modified and the `Content-MD5` Azure sends with a whole blob, so the
    /// engine needs no properties HEAD for it. `None` (the caller reads as usual, and
    /// object_store's error mapping explains) for any answer but 200.
    pub(crate) async fn read_whole(
        &self,
        key: &str,
        conditions: &ReadConditions,
    ) -> Result<Option<DescribedRead>, SourceError> {
        let response = match self
            .send(
                "GET",
                key,
                conditions.if_match.as_deref(),
                conditions.version_id.as_deref(),
            )
            .await
        {
            Ok(r) => r,
            Err(e) if e.kind == SourceErrorKind::Transient => return Err(e),
            Err(_) => return Ok(None),
        };
        if response.status().as_u16() != 200 {
            return Ok(None);
        }
        let headers = response.headers().clone();
        let text = |name: &str| header_text(&headers, name);
        let Some(size) = text("content-length").and_then(|v| parse_decimal(&v)) else {
            return Ok(None);
        };
        let etag = text("etag");
        let md5 = md5_of(key, &headers)?;
        let body = whole_body(response, "Azure", key);
        Ok(Some(DescribedRead {
            read: RangeRead {
                range: 0..size,
                total_size: Some(size),
                etag: etag.clone(),
                body,
            },
            object: Some(ObjectMeta {
                size,
                etag,
                last_modified: text("last-modified")
                    .and_then(|v| httpdate::parse_http_date(&v).ok()),
                version_id: text("x-ms-version-id"),
                checksums: md5.into_iter().collect(),
                checksum_note: None,
            }),
        }))
    }

    /// `method` on the blob `key`, pinned to `etag` and `version`, signed by object_store's
    /// own authorizer and sent through the store's client.
    async fn send(
        &self,
        method: &str,
        key: &str,
        etag: Option<&str>,
        version: Option<&str>,
    ) -> Result<HttpResponse, SourceError> {
        let http = self
            .http
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                SourceError::new(
                    SourceErrorKind::Other,
                    "internal error: the Azure store has no HTTP client for its blob request; \
                     please report this",
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
        let mut builder = http::Request::builder().method(method).uri(url.as_str());
        if let Some(tag) = etag {
            builder = builder.header("if-match", tag);
        }
        let mut request: HttpRequest = builder.body(HttpRequestBody::empty()).map_err(|e| {
            SourceError::new(
                SourceErrorKind::Other,
                format!("cannot build the Azure {method} request for {key:?}: {e}"),
            )
        })?;
        if let Some(provider) = &self.credentials {
            let credential = provider.get_credential().await.map_err(|e| {
                SourceError::new(
                    SourceErrorKind::Denied,
                    format!(
                        "no Azure credentials to read {key:?}: {}",
                        resume_core::redact::redact_text(&e.to_string())
                    ),
                )
            })?;
            AzureAuthorizer::new(&credential, &self.account)
                .try_authorize(&mut request)
                .map_err(|_| {
                    SourceError::new(
                        SourceErrorKind::Other,
                        format!("cannot sign the Azure {method} request for {key:?}"),
                    )
                })?;
        }
        http.execute(request).await.map_err(|e| {
            SourceError::new(
                SourceErrorKind::Transient,
                format!(
                    "Azure {method} request for {key:?} failed: {}",
                    resume_core::redact::redact_text(&e.to_string())
                ),
            )
        })
    }
}

/// The `Content-MD5` of an answer about a whole blob, as a whole-object MD5, if it has one.
fn md5_of(key: &str, headers: &http::HeaderMap) -> Result<Option<Checksum>, SourceError> {
    let Some(md5) = header_text(headers, "content-md5") else {
        return Ok(None);
    };
    let value = B64
        .decode(&md5)
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
