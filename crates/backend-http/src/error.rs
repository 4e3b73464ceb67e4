//! Failures: building a source ([`BuildError`]) and HTTP answers and transport failures mapped
//! onto the engine's [`SourceErrorKind`]s, once, here. No message quotes a URL unredacted.

use std::time::SystemTime;

use reqwest::header::HeaderMap;
use resume_core::redact::redact_text;
use resume_core::{SourceError, SourceErrorKind};

/// At most this much of an error answer's body is read (for a code and message).
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Why an HTTP source could not be set up. Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    message: String,
}

impl BuildError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: redact_text(&message.into()),
        }
    }
}

/// The request id a server or CDN sent, for support tickets.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    [
        "x-request-id",
        "x-amz-request-id",
        "x-oss-request-id",
        "x-ms-request-id",
        "x-goog-request-id",
        "x-guploader-uploadid",
        "cf-ray",
    ]
    .iter()
    .find_map(|h| headers.get(*h)?.to_str().ok())
    .map(|s| s.trim().to_owned())
    .filter(|s| !s.is_empty())
}

/// What the URL's signature says about a refusal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed {
    /// The URL carries a signature or token.
    pub(crate) presigned: bool,
    /// When it expires, if it says.
    pub(crate) expires: Option<SystemTime>,
}

/// The engine's error for an HTTP error answer. `op` names the request (URL redacted).
/// Reads at most [`MAX_ERROR_BODY`] bytes of the body, for the `<Code>` and `<Message>` of
/// an S3/OSS/GCS/Azure XML error document (never the whole body: OSS echoes the string to
/// sign and the signature provided).
pub(crate) async fn from_response(
    op: &str,
    mut response: reqwest::Response,
    signed: Signed,
) -> SourceError {
    let status = response.status().as_u16();
    let id = request_id(response.headers());
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ERROR_BODY - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    let code = xml_element(&text, "Code");
    let message = xml_element(&text, "Message");
    status_error(op, status, code, message, id, signed, SystemTime::now())
}

fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    let value = text[start..start + len].trim();
    (!value.is_empty() && value.len() <= 512).then(|| redact_text(value))
}

pub(crate) fn status_error(
    op: &str,
    status: u16,
    code: Option<String>,
    server_message: Option<String>,
    request_id: Option<String>,
    signed: Signed,
    now: SystemTime,
) -> SourceError {
    let expired = signed.expires.filter(|&t| t <= now);
    let (kind, what) = match status {
        401 | 403 if expired.is_some() => (
            SourceErrorKind::Denied,
            format!(
                "the presigned URL expired at {} ({} ago): get a newly signed URL for the same \
                 object and run the same command with it; the download resumes where it stopped",
                httpdate::fmt_http_date(expired.unwrap_or(now)),
                humanize(now.duration_since(expired.unwrap_or(now)).unwrap_or_default())
            ),
        ),
        // GCS and some CDNs answer an expired signature with 400.
        400 if expired.is_some() => (
            SourceErrorKind::Denied,
            format!(
                "the presigned URL expired at {}: get a newly signed URL for the same object \
                 and run the same command with it; the download resumes where it stopped",
                httpdate::fmt_http_date(expired.unwrap_or(now))
            ),
        ),
        401 => (
            SourceErrorKind::Denied,
            "the server wants credentials (401): put them in the URL (https://user:password@host/…), \
             in ~/.netrc with --netrc, or pass --header 'Authorization: …'"
                .to_owned(),
        ),
        403 if signed.presigned => (
            SourceErrorKind::Denied,
            "access denied (403) for this presigned URL: its signature does not match (a \
             truncated or re-encoded URL, one signed for another method) or it was revoked; \
             copy the whole URL again, quoted, or get a newly signed one"
                .to_owned(),
        ),
        403 => (
            SourceErrorKind::Denied,
            "access denied (403); check the URL and any credentials it needs".to_owned(),
        ),
        404 | 410 => (
            SourceErrorKind::NotFound,
            format!("not found ({status}); check the URL"),
        ),
        412 => (
            SourceErrorKind::Changed,
            "the object changed on the server (412: the precondition pinning it failed)".to_owned(),
        ),
        416 => (
            SourceErrorKind::InvalidRange,
            "the server cannot serve that range (416)".to_owned(),
        ),
        408 | 429 | 500 | 502 | 503 | 504 => (
            SourceErrorKind::Transient,
            format!("the server answered {status}"),
        ),
        501 | 505 => (
            SourceErrorKind::Other,
            format!("the server does not support this request ({status}); retrying cannot help"),
        ),
        500..=599 => (
            SourceErrorKind::Transient,
            format!("the server answered {status}"),
        ),
        _ => (
            SourceErrorKind::Other,
            format!("unexpected HTTP status {status}; retrying cannot help"),
        ),
    };
    let mut message = format!("{op}: {what}");
    if let Some(m) = server_message {
        message.push_str(&format!(" (server says: {m})"));
    }
    let mut e = SourceError::new(kind, message).with_status(status);
    // The message says what to do for these; the engine adds no generic advice.
    if matches!(kind, SourceErrorKind::Denied | SourceErrorKind::NotFound) {
        e = e.with_hint("");
    }
    if let Some(c) = code {
        e = e.with_code(c);
    }
    if let Some(id) = request_id {
        e = e.with_request_id(id);
    }
    e
}

fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// The engine's error for a transport failure (no answer, or a body cut short): `Transient`,
/// except a request that could not be built and TLS certificate failures, which no retry
/// fixes.
pub(crate) fn transport_error(op: &str, err: reqwest::Error) -> SourceError {
    let err = err.without_url();
    // The innermost cause says what happened ("Connection refused", "invalid peer certificate").
    let mut cause: &dyn std::error::Error = &err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let cause_text = redact_text(&cause.to_string());
    let certificate = cause_text.contains("certificate") || cause_text.contains("UnknownIssuer");
    let (kind, what) = if err.is_builder() {
        (SourceErrorKind::Other, "the request could not be built")
    } else if certificate {
        (
            SourceErrorKind::Other,
            "the server's TLS certificate is not trusted; for a private certificate \
             authority pass its certificate with --cacert FILE",
        )
    } else if err.is_timeout() {
        (SourceErrorKind::Transient, "timed out")
    } else if err.is_connect() {
        (SourceErrorKind::Transient, "could not connect")
    } else if err.is_body() || err.is_decode() {
        (SourceErrorKind::Transient, "the body was cut short")
    } else {
        (SourceErrorKind::Transient, "the connection failed")
    };
    SourceError::new(kind, format!("{op}: {what} ({cause_text})"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn err(status: u16, signed: Signed) -> SourceError {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        status_error("GET x", status, None, None, None, signed, now)
    }

    const PLAIN: Signed = Signed {
        presigned: false,
        expires: None,
    };

    #[test]
    fn statuses_map_onto_kinds() {
        for (status, kind) in [
            (401, SourceErrorKind::Denied),
            (403, SourceErrorKind::Denied),
            (404, SourceErrorKind::NotFound),
            (410, SourceErrorKind::NotFound),
            (412, SourceErrorKind::Changed),
            (416, SourceErrorKind::InvalidRange),
            (408, SourceErrorKind::Transient),
            (429, SourceErrorKind::Transient),
            (503, SourceErrorKind::Transient),
            (599, SourceErrorKind::Transient),
            (501, SourceErrorKind::Other),
            (400, SourceErrorKind::Other),
            (405, SourceErrorKind::Other),
        ] {
            let e = err(status, PLAIN);
            assert_eq!((e.kind, e.status), (kind, Some(status)), "{e}");
        }
    }

    #[test]
    fn a_refusal_after_expiry_says_the_url_expired_and_what_to_do() {
        let expired = Signed {
            presigned: true,
            expires: Some(UNIX_EPOCH + Duration::from_secs(999_000)),
        };
        let e = err(403, expired);
        assert_eq!(e.kind, SourceErrorKind::Denied);
        let m = e.to_string();
        assert!(m.contains("presigned URL expired at"), "{m}");
        assert!(m.contains("16 min ago"), "{m}");
        assert!(m.contains("newly signed URL"), "{m}");
        // Not yet expired: a signature problem, said as such.
        let valid = Signed {
            presigned: true,
            expires: Some(UNIX_EPOCH + Duration::from_secs(2_000_000)),
        };
        let m = err(403, valid).to_string();
        assert!(!m.contains("expired at"), "{m}");
        assert!(m.contains("presigned URL"), "{m}");
        assert_eq!(err(400, expired).kind, SourceErrorKind::Denied);
    }

    #[test]
    fn error_documents_give_code_and_message_never_the_signature() {
        let doc = "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we \
                   calculated does not match</Message><SignatureProvided>SIGabc123</SignatureProvided>\
                   <StringToSign>GET\n\n</StringToSign></Error>";
        assert_eq!(
            xml_element(doc, "Code").as_deref(),
            Some("SignatureDoesNotMatch")
        );
        let m = xml_element(doc, "Message").unwrap();
        assert!(!m.contains("SIGabc123"));
        assert_eq!(xml_element("<html>nope</html>", "Code"), None);
    }
}
