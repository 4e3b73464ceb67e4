//! Google Cloud Storage through its JSON API: stat (`objects.get`), ranged reads
//! (`alt=media`) and listing (`objects.list`), signed with the bearer token of object_store's
//! own GCS credential provider and sent through the store's own (logged) HTTP client.
//!
//! Why not object_store's GCS reads: they use the XML API, which needs a `HEAD` for a stat and
//! an `ETag` and `Last-Modified` on every answer, and publishes no checksum object_store would
//! pass on. The JSON metadata has everything a verified download needs in one answer —
//! `size`, `generation`, `crc32c`, `md5Hash`, `contentEncoding`, `timeCreated` — and the
//! only GCS server the tests can run (PyPI `gcp-storage-emulator`) answers `HEAD` with 501,
//! sends no `ETag` on downloads and cannot list through the XML API, so object_store's GCS
//! client cannot read from it at all. See docs/ARCHITECTURE.md.
//!
//! * **Pinned by generation.** `stat` reports the etag `gs-generation:<N>` (the object's
//!   generation: a new upload is a new generation; a metadata update is not) and, only when a
//!   generation was asked for, that generation as the version. A read pinned to the etag sends
//!   `ifGenerationMatch=N` (another generation: 412 → `Changed`, so the engine restarts with
//!   the new object); a read of an asked version sends `generation=N` too. An answer carrying
//!   another `x-goog-generation` is `Changed`.
//! * **Checksums.** `crc32c` (CRC-32C of the stored bytes, combined from the parts' CRCs) and
//!   `md5Hash` (absent for composite objects), base64 of the big-endian digest, with origin
//!   `GCS`.
//! * **Never a transcoded body.** An object stored with `Content-Encoding: gzip` is served
//!   decompressed (and without `Range`) unless the request says `Accept-Encoding: gzip`, and
//!   its checksums describe the stored, compressed bytes. Every read says `Accept-Encoding:
//!   gzip` (GCS never compresses what is not stored compressed; object_store's HTTP client
//!   does not decompress), so the file is the object as stored. An answer whose
//!   `Content-Encoding` is not the stored one (`x-goog-stored-content-encoding`) — a body
//!   decompressed on the way, or encoded by something in between — is an error, never data.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use object_store::client::{HttpClient, HttpError, HttpRequest, HttpRequestBody, HttpResponse};
use object_store::gcp::GcpCredentialProvider;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use resume_core::{
    Algorithm, Checksum, ListPage, ListedObject, ObjectMeta, Origin, RangeRead, ReadConditions,
    SourceError, SourceErrorKind, request_log,
};
use serde_json::Value;

/// The etag prefix of a GCS object's generation.
const GENERATION_TAG: &str = "gs-generation:";

/// What a GCS source needs to speak the JSON API.
pub(crate) struct Gcs {
    /// The store's HTTP client (captured, with its logging, when object_store connected it).
    pub(crate) http: Arc<Mutex<Option<HttpClient>>>,
    /// `https://storage.googleapis.com`, or an emulator's `http://127.0.0.1:PORT`.
    pub(crate) base_url: String,
    pub(crate) bucket: String,
    /// `None` when requests are not signed (`google_skip_signature`).
    pub(crate) credentials: Option<GcpCredentialProvider>,
}

impl fmt::Debug for Gcs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gcs")
            .field("base_url", &resume_core::redact::redact_url(&self.base_url))
            .field("bucket", &self.bucket)
            .field("signed", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// What an operation was, for messages.
#[derive(Clone, Copy)]
enum What {
    Stat,
    Read,
    List,
}

impl What {
    fn text(self) -> &'static str {
        match self {
            What::Stat => "the metadata request",
            What::Read => "the ranged read",
            What::List => "the listing",
        }
    }
}

impl Gcs {
    fn objects_url(&self) -> String {
        format!(
            "{}/storage/v1/b/{}/o",
            self.base_url.trim_end_matches('/'),
            utf8_percent_encode(&self.bucket, NON_ALPHANUMERIC)
        )
    }

    fn object_url(&self, key: &str) -> Result<String, SourceError> {
        if key.is_empty() {
            return Err(SourceError::new(
                SourceErrorKind::Other,
                "an empty GCS object name was asked for; name an object (gs://bucket/key)",
            ));
        }
        Ok(format!(
            "{}/{}",
            self.objects_url(),
            utf8_percent_encode(key, NON_ALPHANUMERIC)
        ))
    }

