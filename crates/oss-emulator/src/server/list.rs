//! ListObjects (`GET /`, "GetBucket") and ListObjectsV2 (`GET /?list-type=2`,
//! "GetBucketV2"), answered as OSS answers them.
//!
//! - `prefix`, `delimiter` (rolled up into `CommonPrefixes`, each counted as one entry against
//!   `max-keys`), `max-keys` (default 100, 1 to 1000, anything else is `InvalidArgument`);
//! - V1: `marker`, `NextMarker` when truncated; V2: `start-after`, `continuation-token`
//!   (opaque: the URL-safe base64 of the last entry returned; a token that does not decode
//!   is `InvalidArgument`), `NextContinuationToken` when truncated, `KeyCount`, and `Owner`
//!   only with `fetch-owner=true` (V1 always lists it);
//! - `encoding-type=url`: `Key`, `Prefix`, `Marker`, `NextMarker`, `StartAfter`,
//!   `ContinuationToken`, `NextContinuationToken`, `Delimiter` and `CommonPrefixes/Prefix`
//!   are percent-encoded (UTF-8 bytes; unreserved characters and `/` kept), as the SDKs
//!   expect when they decode them;
//! - each object: `Key`, `LastModified` (`2023-12-16T16:20:57.000Z`), `ETag` (quoted
//!   upper-case MD5), `Type` (`Normal`), `Size`, `StorageClass` (`Standard`). No CRC-64 and
//!   no user metadata: listings do not carry them.
//!
//! The store is walked from the marker under its lock, one page at a time: a request never
//! copies the bucket's key set.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

/// OSS's limits on a listing request.
const MAX_KEYS: usize = 1000;
const DEFAULT_MAX_KEYS: usize = 100;
const MAX_PARAM_BYTES: usize = 1024;

/// One listed entry, in key order.
enum Entry {
    Object(String, Arc<Version>),
    Prefix(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Object(k, _) | Entry::Prefix(k) => k,
        }
    }
}

/// `s` percent-encoded as OSS encodes listed keys (`encoding-type=url`).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn param<'a>(r: &'a Req, name: &str) -> Result<&'a str, ApiError> {
    let v = r.query(name).unwrap_or("");
    if v.len() >= MAX_PARAM_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "{name} must be shorter than {MAX_PARAM_BYTES} bytes"
        ))
        .with("ArgumentName", name));
    }
    Ok(v)
}

