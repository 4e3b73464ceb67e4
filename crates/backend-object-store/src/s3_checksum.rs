//! What an S3 object's checksums are, which object_store does not expose: one HEAD with
//! `x-amz-checksum-mode: ENABLED`, signed by object_store's own SigV4 signer
//! ([`AwsAuthorizer`]) with the store's own credential provider, sent by the store's own HTTP
//! client to the URL object_store itself would use (same endpoint, addressing and region).
//!
//! * `FULL_OBJECT` CRC-32 / CRC-32C / CRC-64/NVME (and SHA when S3 has one for a single-part
//!   upload): published as full-object checksums; the engine combines part CRCs.
//! * `COMPOSITE` (`…-N`, multipart uploads): the upload part sizes are learnt from
//!   `GetObjectAttributes` (`ObjectParts`) or, when it does not list them, one
//!   `HEAD ?partNumber=n` per part; published as [`Scope::Composite`](resume_core::integrity::Scope::Composite).
//! * No checksum: a single-part ETag that is an MD5 (32 hex digits, no `-N`, not SSE-KMS or
//!   SSE-C) is published as the object's MD5 (origin `S3 ETag`).
//! * Checksum mode refused (403/400: reading a KMS-encrypted object's checksum needs
//!   `kms:Decrypt`): nothing is published, and [`ObjectMeta::checksum_note`] says why.
//!
//! Credentials and signatures never leave this module: errors name the status, the S3 error
//! code and the key, never a header or the request's authorisation.
//!
//! [`ObjectMeta::checksum_note`]: resume_core::ObjectMeta::checksum_note

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody, HttpResponse};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use resume_core::http_syntax::parse_decimal;
use resume_core::{
    Algorithm, Checksum, DescribedRead, ObjectMeta, Origin, RangeRead, ReadConditions, SourceError,
    SourceErrorKind,
};

/// How S3 (and object_store) encode a key in a path: every byte but `A-Za-z0-9-._~/`.
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// A query value: the same without `/`.
const QUERY_SET: &AsciiSet = &PATH_SET.add(b'/');

/// At most this many upload parts are asked about one by one (S3 allows 10 000).
const MAX_PARTS: u64 = 10_000;
/// Part HEADs in flight at once.
const PART_HEADS_IN_FLIGHT: usize = 8;

/// The checksum headers S3 sends, CRCs first.
const HEADERS: [(&str, Algorithm); 5] = [
    ("x-amz-checksum-crc64nvme", Algorithm::Crc64Nvme),
    ("x-amz-checksum-crc32c", Algorithm::Crc32c),
    ("x-amz-checksum-crc32", Algorithm::Crc32),
    ("x-amz-checksum-sha256", Algorithm::Sha256),
    ("x-amz-checksum-sha1", Algorithm::Sha1),
];

fn s3() -> Origin {
    Origin::Store("S3".into())
}

/// What an S3 source needs to ask for checksums.
pub(crate) struct S3Checksums {
    /// The store's HTTP client (captured when object_store connected it).
    pub(crate) http: Arc<Mutex<Option<HttpClient>>>,
    /// `https://s3.REGION.amazonaws.com/BUCKET`, `http://127.0.0.1:9000/BUCKET`, or the
    /// virtual-hosted form: what object_store prefixes keys with.
    pub(crate) bucket_endpoint: String,
    pub(crate) region: String,
    /// `None` when requests are not signed (`aws_skip_signature`).
    pub(crate) credentials: Option<AwsCredentialProvider>,
    pub(crate) request_payer: bool,
}

impl fmt::Debug for S3Checksums {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Checksums")
            .field(
                "bucket_endpoint",
                &resume_core::redact::redact_url(&self.bucket_endpoint),
            )
            .field("region", &self.region)
            .field("signed", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// What S3 published for an object.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) checksums: Vec<Checksum>,
    pub(crate) note: Option<String>,
}

/// The object a stat described, which every request here is pinned to.
pub(crate) struct Pinned<'a> {
    pub(crate) key: &'a str,
    pub(crate) etag: Option<&'a str>,
    pub(crate) version: Option<&'a str>,
    pub(crate) size: u64,
}

/// One checksum header as S3 sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    algorithm: Algorithm,
    value: Vec<u8>,
    /// `N` of a `…-N` value: a composite over N parts.
    parts: Option<u64>,
}