    fn client(&self) -> Result<HttpClient, SourceError> {
        self.http
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                SourceError::new(
                    SourceErrorKind::Other,
                    "internal error: the GCS store has no HTTP client; please report this",
                )
            })
    }

    /// Signs and sends `GET url` with `headers`; any answer comes back (statuses are the
    /// caller's to judge), a failure to get one is `Transient`.
    async fn get(
        &self,
        url: &str,
        headers: &[(&str, String)],
        name: &str,
        what: What,
    ) -> Result<HttpResponse, SourceError> {
        let mut builder = http::Request::builder().method("GET").uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, v);
        }
        if let Some(provider) = &self.credentials {
            let credential = provider.get_credential().await.map_err(|e| {
                SourceError::new(
                    SourceErrorKind::Denied,
                    format!(
                        "no GCS credentials for {} of {name:?}: {}; set GOOGLE_SERVICE_ACCOUNT \
                         (a service account key file), GOOGLE_APPLICATION_CREDENTIALS, or \
                         GOOGLE_SKIP_SIGNATURE=true for a public bucket",
                        what.text(),
                        resume_core::redact::redact_text(&e.to_string())
                    ),
                )
                .with_hint("")
            })?;
            if !credential.bearer.is_empty() {
                builder = builder.header("authorization", format!("Bearer {}", credential.bearer));
            }
        }
        let request: HttpRequest = builder.body(HttpRequestBody::empty()).map_err(|_| {
            SourceError::new(
                SourceErrorKind::Other,
                format!(
                    "cannot build {} for {name:?} (check the endpoint)",
                    what.text()
                ),
            )
        })?;
        self.client()?
            .execute(request)
            .await
            .map_err(|e| transport(&e, name, what))
    }

    /// The object's metadata (`objects.get`).
    pub(crate) async fn stat(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<ObjectMeta, SourceError> {
        let mut url = self.object_url(key)?;
        if let Some(v) = version {
            url.push_str("?generation=");
            url.push_str(&utf8_percent_encode(v, NON_ALPHANUMERIC).to_string());
        }
        let response = self.get(&url, &[], key, What::Stat).await?;
        let response = check(response, key, What::Stat).await?;
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| transport(&e, key, What::Stat))?;
        let json: Value = serde_json::from_slice(&body).map_err(|e| {
            SourceError::new(
                SourceErrorKind::Other,
                format!("GCS answered the metadata request for {key:?} with invalid JSON: {e}"),
            )
        })?;
        let meta = Metadata::parse(&json, key)?;
        if let Some(v) = version
            && meta.generation != v
        {
            return Err(SourceError::new(
                SourceErrorKind::NotFound,
                format!(
                    "generation {v:?} of {key:?} was asked for and GCS answered with generation \
                     {:?}; it does not serve that generation (check the version id, and that \
                     the bucket keeps noncurrent versions)",
                    meta.generation
                ),
            ));
        }
        Ok(meta.object_meta(version.is_some()))
    }

    /// Bytes `range` of `key` (`alt=media`), pinned as the conditions say.
    pub(crate) async fn read(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        let mut url = format!("{}?alt=media", self.object_url(key)?);
        if let Some(v) = &conditions.version_id {
            url.push_str("&generation=");
            url.push_str(&utf8_percent_encode(v, NON_ALPHANUMERIC).to_string());
        }
        let pinned = match conditions.if_match.as_deref() {
            None => None,
            Some(tag) => Some(generation_of(tag).ok_or_else(|| {
                SourceError::new(
                    SourceErrorKind::Changed,
                    format!(
                        "{key:?} is pinned to {tag}, which is not a GCS generation (a checkpoint \
                         or listing of another kind of source?); the object is read again from \
                         its current generation"
                    ),
                )
            })?),
        };
        if let Some(g) = pinned {
            url.push_str("&ifGenerationMatch=");
            url.push_str(g);
        }
        if range.is_empty() {
            return Err(SourceError::new(
                SourceErrorKind::InvalidRange,
                format!("an empty range of {key:?} was asked for"),
            ));
        }
        let headers = [
            ("range", format!("bytes={}-{}", range.start, range.end - 1)),
            // The stored bytes, never decompressed on the way (see the module docs).
            ("accept-encoding", "gzip".to_owned()),
        ];
        let response = self.get(&url, &headers, key, What::Read).await?;
        let response = check(response, key, What::Read).await?;
        let head = response.headers();
        let header = |name: &str| {
            head.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let stored = header("x-goog-stored-content-encoding").unwrap_or("identity");
        let served = header("content-encoding").unwrap_or("identity");
        if !stored.eq_ignore_ascii_case(served) {
            return Err(SourceError::new(
                SourceErrorKind::Other,
                format!(
                    "GCS served {key:?} with Content-Encoding {served:?} while it is stored as \
                     {stored:?}: the body was transcoded (decompressed or re-encoded) on the \
                     way and is not the object's bytes, which its checksums describe; nothing \
                     was written. Download without a proxy that rewrites encodings, or set the \
                     object's Cache-Control to no-transform"
                ),
            ));
        }
        let generation = header("x-goog-generation").map(str::to_owned);
        if let (Some(want), Some(got)) = (pinned, generation.as_deref())
            && want != got
        {
            return Err(SourceError::new(
                SourceErrorKind::Changed,
                format!("GCS served generation {got} of {key:?}, the download is of {want}"),
            ));
        }
        let status = response.status().as_u16();
        let (declared, total) = if status == 206 {
            let value = header("content-range").unwrap_or("");
            let (r, total) =
                resume_core::http_syntax::parse_content_range(value).ok_or_else(|| {
                    SourceError::new(
                        SourceErrorKind::Transient,
                        format!(
                            "GCS answered the ranged read of {key:?} with 206 and Content-Range \
                             {value:?}, which is not a byte range"
                        ),
                    )
                })?;
            (r, total)
        } else {
            // A whole body: the engine takes it only when the whole object was asked for.
            let len = header("content-length").and_then(resume_core::http_syntax::parse_decimal);
            match len {
                Some(n) => (0..n, Some(n)),
                None => {
                    return Err(SourceError::new(
                        SourceErrorKind::Other,
                        format!(
                            "GCS answered the ranged read of {key:?} with the whole body of \
                             unknown length (a transcoded object?); it cannot be verified"
                        ),
                    ));
                }
            }
        };
        let name = key.to_owned();
        let body = response
            .into_body()
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| transport(&e, &name, What::Read)))
            .boxed();
        Ok(RangeRead {
            range: declared,
            total_size: total,
            etag: generation.map(|g| format!("{GENERATION_TAG}{g}")),
            body,
        })
    }

    /// One page of `objects.list` under `prefix` (a string prefix), after `start` (a key:
    /// `startOffset`, and filtered here too, as a server may ignore it), at most `max`
    /// objects. `next` is the last key returned when the listing may go on.
    pub(crate) async fn list_page(
        &self,
        prefix: &str,
        start: Option<&str>,
        max: usize,
    ) -> Result<ListPage, SourceError> {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let mut objects = Vec::new();
        let mut page_token: Option<String> = None;
        // A server page may hold only keys at or before `start` (a server ignoring
        // startOffset): follow its tokens until there is something to return, bounded.
        for _ in 0..10_000 {
            let mut url = format!(
                "{}?prefix={}&maxResults={max}&projection=noAcl",
                self.objects_url(),
                enc(prefix)
            );
            if let Some(s) = start {
                url.push_str("&startOffset=");
                url.push_str(&enc(s));
            }
            if let Some(t) = &page_token {
                url.push_str("&pageToken=");
                url.push_str(&enc(t));
            }
            let response = self.get(&url, &[], prefix, What::List).await?;
            let response = check(response, prefix, What::List).await?;
            let body = response
                .into_body()
                .bytes()
                .await
                .map_err(|e| transport(&e, prefix, What::List))?;
            let json: Value = serde_json::from_slice(&body).map_err(|e| {
                SourceError::new(
                    SourceErrorKind::Other,
                    format!("GCS answered the listing of {prefix:?} with invalid JSON: {e}"),
                )
            })?;
            let items = json.get("items").and_then(Value::as_array);
            let mut truncated = false;
            for item in items.into_iter().flatten() {
                let meta = Metadata::parse(item, prefix)?;
                if !meta.name.starts_with(prefix) || start.is_some_and(|s| meta.name.as_str() <= s)
                {
                    continue;
                }
                if objects.len() == max {
                    truncated = true;
                    break;
                }
                let key = meta.name.clone();
                objects.push(ListedObject {
                    key,
                    meta: meta.object_meta(false),
                });
            }
            page_token = json
                .get("nextPageToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if truncated || (page_token.is_some() && !objects.is_empty()) {
                let next = objects.last().map(|o| o.key.clone());
                return Ok(ListPage { objects, next });
            }
            if page_token.is_none() {
                return Ok(ListPage {
                    objects,
                    next: None,
                });
            }
        }
        Err(SourceError::new(
            SourceErrorKind::Other,
            format!("GCS listing of {prefix:?} did not end after 10 000 empty pages"),
        ))
    }
}

