//! [`Bucket`] as a [`RangeSource`]: HEAD → [`ObjectInfo`], ranged GET → [`RangeRead`] (and,
//! from the same answer's headers, the object's description for `read_described`).
//!
//! This file only translates. It reports what each answer *declares* (a `206`'s
//! `Content-Range`, a `200` as `0..Content-Length`, the etag) and leaves every comparison with
//! what was asked, and every retry, to the engine.

use std::ops::Range;

use futures::StreamExt as _;
use reqwest::Method;
use reqwest::header::HeaderMap;
use resume_core::{
    DescribedRead, RangeRead, RangeSource, ReadConditions, SourceError, SourceErrorKind,
};

pub use resume_core::http_syntax::parse_content_range;
use resume_core::http_syntax::parse_decimal;

use crate::client::{Bucket, ObjectInfo};
use crate::core::{ObjectRequest, error_from_response, header_str, request_id, transport_error};

impl Bucket {
    /// HEAD `key` (version `version_id`, else the options' version, else the current one):
    /// everything [`RangeSource::stat`] reports plus the object type (Appendable objects are
    /// flagged), storage class and content type.
    pub async fn head_object(
        &self,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectInfo, SourceError> {
        let version = version_id.or(self.options.version_id.as_deref());
        let operation = match version {
            Some(v) => format!("HeadObject {} (version {v})", self.display_key(key)),
            None => format!("HeadObject {}", self.display_key(key)),
        };
        let req = ObjectRequest {
            method: Method::HEAD,
            bucket: &self.name,
            key,
            query: version_query(version),
            headers: self.base_headers().collect(),
            operation: &operation,
        };
        let response = self.core.send(&req).await?;
        let status = response.status().as_u16();
        if status != 200 {
            // HEAD answers have no body: the error document is in `x-oss-err`.
            return Err(match status {
                200..=299 => unexpected_status(&operation, status, response.headers()),
                _ => error_from_response(&operation, response).await,
            });
        }
        parse_head(&operation, response.headers())
    }

    /// `oss://bucket/key`, for messages.
    fn display_key(&self, key: &str) -> String {
        format!("oss://{}/{key}", self.name)
    }

    /// `Accept-Encoding: identity` plus the options' headers: on every request.
    fn base_headers(&self) -> impl Iterator<Item = (String, String)> + '_ {
        std::iter::once(("accept-encoding".to_string(), "identity".to_string()))
            .chain(self.options.request_headers())
    }
}

fn version_query(version: Option<&str>) -> Vec<(String, String)> {
    version
        .map(|v| vec![("versionId".to_string(), v.to_string())])
        .unwrap_or_default()
}

fn unexpected_status(operation: &str, status: u16, headers: &HeaderMap) -> SourceError {
    let mut e = SourceError::new(
        SourceErrorKind::Other,
        format!("{operation}: unexpected HTTP status {status}"),
    )
    .with_status(status);
    if let Some(id) = request_id(headers) {
        e = e.with_request_id(id);
    }
    e
}

fn malformed(operation: &str, what: String, headers: &HeaderMap, status: u16) -> SourceError {
    let mut e = SourceError::new(SourceErrorKind::Other, format!("{operation}: {what}"))
        .with_status(status);
    if let Some(id) = request_id(headers) {
        e = e.with_request_id(id);
    }
    e
}

/// What a GET's answer for `declared` of an object of `total` bytes says about the object.
fn described(
    operation: &str,
    headers: &HeaderMap,
    declared: &Range<u64>,
    total: u64,
) -> Result<resume_core::ObjectMeta, SourceError> {
    let mut info = parse_info(operation, headers, total)?;
    if *declared != (0..total) {
        info.content_md5 = None;
    }
    Ok(info.meta())
}

fn parse_head(operation: &str, headers: &HeaderMap) -> Result<ObjectInfo, SourceError> {
    let size = match header_str(headers, "content-length") {
        Some(v) => parse_decimal(v.trim()).ok_or_else(|| {
            malformed(operation, format!("bad Content-Length {v:?}"), headers, 200)
        })?,
        None => {
            return Err(malformed(
                operation,
                "the answer has no Content-Length, so the object's size is unknown".into(),
                headers,
                200,
            ));
        }
    };
    parse_info(operation, headers, size)
}

