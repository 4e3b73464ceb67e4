//! `read_range`: one ranged `GET`, pinned to the version being downloaded, and an honest
//! report of what the answer declares (a `206`'s `Content-Range`; a `200` as the whole
//! object). The engine compares it with what it asked for.
//!
//! Pinning: a strong etag goes in `If-Match`. A weak one never does (`If-Match` compares
//! strongly, so a weak tag never matches and every read would fail with 412); then, as for a
//! server without etags, `If-Unmodified-Since` carries the last-modified time of the `stat`,
//! and an answer with another `Last-Modified` is `Changed` whatever the server made of the
//! condition (with a strong etag matched, a moving `Last-Modified`, as dynamic servers send,
//! says nothing). The engine checks every answer's size and etag.

use std::ops::Range;

use futures::StreamExt as _;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use resume_core::{RangeRead, ReadConditions, SourceError, SourceErrorKind};

pub(crate) use resume_core::http_syntax::{parse_content_range, parse_decimal};

use crate::{HttpSource, error, last_modified, limit, lock};

pub(crate) async fn read_range(
    src: &HttpSource,
    key: &str,
    range: Range<u64>,
    conditions: &ReadConditions,
) -> Result<RangeRead, SourceError> {
    let last = range.end.checked_sub(1).filter(|_| !range.is_empty());
    let Some(last) = last else {
        return Err(SourceError::new(
            SourceErrorKind::Other,
            format!("{}: empty range requested", src.describe("GET", key)),
        ));
    };
    if let Some(v) = &conditions.version_id {
        return Err(SourceError::new(
            SourceErrorKind::Misconfigured,
            format!("version {v:?} of {key}: an HTTP server has no object versions"),
        ));
    }
    if let Some(read) = take_stash(src, key, &range, conditions) {
        return Ok(read);
    }
    let op = format!("{} bytes {}-{last}", src.describe("GET", key), range.start);
    let mut extra = HeaderMap::new();
    let header = |v: String| {
        HeaderValue::from_str(&v).map_err(|_| {
            SourceError::new(
                SourceErrorKind::Other,
                format!("{op}: the etag {v:?} cannot be sent back in a header"),
            )
        })
    };
    extra.insert(
        reqwest::header::RANGE,
        header(format!("bytes={}-{last}", range.start))?,
    );
    // A strong etag pins the read by itself; otherwise the last-modified time does.
    let mut strong = false;
    match (&conditions.if_match, conditions.if_unmodified_since) {
        (Some(etag), _) if !src.is_weak(etag) => {
            extra.insert(reqwest::header::IF_MATCH, header(etag.clone())?);
            strong = true;
        }
        (_, Some(t)) => {
            extra.insert(
                reqwest::header::IF_UNMODIFIED_SINCE,
                header(httpdate::fmt_http_date(t))?,
            );
        }
        _ => {}
    }
    let (answer, start) = src.request(Method::GET, key, &extra, &op).await?;
    let response = answer.response;
    let status = response.status().as_u16();
    let headers = response.headers();
    let malformed = |what: String| {
        SourceError::new(SourceErrorKind::Other, format!("{op}: {what}")).with_status(status)
    };
    let (declared, total_size) = match status {
        206 => {
            let value = headers
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| malformed("a 206 answer without Content-Range".into()))?;
            parse_content_range(value.trim())
                .ok_or_else(|| malformed(format!("malformed Content-Range {value:?}")))?
        }
        // The server ignored the range: declared honestly as the whole object. The engine
        // never takes it for a part; it switches to one stream.
        200 => {
            let len = headers
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_decimal(v.trim()))
                .ok_or_else(|| {
                    malformed(
                        "the server ignored the Range header (200) and sent no Content-Length"
                            .into(),
                    )
                })?;
            (0..len, Some(len))
        }
        201..=299 => {
            return Err(malformed(format!(
                "unexpected HTTP status {status}; retrying cannot help"
            )));
        }
        _ => {
            let signed = src.signed(&start);
            return Err(error::from_response(&op, response, signed).await);
        }
    };
    coded_body_error(&op, headers, status)?;
    let etag = src.etag(headers);
    if !strong {
        check_last_modified(&op, headers, conditions)?;
    }
    let body_op = op.clone();
    let body = response
        .bytes_stream()
        .map(move |c| c.map_err(|e| error::transport_error(&body_op, e)))
        .boxed();
    Ok(RangeRead {
        range: declared,
        total_size,
        etag,
        body,
    })
}