/// What `objects.get` / `objects.list` say about one object.
#[derive(Debug)]
struct Metadata {
    name: String,
    size: u64,
    generation: String,
    created: Option<SystemTime>,
    crc32c: Option<Vec<u8>>,
    md5: Option<Vec<u8>>,
}

impl Metadata {
    fn parse(json: &Value, key: &str) -> Result<Self, SourceError> {
        let bad = |what: &str| {
            SourceError::new(
                SourceErrorKind::Other,
                format!("GCS metadata of {key:?} has {what}; it cannot be downloaded safely"),
            )
        };
        let text = |field: &str| json.get(field).and_then(Value::as_str);
        // Numbers are strings in the JSON API (int64); accept plain numbers too.
        let number = |field: &str| match json.get(field) {
            Some(Value::String(s)) => resume_core::http_syntax::parse_decimal(s),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        let name = text("name").unwrap_or(key).to_owned();
        let size = number("size").ok_or_else(|| bad("no size"))?;
        let generation = match json.get("generation") {
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.clone()
            }
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            _ => return Err(bad("no generation")),
        };
        let digest = |field: &str, len: usize| -> Result<Option<Vec<u8>>, SourceError> {
            match text(field) {
                None | Some("") => Ok(None),
                Some(b64) => B64
                    .decode(b64)
                    .ok()
                    .filter(|v| v.len() == len)
                    .map(Some)
                    .ok_or_else(|| bad(&format!("{field} {b64:?}, which is not a base64 digest"))),
            }
        };
        Ok(Self {
            crc32c: digest("crc32c", 4)?,
            md5: digest("md5Hash", 16)?,
            created: text("timeCreated").and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
            name,
            size,
            generation,
        })
    }