impl S3Checksums {
    /// Asks S3 for the checksums of the object `pinned` describes.
    pub(crate) async fn published(&self, pinned: &Pinned<'_>) -> Result<Published, SourceError> {
        let response = self
            .send(
                "HEAD",
                pinned,
                &[],
                &[("x-amz-checksum-mode", "ENABLED")],
                true,
            )
            .await?;
        let status = response.status().as_u16();
        if matches!(status, 400 | 403) {
            return Ok(Published {
                checksums: Vec::new(),
                note: Some(format!(
                    "S3 refused to give the object's checksums (HTTP {status} to a HEAD with \
                     x-amz-checksum-mode: ENABLED; for a KMS-encrypted object that needs \
                     kms:Decrypt on its key), so only its size and ETag were checked"
                )),
            });
        }
        check_status(status, pinned.key, "the checksum HEAD")?;
        self.interpret(pinned, response.headers()).await
    }

    /// What the checksum headers of an answer to a request with `x-amz-checksum-mode:
    /// ENABLED` (a HEAD, or a whole-object GET) say about the object `pinned` describes; asks
    /// S3 for a composite checksum's part sizes when it needs them.
    async fn interpret(
        &self,
        pinned: &Pinned<'_>,
        headers: &http::HeaderMap,
    ) -> Result<Published, SourceError> {
        let text = |name: &str| header_text(headers, name);
        let mut found = Vec::new();
        for (name, algorithm) in HEADERS {
            if let Some(v) = text(name) {
                found.push(parse_header(algorithm, &v).map_err(|why| {
                    SourceError::new(
                        SourceErrorKind::Other,
                        format!(
                            "S3 sent {name}: {v:?} for {:?}, which is not a {algorithm} \
                             checksum ({why}); the object cannot be verified against it",
                            pinned.key
                        ),
                    )
                })?);
            }
        }
        let etag = pinned.etag.map(str::to_owned).or_else(|| text("etag"));
        if found.is_empty() {
            let sse = text("x-amz-server-side-encryption");
            let sse_c = text("x-amz-server-side-encryption-customer-algorithm");
            return Ok(Published {
                checksums: md5_etag(etag.as_deref(), sse.as_deref(), sse_c.is_some())
                    .into_iter()
                    .collect(),
                note: None,
            });
        }
        let multipart = etag.as_deref().and_then(etag_parts);
        let mut kind = text("x-amz-checksum-type").map(|t| t.to_ascii_uppercase());
        let mut attributes = None;
        if kind.is_none() && found.iter().all(|h| h.parts.is_none()) {
            kind = match multipart {
                // A single-part upload's checksum is of the whole object; CRC-64/NVME is
                // only ever full-object.
                None => Some("FULL_OBJECT".into()),
                Some(_) if found.iter().all(|h| h.algorithm == Algorithm::Crc64Nvme) => {
                    Some("FULL_OBJECT".into())
                }
                Some(_) => {
                    let a = self.attributes(pinned).await?;
                    let t = a.as_ref().and_then(|a| a.checksum_type.clone());
                    attributes = a;
                    t
                }
            };
        }
        let composite = match kind.as_deref() {
            Some("COMPOSITE") => true,
            Some("FULL_OBJECT") => false,
            Some(_) | None if found.iter().any(|h| h.parts.is_some()) => true,
            other => {
                return Ok(Published {
                    checksums: Vec::new(),
                    note: Some(format!(
                        "S3 did not say whether the object's {} is of the whole object or \
                         composite ({}), so it was not checked",
                        found[0].algorithm,
                        match other {
                            Some(t) => format!("x-amz-checksum-type: {t}"),
                            None => "no x-amz-checksum-type".into(),
                        }
                    )),
                });
            }
        };
        if !composite {
            let checksums = found
                .into_iter()
                .map(|h| Checksum::new(h.algorithm, h.value, s3()))
                .collect::<Result<_, _>>()
                .map_err(|e| SourceError::new(SourceErrorKind::Other, e.to_string()))?;
            return Ok(Published {
                checksums,
                note: None,
            });
        }
        let count = found.iter().find_map(|h| h.parts).or(multipart);
        let sizes = match attributes.and_then(|a| a.part_sizes) {
            Some(sizes) => Some(sizes),
            None => self.part_sizes(pinned, count).await?,
        };
        let Some(sizes) = sizes.filter(|s| {
            s.iter().sum::<u64>() == pinned.size && count.is_none_or(|n| n == s.len() as u64)
        }) else {
            return Ok(Published {
                checksums: Vec::new(),
                note: Some(format!(
                    "the object's {} is composite (a multipart upload) and S3 did not give \
                     its part sizes consistently, so it was not checked",
                    found[0].algorithm
                )),
            });
        };
        let checksums = found
            .into_iter()
            .map(|h| Checksum::composite(h.algorithm, h.value, sizes.clone(), s3()))
            .collect::<Result<_, _>>()
            .map_err(|e| SourceError::new(SourceErrorKind::Other, e.to_string()))?;
        Ok(Published {
            checksums,
            note: None,
        })
    }