/// The body a `stat` kept, if it serves `range` of `key` under `conditions`: it starts at
/// the object's first byte, covers the range, and was answered for the pinned version (a
/// stash that covers the range but not for that version is dropped).
fn take_stash(
    src: &HttpSource,
    key: &str,
    range: &Range<u64>,
    conditions: &ReadConditions,
) -> Option<RangeRead> {
    if range.start != 0 {
        return None;
    }
    let mut slot = lock(&src.stash);
    let stash = slot.as_ref()?;
    // A whole body (the server ignores ranges) serves only a read of the whole object: the
    // engine's one stream after it found that out, not a part it would then give up on.
    let fits = if stash.whole_body {
        range.end == stash.declared.end
    } else {
        stash.declared.end >= range.end
    };
    if !fits {
        return None;
    }
    let stash = slot.take()?;
    drop(slot);
    let pinned = stash.key == key
        && stash.declared.start == 0
        && conditions
            .if_match
            .as_ref()
            .is_none_or(|e| stash.etag.as_ref() == Some(e))
        && conditions
            .if_unmodified_since
            .is_none_or(|t| stash.last_modified == Some(t));
    if !pinned {
        return None;
    }
    tracing::debug!(
        key,
        end = range.end,
        "serving the first bytes from the GET that learned the size"
    );
    Some(RangeRead {
        range: range.clone(),
        total_size: stash.total,
        etag: stash.etag,
        body: limit(stash.body, range.end - range.start),
    })
}

/// A response whose `Last-Modified` is not the pinned one is another version.
fn check_last_modified(
    op: &str,
    headers: &HeaderMap,
    conditions: &ReadConditions,
) -> Result<(), SourceError> {
    if let (Some(pinned), Some(now)) = (conditions.if_unmodified_since, last_modified(headers))
        && pinned != now
    {
        return Err(SourceError::new(
            SourceErrorKind::Changed,
            format!(
                "{op}: the server says the object was modified at {}, the download started \
                 with the version of {}",
                httpdate::fmt_http_date(now),
                httpdate::fmt_http_date(pinned)
            ),
        ));
    }
    Ok(())
}

/// A body in a content coding (gzip, br…) is not the object's bytes, whatever `Accept-Encoding:
/// identity` asked: an error, never data.
pub(crate) fn coded_body_error(
    op: &str,
    headers: &HeaderMap,
    status: u16,
) -> Result<(), SourceError> {
    let coding = headers
        .get_all(reqwest::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
    match coding {
        None => Ok(()),
        Some(c) => Err(SourceError::new(
            SourceErrorKind::Other,
            format!(
                "{op}: the server sent the body with Content-Encoding {c} although resume-get \
                 asked for the bytes as stored (Accept-Encoding: identity); coded bytes are not \
                 the object's and cannot be fetched in parts. The server compresses on the fly: \
                 ask its operator to turn that off for downloads"
            ),
        )
        .with_status(status)),
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
        assert_eq!(parse_content_range("bytes 0-99/*"), Some((0..100, None)));
        for bad in [
            "bytes 0-99/99",
            "bytes 10-9/100",
            "bytes */100",
            "bytes +1-5/10",
            "bytes 0-99",
            "items 0-99/100",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn coded_bodies_are_refused_and_identity_accepted() {
        let mut h = HeaderMap::new();
        assert!(coded_body_error("GET x", &h, 206).is_ok());
        h.insert("content-encoding", HeaderValue::from_static("identity"));
        assert!(coded_body_error("GET x", &h, 206).is_ok());
        h.insert("content-encoding", HeaderValue::from_static("gzip"));
        let e = coded_body_error("GET x", &h, 206).unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::Other);
        assert!(e.to_string().contains("Content-Encoding gzip"), "{e}");
    }

    #[test]
    fn another_last_modified_is_a_change() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let cond = ReadConditions {
            if_unmodified_since: Some(t),
            ..Default::default()
        };
        let mut h = HeaderMap::new();
        assert!(check_last_modified("op", &h, &cond).is_ok());
        h.insert(
            "last-modified",
            HeaderValue::from_str(&httpdate::fmt_http_date(t)).unwrap(),
        );
        assert!(check_last_modified("op", &h, &cond).is_ok());
        let later = t + std::time::Duration::from_secs(1);
        h.insert(
            "last-modified",
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let e = check_last_modified("op", &h, &cond).unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::Changed);
    }
}