    /// The engine's view: pinned by generation (see the module docs).
    fn object_meta(self, versioned: bool) -> ObjectMeta {
        let origin = || Origin::Store("GCS".into());
        let mut checksums = Vec::new();
        if let Some(v) = self.crc32c
            && let Ok(c) = Checksum::new(Algorithm::Crc32c, v, origin())
        {
            checksums.push(c);
        }
        if let Some(v) = self.md5
            && let Ok(c) = Checksum::new(Algorithm::Md5, v, origin())
        {
            checksums.push(c);
        }
        ObjectMeta {
            size: self.size,
            etag: Some(format!("{GENERATION_TAG}{}", self.generation)),
            // `timeCreated`: when this generation was written (`updated` also moves on
            // metadata changes, which do not change the bytes).
            last_modified: self.created,
            version_id: versioned.then_some(self.generation),
            checksums,
            checksum_note: None,
        }
    }
}

/// The generation in an etag this module made.
fn generation_of(tag: &str) -> Option<&str> {
    let g = tag.trim_matches('"').strip_prefix(GENERATION_TAG)?;
    (!g.is_empty() && g.bytes().all(|b| b.is_ascii_digit())).then_some(g)
}

/// A request that got no answer.
fn transport(e: &HttpError, name: &str, what: What) -> SourceError {
    SourceError::new(
        SourceErrorKind::Transient,
        format!(
            "GCS {} for {name:?} failed: {}",
            what.text(),
            resume_core::redact::redact_text(&crate::error::chain_text(e))
        ),
    )
}