    /// The whole object in one GET with `x-amz-checksum-mode: ENABLED`, signed and sent like
    /// the checksum HEAD (pinned with `If-Match` and the version when `conditions` name
    /// them): its bytes, and from the same answer its size, etag, version, last-modified and
    /// checksums, read as the checksum HEAD's are. No `Range` header: S3 publishes an object's
    /// checksums on a GET of all of it, not on ranged GETs. `None` when S3 did not answer 200
    /// with a length (an error, checksum mode refused for a KMS object, no client): the caller
    /// reads the usual way, whose error mapping explains a failure.
    pub(crate) async fn read_whole(
        &self,
        key: &str,
        conditions: &ReadConditions,
    ) -> Result<Option<DescribedRead>, SourceError> {
        let asked = Pinned {
            key,
            etag: conditions.if_match.as_deref(),
            version: conditions.version_id.as_deref(),
            size: 0,
        };
        let response = match self
            .send(
                "GET",
                &asked,
                &[],
                &[("x-amz-checksum-mode", "ENABLED")],
                true,
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
        let version_id = text("x-amz-version-id");
        let last_modified = text("last-modified").and_then(|v| httpdate::parse_http_date(&v).ok());
        let published = self
            .interpret(
                &Pinned {
                    key,
                    etag: etag.as_deref().or(asked.etag),
                    version: version_id.as_deref().or(asked.version),
                    size,
                },
                &headers,
            )
            .await?;
        let body = whole_body(response, "S3", key);
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
                last_modified,
                version_id,
                checksums: published.checksums,
                checksum_note: published.note,
            }),
        }))
    }

    /// `GetObjectAttributes` (`Checksum`, `ObjectParts`): the checksum type and, when S3 lists
    /// every part, their sizes. `None` when S3 does not answer it (permissions, or a server
    /// that does not implement it).
    async fn attributes(&self, pinned: &Pinned<'_>) -> Result<Option<Attributes>, SourceError> {
        let mut all = Attributes::default();
        let mut sizes = Vec::new();
        let mut marker = 0u64;
        loop {
            let marker_text = marker.to_string();
            let headers = [
                ("x-amz-object-attributes", "Checksum,ObjectParts"),
                ("x-amz-max-parts", "1000"),
                ("x-amz-part-number-marker", marker_text.as_str()),
            ];
            let response = self
                .send("GET", pinned, &[("attributes", "")], &headers, true)
                .await?;
            let status = response.status().as_u16();
            if !(200..300).contains(&status) {
                if status >= 500 || status == 429 {
                    check_status(status, pinned.key, "GetObjectAttributes")?;
                }
                return Ok(None);
            }
            let body = response.into_body().bytes().await.map_err(|e| {
                transient(format!(
                    "reading S3's GetObjectAttributes answer for {:?} failed: {e}",
                    pinned.key
                ))
            })?;
            let page = Attributes::parse(&body);
            if all.checksum_type.is_none() {
                all.checksum_type = page.checksum_type.clone();
            }
            let Some(page_sizes) = page.part_sizes else {
                return Ok(Some(all));
            };
            sizes.extend(page_sizes);
            match page.next_marker {
                Some(next) if page.truncated && next > marker => marker = next,
                _ => break,
            }
            if sizes.len() as u64 > MAX_PARTS {
                return Ok(Some(all));
            }
        }
        all.part_sizes = (!sizes.is_empty()).then_some(sizes);
        Ok(Some(all))
    }

    /// The upload part sizes from `HEAD ?partNumber=n`, n = 1…count (`count` from the first
    /// answer's `x-amz-mp-parts-count` when not known). `None` if S3 does not say.
    async fn part_sizes(
        &self,
        pinned: &Pinned<'_>,
        count: Option<u64>,
    ) -> Result<Option<Vec<u64>>, SourceError> {
        let first = self.part_head(pinned, 1).await?;
        let Some((first_size, said_count)) = first else {
            return Ok(None);
        };
        let Some(count) = said_count
            .or(count)
            .filter(|&n| (1..=MAX_PARTS).contains(&n))
        else {
            return Ok(None);
        };
        let rest: Vec<Option<(u64, Option<u64>)>> = futures::stream::iter(2..=count)
            .map(|n| self.part_head(pinned, n))
            .buffered(PART_HEADS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut sizes = vec![first_size];
        for r in rest {
            let Some((size, _)) = r else {
                return Ok(None);
            };
            sizes.push(size);
        }
        Ok(Some(sizes))
    }

    /// One `HEAD ?partNumber=n`: the part's size and the parts count S3 gave.
    async fn part_head(
        &self,
        pinned: &Pinned<'_>,
        n: u64,
    ) -> Result<Option<(u64, Option<u64>)>, SourceError> {
        let n_text = n.to_string();
        // Not pinned with If-Match: some servers compare it with the part's own ETag. The
        // sizes must add up to the pinned object's size, and the download itself is pinned.
        let response = self
            .send("HEAD", pinned, &[("partNumber", &n_text)], &[], false)
            .await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            if status >= 500 || status == 429 {
                check_status(status, pinned.key, "a part HEAD")?;
            }
            return Ok(None);
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Ok(header("content-length").map(|len| (len, header("x-amz-mp-parts-count"))))
    }

    /// Sends one signed request about the pinned object.
    async fn send(
        &self,
        method: &str,
        pinned: &Pinned<'_>,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        if_match: bool,
    ) -> Result<HttpResponse, SourceError> {
        let http = self
            .http
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                SourceError::new(
                    SourceErrorKind::Other,
                    "internal error: the S3 store has no HTTP client for checksum requests; \
                     please report this",
                )
            })?;
        let mut url = format!(
            "{}/{}",
            self.bucket_endpoint.trim_end_matches('/'),
            utf8_percent_encode(pinned.key, PATH_SET)
        );
        let mut pairs: Vec<(&str, &str)> = query.to_vec();
        if let Some(v) = pinned.version {
            pairs.push(("versionId", v));
        }
        // Sorted, as SigV4's canonical query string (object_store signs the URL's query).
        pairs.sort_unstable();
        for (i, (k, v)) in pairs.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            if !v.is_empty() || *k != "attributes" {
                url.push('=');
                url.push_str(&utf8_percent_encode(v, QUERY_SET).to_string());
            }
        }
        let mut builder = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if if_match && let Some(tag) = pinned.etag {
            builder = builder.header("if-match", tag);
        }
        let mut request: HttpRequest = builder.body(HttpRequestBody::empty()).map_err(|e| {
            SourceError::new(
                SourceErrorKind::Other,
                format!(
                    "cannot build the S3 checksum request for {:?}: {e}",
                    pinned.key
                ),
            )
        })?;
        if let Some(provider) = &self.credentials {
            let credential = provider.get_credential().await.map_err(|e| {
                SourceError::new(
                    SourceErrorKind::Denied,
                    format!(
                        "no AWS credentials to ask S3 for the checksums of {:?}: {}",
                        pinned.key,
                        resume_core::redact::redact_text(&e.to_string())
                    ),
                )
            })?;
            AwsAuthorizer::new(&credential, "s3", &self.region)
                .with_request_payer(self.request_payer)
                .try_authorize(&mut request, None)
                .map_err(|_| {
                    SourceError::new(
                        SourceErrorKind::Other,
                        format!("cannot sign the S3 checksum request for {:?}", pinned.key),
                    )
                })?;
        }
        http.execute(request).await.map_err(|e| {
            transient(format!(
                "S3 checksum request for {:?} failed: {}",
                pinned.key,
                resume_core::redact::redact_text(&e.to_string())
            ))
        })
    }
}

