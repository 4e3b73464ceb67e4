//! [`OssLister`]: the batch layer's [`Lister`] over a [`Bucket`], one ListObjectsV2 request
//! per page.
//!
//! `GET /?list-type=2&prefix=…&max-keys=…&encoding-type=url[&continuation-token=…]`, signed
//! like every request of the bucket (the same [`Core`](crate::core) path, so V1/V4, STS
//! tokens, request ids and the error mapping are the ones reads get). Keys come back
//! URL-encoded and are decoded here, so any key OSS can hold (control characters, a trailing
//! `/`, `a` next to `a/b`) survives the XML. The token is OSS's `NextContinuationToken`,
//! passed back as it came.
//!
//! A listing says what it says: key, size, the ETag (quoted, as a HEAD returns it) and the
//! last-modified time. It carries no `x-oss-hash-crc64ecma` and no version id; a job that
//! needs the CRC-64 gets it from the GET's own headers.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode_str;
use quick_xml::events::Event;
use reqwest::Method;
use resume_core::{ListPage, ListedObject, Lister, ObjectMeta, SourceError, SourceErrorKind};

use crate::client::Bucket;
use crate::core::{ObjectRequest, error_from_response, request_id, transport_error};

/// The most keys one ListObjectsV2 answer holds (OSS's cap on `max-keys`), and the default.
pub const MAX_KEYS: u16 = 1000;

/// A listing answer larger than this is refused (1 000 keys of 1 023 bytes, URL-encoded, fit).
const MAX_LIST_BODY: usize = 16 << 20;

/// Lists a bucket's objects under a prefix, one ListObjectsV2 page per call. Build it with
/// [`Bucket::lister`].
#[derive(Clone)]
pub struct OssLister {
    bucket: Bucket,
    max_keys: u16,
}

impl fmt::Debug for OssLister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OssLister")
            .field("bucket", &self.bucket.name)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// A [`Lister`] over this bucket: ListObjectsV2 with the bucket's client, credentials and
    /// request headers (request payer); pages of [`MAX_KEYS`].
    pub fn lister(&self) -> OssLister {
        OssLister {
            bucket: self.clone(),
            max_keys: MAX_KEYS,
        }
    }
}

impl OssLister {
    /// At most `n` keys per page (`max-keys`), clamped to `1..=`[`MAX_KEYS`].
    pub fn with_page_size(mut self, n: u16) -> Self {
        self.max_keys = n.clamp(1, MAX_KEYS);
        self
    }

    /// The bucket listed.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }
}

#[async_trait::async_trait]
impl Lister for OssLister {
    fn identity(&self) -> String {
        resume_core::RangeSource::identity(&self.bucket)
    }