pub(super) fn list_objects(
    r: &Req,
    shared: &Shared,
    bucket: &str,
) -> Result<Response<ResBody>, ApiError> {
    let v2 = match r.query("list-type") {
        None => false,
        Some("2") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "list-type {other:?} is not supported; use 2 or leave it out"
            ))
            .with("ArgumentName", "list-type"));
        }
    };
    let prefix = param(r, "prefix")?;
    let delimiter = param(r, "delimiter")?;
    let max_keys = match r.query("max-keys") {
        None => DEFAULT_MAX_KEYS,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_KEYS).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "max-keys must be a number from 1 to {MAX_KEYS}, not {v:?}"
                ))
                .with("ArgumentName", "max-keys")
                .with("ArgumentValue", v));
            }
        },
    };
    let url = match r.query("encoding-type") {
        None | Some("") => false,
        Some("url") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "encoding-type {other:?} is not supported; use url"
            ))
            .with("ArgumentName", "encoding-type")
            .with("ArgumentValue", other));
        }
    };
    let enc = |s: &str| {
        if url { url_encode(s) } else { xml_escape(s) }
    };
    // Where the listing starts: strictly after this entry.
    let (marker, start_after, token) = if v2 {
        let start_after = param(r, "start-after")?;
        // oss2 sends an empty token on the first page.
        let given = r.query("continuation-token").filter(|t| !t.is_empty());
        let token = match given {
            None => None,
            Some(t) => Some(decode_token(t)?),
        };
        (
            token.unwrap_or_else(|| start_after.to_owned()),
            start_after,
            given,
        )
    } else {
        (param(r, "marker")?.to_owned(), "", None)
    };

    // One more entry than asked for: whether the listing is truncated.
    let mut entries: Vec<Entry> = Vec::with_capacity(max_keys.min(64) + 1);
    let found = shared
        .store
        .list_after(bucket, prefix, &marker, max_keys + 1, |key, version| {
            if !delimiter.is_empty()
                && let Some(i) = key[prefix.len()..].find(delimiter)
            {
                let common = &key[..prefix.len() + i + delimiter.len()];
                // Keys under a prefix already returned (in this page, or on the page the
                // marker ended) roll up into it: not counted again.
                let seen =
                    entries.last().is_some_and(|e| e.name() == common) || common <= marker.as_str();
                if seen {
                    return false;
                }
                entries.push(Entry::Prefix(common.to_owned()));
                return true;
            }
            entries.push(Entry::Object(key.to_owned(), version.clone()));
            true
        });
    if found.is_none() {
        return Err(ApiError::no_such_bucket(bucket));
    }
    let truncated = entries.len() > max_keys;
    entries.truncate(max_keys);
    let next = entries
        .last()
        .filter(|_| truncated)
        .map(|e| e.name().to_owned());

    let owner = "<Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></Owner>";
    let with_owner = !v2 || r.query("fetch-owner") == Some("true");
    let mut xml = String::with_capacity(256 + entries.len() * 256);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>");
    xml.push_str(&format!(
        "<Name>{}</Name><Prefix>{}</Prefix>",
        xml_escape(bucket),
        enc(prefix)
    ));
    if v2 {
        if let Some(t) = token {
            xml.push_str(&format!(
                "<ContinuationToken>{}</ContinuationToken>",
                enc(t)
            ));
        }
        if !start_after.is_empty() {
            xml.push_str(&format!("<StartAfter>{}</StartAfter>", enc(start_after)));
        }
    } else {
        xml.push_str(&format!("<Marker>{}</Marker>", enc(&marker)));
    }
    xml.push_str(&format!(
        "<MaxKeys>{max_keys}</MaxKeys><Delimiter>{}</Delimiter>",
        enc(delimiter)
    ));
    if url {
        xml.push_str("<EncodingType>url</EncodingType>");
    }
    xml.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
    if let Some(n) = &next {
        if v2 {
            xml.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                URL_SAFE_NO_PAD.encode(n.as_bytes())
            ));
        } else {
            xml.push_str(&format!("<NextMarker>{}</NextMarker>", enc(n)));
        }
    }
    for e in &entries {
        if let Entry::Object(key, v) = e {
            xml.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Type>Normal</Type><Size>{}</Size><StorageClass>Standard</StorageClass>{}</Contents>",
                enc(key),
                iso8601(v.meta.last_modified),
                v.etag(),
                v.meta.size,
                if with_owner { owner } else { "" }
            ));
        }
    }
    for e in &entries {
        if let Entry::Prefix(p) = e {
            xml.push_str(&format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                enc(p)
            ));
        }
    }
    if v2 {
        xml.push_str(&format!("<KeyCount>{}</KeyCount>", entries.len()));
    }
    xml.push_str("</ListBucketResult>\n");
    Ok(xml_response(r, 200, xml))
}

fn decode_token(t: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(t.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::invalid_argument("The continuation token provided is incorrect.")
                .with("ArgumentName", "continuation-token")
                .with("ArgumentValue", t)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_as_utf8_bytes() {
        assert_eq!(url_encode("a b/c+d%é~"), "a%20b/c%2Bd%25%C3%A9~");
        assert_eq!(url_encode("x\u{1}<y>"), "x%01%3Cy%3E");
    }

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let t = URL_SAFE_NO_PAD.encode("dir/ü k".as_bytes());
        assert_eq!(decode_token(&t).unwrap(), "dir/ü k");
        assert_eq!(decode_token("***").unwrap_err().status, 400);
    }
}