/// What `headers` (of a HEAD, or of a GET: OSS sends the same object headers on both, and a
/// ranged GET's `x-oss-hash-crc64ecma` is the whole object's) say about an object of `size`
/// bytes.
fn parse_info(operation: &str, headers: &HeaderMap, size: u64) -> Result<ObjectInfo, SourceError> {
    let text = |name: &str| header_str(headers, name).map(str::to_owned);
    let crc64 = match header_str(headers, "x-oss-hash-crc64ecma") {
        None => None,
        Some(v) => Some(parse_decimal(v.trim()).ok_or_else(|| {
            malformed(
                operation,
                format!("bad x-oss-hash-crc64ecma {v:?} (expected a decimal u64)"),
                headers,
                200,
            )
        })?),
    };
    // Set by the uploader, so optional; a value that is not base64 of 16 bytes says nothing
    // about the object and is left out (with a note) rather than failing the download.
    let content_md5 = header_str(headers, "content-md5").and_then(|v| {
        use base64::Engine as _;
        let md5 = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()
            .and_then(|b| <[u8; 16]>::try_from(b).ok());
        if md5.is_none() {
            tracing::warn!(
                value = v,
                "ignoring a Content-MD5 that is not base64 of 16 bytes"
            );
        }
        md5
    });
    let last_modified =
        header_str(headers, "last-modified").and_then(|v| httpdate::parse_http_date(v).ok());
    let info = ObjectInfo {
        size,
        etag: text("etag"),
        last_modified,
        version_id: text("x-oss-version-id"),
        crc64,
        content_md5,
        object_type: text("x-oss-object-type"),
        storage_class: text("x-oss-storage-class"),
        content_type: text("content-type"),
        request_id: request_id(headers).map(str::to_owned),
    };
    if info.is_appendable() {
        tracing::debug!(
            operation,
            "appendable object: its etag changes on append, If-Match pins this state"
        );
    }
    Ok(info)
}

#[async_trait::async_trait]
impl RangeSource for Bucket {
    /// `oss://BUCKET@HOST[:PORT]`: the endpoint and bucket, never credentials.
    fn identity(&self) -> String {
        format!("oss://{}@{}", self.name, self.core.endpoint.authority())
    }

    async fn stat(
        &self,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<resume_core::ObjectMeta, SourceError> {
        Ok(self.head_object(key, version_id).await?.into())
    }

    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        Ok(self.get(key, range, conditions, false).await?.read)
    }

