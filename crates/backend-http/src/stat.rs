//! `stat`: a `HEAD`, or — when the server refuses `HEAD` (a presigned GET URL answers 403,
//! some servers 405 or 501) or answers it without a length — a first ranged `GET bytes=0-`
//! whose headers give size, etag and last-modified. That `GET`'s body is not thrown away: it
//! is kept as a [`Stash`], and the engine's first read of the object's first bytes is served
//! from it (see `reader.rs`), so learning the size costs no extra transfer.

use std::ops::Range;
use std::time::SystemTime;

use futures::StreamExt as _;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use resume_core::{ByteStream, ObjectMeta, SourceError, SourceErrorKind};

use crate::reader::{coded_body_error, parse_content_range, parse_decimal};
use crate::{HttpSource, digest, error, last_modified, lock};

/// The body of the `GET` a `stat` made, waiting for the read of its first bytes.
pub(crate) struct Stash {
    pub(crate) key: String,
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<SystemTime>,
    /// The object bytes the body holds.
    pub(crate) declared: Range<u64>,
    pub(crate) total: Option<u64>,
    /// A `200`: the server ignores ranges.
    pub(crate) whole_body: bool,
    pub(crate) body: ByteStream,
}

pub(crate) async fn stat(
    src: &HttpSource,
    key: &str,
    version_id: Option<&str>,
) -> Result<ObjectMeta, SourceError> {
    if let Some(v) = version_id {
        return Err(SourceError::new(
            SourceErrorKind::Misconfigured,
            format!(
                "version {v:?} of {key}: an HTTP server has no object versions; drop the \
                 version id"
            ),
        ));
    }
    let op = src.describe("HEAD", key);
    let (answer, start) = src
        .request(Method::HEAD, key, &HeaderMap::new(), &op)
        .await?;
    let status = answer.response.status().as_u16();
    let headers = answer.response.headers();
    let length = headers
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_decimal(v.trim()));
    match (status, length) {
        (200, Some(size)) => {
            coded_body_error(&op, headers, status)?;
            Ok(meta(src, headers, size, true))
        }
        // A HEAD the URL's signature or the server does not allow, or one that does not say
        // the length: the GET that the download needs anyway tells.
        (200, None) | (403 | 405 | 501, _) => {
            tracing::debug!(
                operation = op,
                status,
                "HEAD gave no size; asking with a ranged GET instead"
            );
            stat_by_get(src, key).await
        }
        (200..=299, _) => Err(SourceError::new(
            SourceErrorKind::Other,
            format!("{op}: unexpected HTTP status {status}; retrying cannot help"),
        )
        .with_status(status)),
        _ => {
            let signed = src.signed(&start);
            Err(error::from_response(&op, answer.response, signed).await)
        }
    }
}

fn meta(src: &HttpSource, headers: &HeaderMap, size: u64, whole_body: bool) -> ObjectMeta {
    ObjectMeta {
        size,
        etag: src.etag(headers),
        last_modified: last_modified(headers),
        version_id: None,
        checksums: digest::published(headers, whole_body),
        checksum_note: None,
    }
}

/// `GET bytes=0-`: the size from `Content-Range` (a `206`) or `Content-Length` (a `200`:
/// the server ignores ranges), the body kept for the first read.
async fn stat_by_get(src: &HttpSource, key: &str) -> Result<ObjectMeta, SourceError> {
    let op = format!(
        "{} bytes 0- (for the size: HEAD was refused)",
        src.describe("GET", key)
    );
    let mut extra = HeaderMap::new();
    extra.insert(reqwest::header::RANGE, HeaderValue::from_static("bytes=0-"));
    let (answer, start) = src.request(Method::GET, key, &extra, &op).await?;
    let response = answer.response;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let malformed = |what: String| {
        SourceError::new(SourceErrorKind::Other, format!("{op}: {what}")).with_status(status)
    };
    let (declared, total, meta) = match status {
        206 => {
            coded_body_error(&op, &headers, status)?;
            let value = headers
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| malformed("a 206 answer without Content-Range".into()))?;
            let (declared, total) = parse_content_range(value.trim())
                .ok_or_else(|| malformed(format!("malformed Content-Range {value:?}")))?;
            let size = total.ok_or_else(|| {
                malformed(format!(
                    "Content-Range {value:?} does not say the object's size"
                ))
            })?;
            if declared.start != 0 {
                return Err(malformed(format!(
                    "asked for bytes 0-, the server sent {value:?}"
                )));
            }
            (declared, total, meta(src, &headers, size, false))
        }
        200 => {
            coded_body_error(&op, &headers, status)?;
            let size = headers
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_decimal(v.trim()))
                .ok_or_else(|| {
                    malformed(
                        "the server sends no Content-Length, so the object's size is unknown \
                         and a download cannot be checked or resumed"
                            .into(),
                    )
                })?;
            (0..size, Some(size), meta(src, &headers, size, true))
        }
        // `bytes */0`: the object is empty.
        416 if headers
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "bytes */0") =>
        {
            return Ok(meta(src, &headers, 0, false));
        }
        _ => {
            let signed = src.signed(&start);
            return Err(error::from_response(&op, response, signed).await);
        }
    };
    let body_op = op.clone();
    let body = response
        .bytes_stream()
        .map(move |c| c.map_err(|e| error::transport_error(&body_op, e)))
        .boxed();
    *lock(&src.stash) = Some(Stash {
        key: key.to_owned(),
        etag: meta.etag.clone(),
        last_modified: meta.last_modified,
        declared,
        total,
        whole_body: status == 200,
        body,
    });
    Ok(meta)
}