/// The answer if it is a success; otherwise the error it means, with GCS's own message.
async fn check(
    response: HttpResponse,
    name: &str,
    what: What,
) -> Result<HttpResponse, SourceError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let request_id = request_log::request_id(
        response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
    );
    // `{"error": {"code": 404, "message": "No such object: b/k", ...}}`, bounded.
    let body = response.into_body().bytes().await.unwrap_or_default();
    let said = serde_json::from_slice::<Value>(&body[..body.len().min(64 << 10)])
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .map(|m| format!(": {}", resume_core::redact::redact_text(&m)))
        .unwrap_or_default();
    let (kind, why) = match (status, what) {
        (401 | 403, _) => (
            SourceErrorKind::Denied,
            "check the credentials (GOOGLE_SERVICE_ACCOUNT, GOOGLE_APPLICATION_CREDENTIALS) and \
             that they may read the bucket",
        ),
        (404, What::List) => (SourceErrorKind::NotFound, "check the bucket name"),
        (404, _) => (SourceErrorKind::NotFound, "check the bucket and key"),
        (412, What::Read) => (
            SourceErrorKind::Changed,
            "the object was replaced by another generation",
        ),
        (416, _) => (SourceErrorKind::InvalidRange, "the range is past the end"),
        (501 | 505, _) => (SourceErrorKind::Other, "the server does not support it"),
        (408 | 429 | 500..=599, _) => (SourceErrorKind::Transient, "worth retrying"),
        _ => (SourceErrorKind::Other, "unexpected answer"),
    };
    let mut e = SourceError::new(
        kind,
        format!(
            "GCS answered {} for {name:?} with HTTP {status}{said} ({why})",
            what.text()
        ),
    )
    .with_status(status);
    if let Some(id) = request_id {
        e = e.with_request_id(id);
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_gives_size_generation_checksums_and_creation_time() {
        let json: Value = serde_json::from_str(
            r#"{"name":"dir/obj.bin","size":"100000","generation":"1796197826939898103",
                "timeCreated":"2026-12-02T07:50:26.939903Z","updated":"2027-01-01T00:00:00Z",
                "md5Hash":"717vUAxGkHQcYdGj09XwQA==","crc32c":"9UuHiw==",
                "etag":"717vUAxGkHQcYdGj09XwQA=="}"#,
        )
        .unwrap();
        let meta = Metadata::parse(&json, "dir/obj.bin")
            .unwrap()
            .object_meta(false);
        assert_eq!(meta.size, 100_000);
        assert_eq!(
            meta.etag.as_deref(),
            Some("gs-generation:1796197826939898103")
        );
        assert_eq!(meta.version_id, None);
        assert_eq!(
            meta.last_modified,
            Some(humantime::parse_rfc3339("2026-12-02T07:50:26.939903Z").unwrap())
        );
        let algs: Vec<_> = meta.checksums.iter().map(|c| c.algorithm).collect();
        assert_eq!(algs, [Algorithm::Crc32c, Algorithm::Md5]);
        assert_eq!(meta.checksums[0].value, B64.decode("9UuHiw==").unwrap());
        assert!(
            meta.checksums
                .iter()
                .all(|c| c.origin == Origin::Store("GCS".into()))
        );
    }

    #[test]
    fn a_composite_object_has_only_its_crc32c_and_an_asked_generation_is_the_version() {
        let json: Value = serde_json::from_str(
            r#"{"name":"c","size":"3","generation":"7","crc32c":"AAAAAA==","componentCount":2}"#,
        )
        .unwrap();
        let meta = Metadata::parse(&json, "c").unwrap().object_meta(true);
        assert_eq!(meta.version_id.as_deref(), Some("7"));
        assert_eq!(meta.checksums.len(), 1);
        assert_eq!(meta.checksums[0].algorithm, Algorithm::Crc32c);
    }

    #[test]
    fn metadata_without_size_or_generation_or_with_a_bad_digest_is_refused() {
        for bad in [
            r#"{"generation":"1"}"#,
            r#"{"size":"1"}"#,
            r#"{"size":"1","generation":"x1"}"#,
            r#"{"size":"1","generation":"1","crc32c":"not base64!"}"#,
            r#"{"size":"1","generation":"1","md5Hash":"AAAAAA=="}"#,
        ] {
            let json: Value = serde_json::from_str(bad).unwrap();
            let e = Metadata::parse(&json, "k").unwrap_err();
            assert_eq!(e.kind, SourceErrorKind::Other, "{bad}");
            assert!(e.message.contains("\"k\""), "{bad}: {e}");
        }
    }

    #[test]
    fn only_generation_tags_pin_reads() {
        assert_eq!(generation_of("gs-generation:42"), Some("42"));
        assert_eq!(generation_of("\"gs-generation:42\""), Some("42"));
        for other in ["42", "\"abc\"", "gs-generation:", "gs-generation:4a"] {
            assert_eq!(generation_of(other), None, "{other}");
        }
    }

    #[test]
    fn object_names_are_encoded_whole() {
        let gcs = Gcs {
            http: Arc::new(Mutex::new(None)),
            base_url: "http://127.0.0.1:9/".into(),
            bucket: "bkt".into(),
            credentials: None,
        };
        assert_eq!(
            gcs.object_url("dir/a b+c%.bin").unwrap(),
            "http://127.0.0.1:9/storage/v1/b/bkt/o/dir%2Fa%20b%2Bc%25%2Ebin"
        );
    }
}