    /// The GET's own headers describe the object: its size (`Content-Range`), etag, version,
    /// and the whole-object CRC-64 OSS sends on every GET, ranged or not; its `Content-MD5`
    /// only when the answer is the whole object (on a part of it, the header, if any, is not
    /// the object's).
    async fn read_described(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<DescribedRead, SourceError> {
        self.get(key, range, conditions, true).await
    }
}

impl Bucket {
    /// One ranged GET of `key`, and (`describe`) what its headers say about the object.
    async fn get(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
        describe: bool,
    ) -> Result<DescribedRead, SourceError> {
        if range.is_empty() {
            return Err(SourceError::new(
                SourceErrorKind::Other,
                format!(
                    "GetObject {}: empty range {}..{} requested",
                    self.display_key(key),
                    range.start,
                    range.end
                ),
            ));
        }
        let last = range.end - 1;
        let operation = format!(
            "GetObject {} bytes {}-{last}",
            self.display_key(key),
            range.start
        );
        let mut headers: Vec<(String, String)> = self.base_headers().collect();
        headers.push(("range".into(), format!("bytes={}-{last}", range.start)));
        // Without it OSS answers an unsatisfiable range with 200 and the whole object.
        headers.push(("x-oss-range-behavior".into(), "standard".into()));
        if let Some(etag) = &conditions.if_match {
            headers.push(("if-match".into(), etag.clone()));
        }
        let version = conditions
            .version_id
            .as_deref()
            .or(self.options.version_id.as_deref());
        let req = ObjectRequest {
            method: Method::GET,
            bucket: &self.name,
            key,
            query: version_query(version),
            headers,
            operation: &operation,
        };
        let response = self.core.send(&req).await?;
        let status = response.status().as_u16();
        let resp_headers = response.headers();
        let (declared, total_size) = match status {
            206 => {
                let value = header_str(resp_headers, "content-range").ok_or_else(|| {
                    malformed(
                        &operation,
                        "a 206 answer without Content-Range".into(),
                        resp_headers,
                        status,
                    )
                })?;
                parse_content_range(value.trim()).ok_or_else(|| {
                    malformed(
                        &operation,
                        format!("malformed Content-Range {value:?}"),
                        resp_headers,
                        status,
                    )
                })?
            }
            // The server ignored the range: declare the whole object, honestly; the engine
            // never takes it for the part it asked for.
            200 => {
                let len = header_str(resp_headers, "content-length")
                    .and_then(|v| parse_decimal(v.trim()))
                    .ok_or_else(|| {
                        malformed(
                            &operation,
                            "the server ignored the Range header (200) and sent no valid \
                             Content-Length"
                                .into(),
                            resp_headers,
                            status,
                        )
                    })?;
                (0..len, Some(len))
            }
            201..=299 => return Err(unexpected_status(&operation, status, resp_headers)),
            _ => return Err(error_from_response(&operation, response).await),
        };
        let object = match total_size {
            Some(total) if describe => Some(described(&operation, resp_headers, &declared, total)?),
            _ => None,
        };
        let etag = header_str(resp_headers, "etag").map(str::to_owned);
        let request_id = request_id(resp_headers).map(str::to_owned);
        let body = response
            .bytes_stream()
            .map(move |chunk| {
                chunk.map_err(|e| transport_error(&operation, e, request_id.as_deref()))
            })
            .boxed();
        Ok(DescribedRead {
            read: RangeRead {
                range: declared,
                total_size,
                etag,
                body,
            },
            object,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_parsed_strictly() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((0..100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-5/6"), Some((5..6, Some(6))));
        assert_eq!(parse_content_range("bytes 0-99/*"), Some((0..100, None)));
        for bad in [
            "bytes 0-99/99",
            "bytes 10-9/100",
            "bytes */100",
            "bytes -1-5/10",
            "bytes +1-5/10",
            "bytes 1 -5/10",
            "bytes 0-99",
            "bytes=0-99/100",
            "items 0-99/100",
            "bytes 0-18446744073709551616/*",
            "bytes 0-18446744073709551615/*",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_get_describes_the_object_with_its_crc_and_its_md5_only_when_whole() {
        use resume_core::integrity::Algorithm;
        let mut h = HeaderMap::new();
        h.insert("etag", "\"ABC\"".parse().unwrap());
        h.insert("x-oss-hash-crc64ecma", "12345".parse().unwrap());
        h.insert("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==".parse().unwrap());
        h.insert("x-oss-version-id", "v1".parse().unwrap());
        let algos = |m: &resume_core::ObjectMeta| -> Vec<Algorithm> {
            m.checksums.iter().map(|c| c.algorithm).collect()
        };
        let whole = described("GetObject k", &h, &(0..10), 10).unwrap();
        assert_eq!(whole.size, 10);
        assert_eq!(whole.etag.as_deref(), Some("\"ABC\""));
        assert_eq!(whole.version_id.as_deref(), Some("v1"));
        assert_eq!(algos(&whole), [Algorithm::Crc64Xz, Algorithm::Md5]);
        // A part of the object: the CRC-64 is still the whole object's, a Content-MD5 is not.
        let part = described("GetObject k", &h, &(0..4), 10).unwrap();
        assert_eq!(part.size, 10);
        assert_eq!(algos(&part), [Algorithm::Crc64Xz]);
        h.insert("x-oss-hash-crc64ecma", "-1".parse().unwrap());
        assert!(described("GetObject k", &h, &(0..10), 10).is_err());
    }

    #[test]
    fn decimal_parsing_rejects_signs_spaces_and_overflow() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(
            parse_decimal("18446744073709551615"),
            Some(18_446_744_073_709_551_615)
        );
        assert_eq!(parse_decimal("18446744073709551616"), None);
        assert_eq!(parse_decimal("+1"), None);
        assert_eq!(parse_decimal(" 1"), None);
        assert_eq!(parse_decimal(""), None);
    }
}