    async fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage, SourceError> {
        let operation = format!("ListObjectsV2 oss://{}/{prefix}", self.bucket.name);
        let mut query = vec![
            ("list-type".to_owned(), "2".to_owned()),
            ("prefix".to_owned(), prefix.to_owned()),
            ("max-keys".to_owned(), self.max_keys.to_string()),
            ("encoding-type".to_owned(), "url".to_owned()),
        ];
        if let Some(t) = token {
            query.push(("continuation-token".to_owned(), t.to_owned()));
        }
        let req = ObjectRequest {
            method: Method::GET,
            bucket: &self.bucket.name,
            key: "",
            query,
            headers: std::iter::once(("accept-encoding".to_owned(), "identity".to_owned()))
                .chain(self.bucket.options.request_headers())
                .collect(),
            operation: &operation,
        };
        let mut response = self.bucket.core.send(&req).await?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(error_from_response(&operation, response).await);
        }
        let id = request_id(response.headers()).map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(&operation, e, id.as_deref()))?
        {
            if body.len() + chunk.len() > MAX_LIST_BODY {
                return Err(bad_answer(
                    &operation,
                    format!("the answer is larger than {MAX_LIST_BODY} bytes"),
                    id.as_deref(),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let page = parse_page(&body, prefix)
            .map_err(|what| bad_answer(&operation, what, id.as_deref()))?;
        Ok(page)
    }
}

fn bad_answer(operation: &str, what: String, request_id: Option<&str>) -> SourceError {
    let mut e = SourceError::new(
        SourceErrorKind::Other,
        format!("{operation}: the listing cannot be read: {what}"),
    )
    .with_status(200);
    if let Some(id) = request_id {
        e = e.with_request_id(id);
    }
    e
}

/// One `<Contents>` as it is in the XML (key still encoded).
#[derive(Default)]
struct RawObject {
    key: Option<String>,
    size: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// A ListObjectsV2 answer (`ListBucketResult`) as a page: keys decoded when the answer says
/// `EncodingType` `url`, every key checked to be under `prefix`.
pub(crate) fn parse_page(body: &[u8], prefix: &str) -> Result<ListPage, String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    // Element names from the root down to the current one.
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut objects: Vec<RawObject> = Vec::new();
    let mut current: Option<RawObject> = None;
    let (mut truncated, mut token, mut encoding) = (None, None, None);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                if path.is_empty() && name != b"ListBucketResult" {
                    return Err(format!(
                        "expected <ListBucketResult>, got <{}>",
                        String::from_utf8_lossy(&name)
                    ));
                }
                if path.len() == 1 && name == b"Contents" {
                    current = Some(RawObject::default());
                }
                path.push(name);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match r.as_ref() {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => {
                            return Err(format!(
                                "unknown entity &{};",
                                String::from_utf8_lossy(other)
                            ));
                        }
                    },
                };
                text.push(c);
            }
            Event::End(_) => {
                let value = std::mem::take(&mut text);
                match path
                    .iter()
                    .map(Vec::as_slice)
                    .collect::<Vec<_>>()
                    .as_slice()
                {
                    [_, b"IsTruncated"] => truncated = Some(value),
                    [_, b"NextContinuationToken"] => token = Some(value),
                    [_, b"EncodingType"] => encoding = Some(value),
                    [_, b"Contents"] => objects.extend(current.take()),
                    [_, b"Contents", field] => {
                        if let Some(o) = current.as_mut() {
                            let slot = match *field {
                                b"Key" => &mut o.key,
                                b"Size" => &mut o.size,
                                b"ETag" => &mut o.etag,
                                b"LastModified" => &mut o.last_modified,
                                _ => &mut None,
                            };
                            *slot = Some(value);
                        }
                    }
                    _ => {}
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let url = match encoding.as_deref() {
        None | Some("") => false,
        Some("url") => true,
        Some(other) => return Err(format!("unknown EncodingType {other:?}")),
    };
    let decode = |s: String| -> Result<String, String> {
        if !url {
            return Ok(s);
        }
        percent_decode_str(&s)
            .decode_utf8()
            .map(Cow::into_owned)
            .map_err(|_| format!("{s:?} does not decode to UTF-8"))
    };
    let truncated = match truncated.as_deref() {
        Some("true") => true,
        Some("false") => false,
        other => return Err(format!("IsTruncated is {other:?}, not true or false")),
    };
    let next = match (truncated, token) {
        (false, _) => None,
        (true, Some(t)) if !t.is_empty() => Some(decode(t)?),
        (true, _) => return Err("truncated, but no NextContinuationToken".into()),
    };
    let mut page = ListPage {
        objects: Vec::with_capacity(objects.len()),
        next,
    };
    for raw in objects {
        let key = decode(raw.key.ok_or("an object without a Key")?)?;
        if !key.starts_with(prefix) {
            return Err(format!("{key:?} is not under the prefix asked for"));
        }
        let size = raw
            .size
            .as_deref()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("{key:?} has no valid Size ({:?})", raw.size))?;
        let last_modified = match raw.last_modified.as_deref() {
            None => None,
            Some(t) => {
                Some(parse_iso8601(t).ok_or_else(|| format!("{key:?}: bad LastModified {t:?}"))?)
            }
        };
        page.objects.push(ListedObject {
            key,
            meta: ObjectMeta {
                size,
                etag: raw.etag.filter(|e| !e.is_empty()),
                last_modified,
                version_id: None,
                checksums: Vec::new(),
                checksum_note: None,
            },
        });
    }
    Ok(page)
}

/// `2023-12-16T16:20:57.000Z` (UTC, optional fraction) as a time.
fn parse_iso8601(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let frac = &s[19..s.len() - 1];
    let nanos = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) => {
            let padded: String = digits.chars().chain("000000000".chars()).take(9).collect();
            padded.parse::<u32>().ok()?
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let (y, m) = if mo <= 2 {
        (i64::from(y) - 1, mo + 9)
    } else {
        (i64::from(y), mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * i64::from(m) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec);
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_times_parse_to_utc() {
        let t = parse_iso8601("2023-12-16T16:20:57.000Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_702_743_657));
        let t = parse_iso8601("2000-02-29T00:00:00.5Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::new(951_782_400, 500_000_000));
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        for bad in [
            "",
            "2023-12-16 16:20:57Z",
            "2023-13-01T00:00:00Z",
            "2023-12-16T16:20:57",
        ] {
            assert!(parse_iso8601(bad).is_none(), "{bad}");
        }
    }

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>b</Name><Prefix>p%2F</Prefix><MaxKeys>2</MaxKeys><Delimiter></Delimiter><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><NextContinuationToken>CgJiYw--</NextContinuationToken><Contents><Key>p/a%20b%2Bc%25%C3%A9</Key><LastModified>2023-12-16T16:20:57.000Z</LastModified><ETag>"5EB63BBBE01EEED093CB22BB8F5ACDC3"</ETag><Type>Normal</Type><Size>11</Size><StorageClass>Standard</StorageClass></Contents><Contents><Key>p/folder/</Key><LastModified>2023-12-16T16:20:58.000Z</LastModified><ETag>&quot;D41D8CD98F00B204E9800998ECF8427E&quot;</ETag><Type>Normal</Type><Size>0</Size><StorageClass>Standard</StorageClass><Owner><ID>1</ID><DisplayName>1</DisplayName></Owner></Contents><KeyCount>2</KeyCount></ListBucketResult>"#;

    #[test]
    fn a_page_decodes_keys_and_keeps_what_the_listing_says() {
        let page = parse_page(PAGE.as_bytes(), "p/").unwrap();
        assert_eq!(page.next.as_deref(), Some("CgJiYw--"));
        let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["p/a b+c%é", "p/folder/"]);
        let a = &page.objects[0].meta;
        assert_eq!(a.size, 11);
        assert_eq!(
            a.etag.as_deref(),
            Some("\"5EB63BBBE01EEED093CB22BB8F5ACDC3\"")
        );
        assert_eq!(
            a.last_modified,
            Some(UNIX_EPOCH + Duration::from_secs(1_702_743_657))
        );
        assert!(a.checksums.is_empty() && a.version_id.is_none());
        // An escaped quote reads the same as a raw one.
        assert_eq!(
            page.objects[1].meta.etag.as_deref(),
            Some("\"D41D8CD98F00B204E9800998ECF8427E\"")
        );
    }

    #[test]
    fn answers_that_cannot_be_trusted_are_refused() {
        let cases = [
            (
                PAGE.replace(
                    "<NextContinuationToken>CgJiYw--</NextContinuationToken>",
                    "",
                ),
                "no NextContinuationToken",
            ),
            (PAGE.replace("p/a%20b", "q/a%20b"), "not under the prefix"),
            (PAGE.replace("<Size>11</Size>", "<Size>x</Size>"), "Size"),
            (PAGE.replace("%C3%A9", "%FF"), "UTF-8"),
            (
                PAGE.replace("ListBucketResult", "Error"),
                "expected <ListBucketResult>",
            ),
            (
                PAGE.replace("<IsTruncated>true", "<IsTruncated>maybe"),
                "IsTruncated",
            ),
        ];
        for (body, want) in cases {
            let err = parse_page(body.as_bytes(), "p/").unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
        // A cut answer is never a shorter page.
        assert!(parse_page(&PAGE.as_bytes()[..200], "p/").is_err());
        let last = PAGE.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_page(last.as_bytes(), "p/").unwrap().next, None);
        // Without EncodingType, keys are taken as they are.
        let plain = PAGE.replace("<EncodingType>url</EncodingType>", "");
        let page = parse_page(plain.as_bytes(), "p/").unwrap();
        assert_eq!(page.objects[0].key, "p/a%20b%2Bc%25%C3%A9");
    }
}