fn transient(message: String) -> SourceError {
    SourceError::new(SourceErrorKind::Transient, message)
}

/// The failures of a checksum request that are not "S3 will not say".
fn check_status(status: u16, key: &str, what: &str) -> Result<(), SourceError> {
    check_store_status("S3", status, key, what)
}

/// A checksum request's status as the engine's error kinds (`store` names the service).
/// A header's value, trimmed, when it is present, text and not empty.
pub(crate) fn header_text(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The body of a GET of our own (`read_whole`), streamed to the engine: a failure while
/// reading it is transient (the engine retries, pinned to the etag).
pub(crate) fn whole_body(
    response: HttpResponse,
    store: &'static str,
    key: &str,
) -> futures::stream::BoxStream<'static, Result<bytes::Bytes, SourceError>> {
    let shown = key.to_owned();
    response
        .into_body()
        .bytes_stream()
        .map(move |chunk| {
            chunk.map_err(|e| {
                transient(format!(
                    "reading {shown:?} from {store} failed: {}",
                    resume_core::redact::redact_text(&e.to_string())
                ))
            })
        })
        .boxed()
}

pub(crate) fn check_store_status(
    store: &str,
    status: u16,
    key: &str,
    what: &str,
) -> Result<(), SourceError> {
    let e = |kind, why: &str| {
        Err(SourceError::new(
            kind,
            format!("{store} answered {what} for {key:?} with HTTP {status}: {why}"),
        )
        .with_status(status))
    };
    match status {
        200..=299 => Ok(()),
        401 | 403 => e(
            SourceErrorKind::Denied,
            "the credentials may not read the object's properties",
        ),
        404 => e(SourceErrorKind::NotFound, "the object is gone"),
        // Replaced between the stat and this request: the next stat sees the new one.
        412 => e(
            SourceErrorKind::Transient,
            "the object changed since its metadata was read",
        ),
        408 | 429 | 500..=599 => e(SourceErrorKind::Transient, "worth retrying"),
        _ => e(SourceErrorKind::Other, "unexpected answer"),
    }
}

