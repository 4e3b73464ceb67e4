//! The request log: one line per HTTP request at `-v`, its headers at `-vv`, the same for
//! every backend (docs/ARCHITECTURE.md, "Request logs").
//!
//! A backend calls [`response`] (or [`failure`] when no response came) once per request, and
//! [`headers`] for what it sent and received. Everything goes to the tracing target
//! [`TARGET`]: the request line at INFO with the fields `request_id` and `ms` (time to the
//! response headers), headers at DEBUG. URLs are shown through [`crate::redact::redact_url`],
//! secret header values as [`REDACTED`]. The engine's retry lines (target [`RETRY_TARGET`],
//! INFO) say why a request is made again.

use std::borrow::Cow;
use std::fmt::Display;
use std::time::Duration;

use crate::redact::{REDACTED, redact_url};

/// The tracing target of request lines and headers.
pub const TARGET: &str = "resume_get::request";
/// The tracing target of the engine's retry lines (part, attempt, delay, cause).
pub const RETRY_TARGET: &str = "resume_get::retry";

/// Response headers that name a request for the store's support, in the order looked for.
pub const REQUEST_ID_HEADERS: &[&str] = &[
    "x-oss-request-id",
    "x-amz-request-id",
    "x-ms-request-id",
    "x-goog-request-id",
    "x-guploader-uploadid",
    "x-request-id",
];

/// Header names whose value is a credential (compared ASCII case-insensitively, by part of
/// the name): `Authorization`, `Cookie`, `x-amz-security-token`, `x-oss-security-token`,
/// customer-provided encryption keys, and any name speaking of a token, secret, signature,
/// credential, password or key.
fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "secret",
        "signature",
        "credential",
        "password",
        "key",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// A header's value as it may be shown: secrets replaced, URLs redacted, bytes that are not
/// visible ASCII escaped.
pub fn shown_header(name: &str, value: &[u8]) -> Cow<'static, str> {
    if is_secret_header(name) {
        return Cow::Borrowed(REDACTED);
    }
    let text = String::from_utf8_lossy(value);
    if text.contains("://") {
        return Cow::Owned(crate::redact::redact_text(&text));
    }
    Cow::Owned(text.escape_debug().to_string())
}

/// The request id among `headers` (name, value), if any.
pub fn request_id<'h>(headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) -> Option<String> {
    let found: Vec<(&str, &[u8])> = headers.into_iter().collect();
    REQUEST_ID_HEADERS.iter().find_map(|want| {
        found
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(want))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// The request line: `GET https://host/bucket/key 206`, with `request_id` and `ms`.
pub fn response(method: &str, url: &str, status: u16, request_id: Option<&str>, elapsed: Duration) {
    if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        let url = redact_url(url);
        let ms = elapsed.as_millis() as u64;
        match request_id {
            Some(id) => {
                tracing::info!(target: TARGET, request_id = id, ms, "{method} {url} {status}")
            }
            None => tracing::info!(target: TARGET, ms, "{method} {url} {status}"),
        }
    }
}

/// The request line of a request that got no response: `GET https://host/k failed`, with
/// the `error` and `ms`.
pub fn failure(method: &str, url: &str, elapsed: Duration, error: &dyn Display) {
    if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        let url = redact_url(url);
        let error = crate::redact::redact_text(&error.to_string());
        let ms = elapsed.as_millis() as u64;
        tracing::info!(target: TARGET, %error, ms, "{method} {url} failed");
    }
}

/// Headers of a request (`sent`) or response, one DEBUG line each: `> name: value` /
/// `< name: value`, secrets redacted.
pub fn headers<'h>(sent: bool, headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) {
    if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
        let arrow = if sent { '>' } else { '<' };
        for (name, value) in headers {
            let value = shown_header(name, value);
            tracing::debug!(target: TARGET, "{arrow} {name}: {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_headers_are_redacted_and_others_shown() {
        for (name, value) in [
            (
                "Authorization",
                "OSS4-HMAC-SHA256 Credential=AK/..., Signature=abc",
            ),
            ("x-oss-security-token", "CAIS..."),
            ("X-Amz-Security-Token", "FwoG..."),
            ("Cookie", "session=1"),
            ("x-amz-server-side-encryption-customer-key", "c2VjcmV0"),
        ] {
            assert_eq!(shown_header(name, value.as_bytes()), REDACTED, "{name}");
        }
        assert_eq!(shown_header("Range", b"bytes=0-99"), "bytes=0-99");
        assert_eq!(shown_header("x-oss-request-id", b"ABC"), "ABC");
        assert_eq!(
            shown_header("Location", b"https://h/k?X-Amz-Signature=s3cr3t&a=1"),
            "https://h/k?X-Amz-Signature=<redacted>&a=1"
        );
        assert_eq!(shown_header("x", b"a\nb"), "a\\nb");
    }

    #[test]
    fn the_request_id_is_found_whatever_the_store() {
        let h = |n: &'static str, v: &'static str| (n, v.as_bytes());
        assert_eq!(
            request_id([h("Content-Length", "1"), h("X-Oss-Request-Id", " 5F3A ")]),
            Some("5F3A".into())
        );
        assert_eq!(
            request_id([h("x-ms-request-id", "az-1")]),
            Some("az-1".into())
        );
        assert_eq!(request_id([h("x-amz-request-id", "")]), None);
        assert_eq!(request_id([h("etag", "\"x\"")]), None);
    }
}