/// `base64[-N]` → the digest and N.
fn parse_header(algorithm: Algorithm, v: &str) -> Result<Header, String> {
    let (b64, parts) = match v.rsplit_once('-') {
        Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
            (b, Some(n.parse::<u64>().map_err(|e| e.to_string())?))
        }
        _ => (v, None),
    };
    let value = B64.decode(b64).map_err(|e| format!("not base64: {e}"))?;
    if value.len() != algorithm.value_len() {
        return Err(format!(
            "{} bytes, a {algorithm} has {}",
            value.len(),
            algorithm.value_len()
        ));
    }
    Ok(Header {
        algorithm,
        value,
        parts,
    })
}

/// `N` of a multipart ETag `"…-N"`.
fn etag_parts(etag: &str) -> Option<u64> {
    let (_, n) = etag.trim_matches('"').rsplit_once('-')?;
    n.parse().ok()
}

/// The object's MD5 from its ETag, when the ETag is one: a single-part upload (32 hex
/// digits, no `-N`) not encrypted with SSE-KMS (`aws:kms`, `aws:kms:dsse`) or SSE-C.
fn md5_etag(etag: Option<&str>, sse: Option<&str>, sse_c: bool) -> Option<Checksum> {
    let hex = etag?.trim().trim_start_matches("W/").trim_matches('"');
    if hex.len() != 32 || sse_c || sse.is_some_and(|s| s.starts_with("aws:kms")) {
        return None;
    }
    let value = resume_core::integrity::parse_hex(hex)?;
    Checksum::new(Algorithm::Md5, value, Origin::Store("S3 ETag".into())).ok()
}

/// What `GetObjectAttributes` said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Attributes {
    checksum_type: Option<String>,
    part_sizes: Option<Vec<u64>>,
    truncated: bool,
    next_marker: Option<u64>,
}

impl Attributes {
    /// Reads the elements it needs wherever they are (S3 and S3-compatible servers nest them
    /// slightly differently); anything unreadable is simply absent.
    fn parse(xml: &[u8]) -> Self {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_reader(xml);
        let mut path: Vec<String> = Vec::new();
        let mut out = Attributes::default();
        let mut sizes = Vec::new();
        let mut buf = Vec::new();
        loop {
            match reader.read_event_into(&mut buf) {
                Ok(Event::Start(e)) => {
                    path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                }
                Ok(Event::End(_)) => {
                    path.pop();
                }
                Ok(Event::Text(t)) => {
                    let text = String::from_utf8_lossy(t.as_ref()).trim().to_owned();
                    let name = path.last().map(String::as_str).unwrap_or_default();
                    let parent = path
                        .len()
                        .checked_sub(2)
                        .and_then(|i| path.get(i))
                        .map(String::as_str)
                        .unwrap_or_default();
                    match (parent, name) {
                        ("Checksum", "ChecksumType") => out.checksum_type = Some(text),
                        ("Part", "Size") => {
                            if let Ok(n) = text.parse() {
                                sizes.push(n);
                            }
                        }
                        ("ObjectParts", "IsTruncated") => out.truncated = text == "true",
                        ("ObjectParts", "NextPartNumberMarker") => {
                            out.next_marker = text.parse().ok();
                        }
                        _ => {}
                    }
                }
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => {}
            }
            buf.clear();
        }
        out.part_sizes = (!sizes.is_empty()).then_some(sizes);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_into_digests_and_part_counts() {
        let h = parse_header(Algorithm::Crc32, "AAAAAQ==").unwrap();
        assert_eq!((h.value, h.parts), (vec![0, 0, 0, 1], None));
        let h = parse_header(Algorithm::Crc32c, "AAAAAQ==-3").unwrap();
        assert_eq!((h.value, h.parts), (vec![0, 0, 0, 1], Some(3)));
        let h = parse_header(Algorithm::Crc64Nvme, "AAAAAAAAAAE=").unwrap();
        assert_eq!(h.value, [0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(parse_header(Algorithm::Crc64Nvme, "AAAAAQ==").is_err());
        assert!(parse_header(Algorithm::Crc32, "not base64!").is_err());
    }

    #[test]
    fn an_etag_is_an_md5_only_for_single_part_uploads_without_kms_or_customer_keys() {
        let md5 = "\"9e107d9d372bb6826bd81d3542a419d6\"";
        let c = md5_etag(Some(md5), None, false).unwrap();
        assert_eq!(c.describe(), "MD5 full-object (S3 ETag)");
        assert_eq!(c.hex(), "9e107d9d372bb6826bd81d3542a419d6");
        assert!(md5_etag(Some(md5), Some("AES256"), false).is_some());
        assert!(md5_etag(Some(md5), Some("aws:kms"), false).is_none());
        assert!(md5_etag(Some(md5), Some("aws:kms:dsse"), false).is_none());
        assert!(md5_etag(Some(md5), None, true).is_none());
        assert!(md5_etag(Some("\"9e107d9d372bb6826bd81d3542a419d6-2\""), None, false).is_none());
        assert!(md5_etag(Some("\"zz107d9d372bb6826bd81d3542a419d6\""), None, false).is_none());
        assert!(md5_etag(None, None, false).is_none());
        assert_eq!(etag_parts("\"abc-12\""), Some(12));
        assert_eq!(etag_parts(md5), None);
    }

    #[test]
    fn object_attributes_give_the_type_and_the_part_sizes() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<GetObjectAttributesResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <ETag>abc-2</ETag>
  <Checksum><ChecksumCRC32>AAAAAQ==</ChecksumCRC32><ChecksumType>COMPOSITE</ChecksumType></Checksum>
  <ObjectParts>
    <TotalPartsCount>2</TotalPartsCount><PartNumberMarker>0</PartNumberMarker>
    <NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>1000</MaxParts>
    <IsTruncated>false</IsTruncated>
    <Part><PartNumber>1</PartNumber><Size>5242880</Size></Part>
    <Part><PartNumber>2</PartNumber><Size>17</Size></Part>
  </ObjectParts>
  <ObjectSize>5242897</ObjectSize>
</GetObjectAttributesResponse>"#;
        let a = Attributes::parse(xml);
        assert_eq!(a.checksum_type.as_deref(), Some("COMPOSITE"));
        assert_eq!(a.part_sizes, Some(vec![5_242_880, 17]));
        assert_eq!((a.truncated, a.next_marker), (false, Some(2)));
        assert_eq!(Attributes::parse(b"<nonsense"), Attributes::default());
    }

    #[test]
    fn debug_shows_no_credentials() {
        let c = S3Checksums {
            http: Arc::new(Mutex::new(None)),
            bucket_endpoint: "http://user:pw-s3cr3t@127.0.0.1:1/b".into(),
            region: "us-east-1".into(),
            credentials: None,
            request_payer: false,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
