//! OSS error responses: the `<Error>` XML body (or the base64 `x-oss-err` header a HEAD answer
//! carries instead), and the mapping of status + code onto the engine's
//! [`SourceErrorKind`], with a message that says what the user can do.

use std::borrow::Cow;

use base64::Engine as _;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use resume_core::{SourceError, SourceErrorKind};

/// Only this much of a body is examined; an error document is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;
/// Longest field value kept (in bytes, cut on a character boundary).
const MAX_FIELD: usize = 2048;

/// What an OSS error document says. Every field is optional: bodies can be empty, truncated,
/// or not XML at all (a proxy's HTML page), and parsing never fails.
///
/// Only these fields are read. Others that OSS sends, such as `StringToSign` or
/// `CanonicalRequest` on `SignatureDoesNotMatch`, can contain the STS token and are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
    pub host_id: Option<String>,
    /// OSS's diagnosis code, e.g. `0026-00000001`.
    pub ec: Option<String>,
}

impl ErrorBody {
    /// Parses an `<Error>` document; anything unparsable yields what was read before it.
    pub fn parse(body: &[u8]) -> Self {
        let body = &body[..body.len().min(MAX_BODY)];
        let mut out = Self::default();
        let mut reader = quick_xml::Reader::from_reader(body);
        let mut depth = 0usize;
        let mut field: Option<Field> = None;
        let mut text = String::new();
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    depth += 1;
                    let name = e.local_name();
                    if depth == 1 && name.as_ref() != b"Error" {
                        return Self::default();
                    }
                    if depth == 2 {
                        field = Field::from_name(name.as_ref());
                        text.clear();
                    }
                }
                Ok(Event::Empty(_)) if depth == 0 => {
                    // `<Error/>`, or some other lone element: nothing to read either way.
                    return Self::default();
                }
                Ok(Event::End(_)) => {
                    if depth == 2
                        && let Some(f) = field.take()
                    {
                        out.set(f, &text);
                    }
                    if depth <= 1 {
                        break;
                    }
                    depth -= 1;
                }
                Ok(Event::Text(t)) if depth == 2 && field.is_some() => {
                    text.push_str(&t.decode().unwrap_or(Cow::Borrowed("")));
                }
                Ok(Event::CData(t)) if depth == 2 && field.is_some() => {
                    text.push_str(&t.decode().unwrap_or(Cow::Borrowed("")));
                }
                Ok(Event::GeneralRef(r)) if depth == 2 && field.is_some() => {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => text.push(c),
                        _ => {
                            let name = r.decode().unwrap_or(Cow::Borrowed(""));
                            match resolve_predefined_entity(&name) {
                                Some(s) => text.push_str(s),
                                None => {
                                    text.push('&');
                                    text.push_str(&name);
                                    text.push(';');
                                }
                            }
                        }
                    }
                }
                Ok(Event::Text(t)) if depth == 0 => {
                    // Text before the root element: fine if blank, garbage otherwise.
                    if !t.iter().all(u8::is_ascii_whitespace) {
                        return Self::default();
                    }
                }
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out
    }

    /// Parses the `x-oss-err` header: the base64-encoded error document OSS sends with
    /// answers that have no body (HEAD).
    pub fn from_x_oss_err(header: &str) -> Self {
        base64::engine::general_purpose::STANDARD
            .decode(header.trim())
            .map(|xml| Self::parse(&xml))
            .unwrap_or_default()
    }

    /// The body's document, or the `x-oss-err` header's when the body says nothing.
    pub fn from_response(body: &[u8], x_oss_err: Option<&str>) -> Self {
        let parsed = Self::parse(body);
        match x_oss_err {
            Some(h) if parsed.is_empty() => Self::from_x_oss_err(h),
            _ => parsed,
        }
    }

    /// Whether no field was found.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn set(&mut self, field: Field, text: &str) {
        let slot = match field {
            Field::Code => &mut self.code,
            Field::Message => &mut self.message,
            Field::RequestId => &mut self.request_id,
            Field::HostId => &mut self.host_id,
            Field::Ec => &mut self.ec,
        };
        let value = text.trim();
        if slot.is_none() && !value.is_empty() {
            *slot = Some(truncate(value, MAX_FIELD).to_string());
        }
    }
}

#[derive(Clone, Copy)]
enum Field {
    Code,
    Message,
    RequestId,
    HostId,
    Ec,
}

impl Field {
    fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"Code" => Field::Code,
            b"Message" => Field::Message,
            b"RequestId" => Field::RequestId,
            b"HostId" => Field::HostId,
            b"EC" => Field::Ec,
            _ => return None,
        })
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The engine's error kind for an OSS answer with `status` and error `code`.
///
/// 404 → `NotFound`; 401/403 → `Denied` (wrong or insufficient credentials, and Archive
/// objects that are not restored); 412 → `Changed`; 416 → `InvalidRange`; 408, 429, 5xx
/// (except 501 and 505, which describe the server and would be answered again) and a 400
/// `RequestTimeout` → `Transient`; everything else → `Other`.
pub fn error_kind(status: u16, code: Option<&str>) -> SourceErrorKind {
    match status {
        404 => SourceErrorKind::NotFound,
        401 | 403 => SourceErrorKind::Denied,
        412 => SourceErrorKind::Changed,
        416 => SourceErrorKind::InvalidRange,
        501 | 505 => SourceErrorKind::Other,
        408 | 429 | 500..=599 => SourceErrorKind::Transient,
        400 if code == Some("RequestTimeout") => SourceErrorKind::Transient,
        _ => SourceErrorKind::Other,
    }
}

/// What went wrong and what to do about it, in words, for `status` and `code`.
pub fn advice(status: u16, code: Option<&str>, message: Option<&str>) -> &'static str {
    let mentions_token = message.is_some_and(|m| m.to_ascii_lowercase().contains("security token"));
    if is_wrong_region(status, code, message) {
        return "the region the request was signed for (V4) is not this endpoint's; sign with \
                the endpoint's region (resume-get: --region or OSS_REGION)";
    }
    match (status, code) {
        (404, Some("NoSuchKey")) => {
            "the object does not exist; check the key (and the version id, if one was given)"
        }
        (404, Some("NoSuchBucket")) => {
            "the bucket does not exist; check the bucket name and that the endpoint is in the bucket's region"
        }
        (404, Some("NoSuchVersion")) => "the requested version of the object does not exist",
        (404, _) => "the object or its bucket does not exist",
        (403, Some("SignatureDoesNotMatch")) => {
            "the request signature does not match; check the AccessKey secret, the region used for V4 signing, and that the system clock is correct"
        }
        (403, Some("InvalidAccessKeyId")) if mentions_token => {
            "the STS security token is invalid or has expired; obtain fresh STS credentials"
        }
        (403, Some("InvalidAccessKeyId")) => {
            "the AccessKey ID does not exist or is disabled; check OSS_ACCESS_KEY_ID or the configured credentials"
        }
        (403, Some("SecurityTokenExpired" | "InvalidSecurityToken")) => {
            "the STS security token is invalid or has expired; obtain fresh STS credentials"
        }
        (403, Some("InvalidObjectState")) => {
            "the object is in an archive storage class and has not been restored; restore it (RestoreObject), wait until the restore completes, then retry"
        }
        (403, Some("RequestTimeTooSkewed")) => {
            "the system clock differs too much from OSS's; synchronize the clock (NTP) and retry"
        }
        (403, Some("AccessDenied")) => {
            "the credentials are not allowed to read this object; grant oss:GetObject (RAM or bucket policy) or use other credentials (for a requester-pays bucket, enable the requester-pays option)"
        }
        (401 | 403, _) => {
            "access denied; check the credentials and their permissions on the bucket"
        }
        (412, _) => {
            "the object changed since the download started (its ETag no longer matches); start the download again to fetch the new version"
        }
        (416, _) => "the requested byte range lies outside the object",
        (400, Some("RequestTimeout")) | (408, _) => "the request timed out; it will be retried",
        (429, _) | (503, _) => "OSS is throttling requests; they will be retried with backoff",
        (501 | 505, _) => {
            "the server (or a proxy in front of it) does not implement this request; check the endpoint"
        }
        (500..=599, _) => "OSS failed temporarily; the request will be retried",
        _ => "the request failed",
    }
}

/// A V4 request signed for another region than the endpoint's: OSS answers 400
/// `InvalidArgument` naming the signing region. The settings must change (`Misconfigured`,
/// exit 2 in the CLI, as for an S3 bucket in another region), not a transient or unknown
/// failure.
fn is_wrong_region(status: u16, code: Option<&str>, message: Option<&str>) -> bool {
    status == 400
        && code == Some("InvalidArgument")
        && message.is_some_and(|m| m.to_ascii_lowercase().contains("region"))
}

/// Builds the engine's error for an OSS error answer.
///
/// `operation` names what failed (e.g. `GetObject oss://bucket/key bytes 0-99`); it must not
/// contain credentials. The request id comes from the body or, failing that, from
/// `request_id_header` (`x-oss-request-id`).
pub fn source_error(
    operation: &str,
    status: u16,
    body: &ErrorBody,
    request_id_header: Option<&str>,
) -> SourceError {
    let code = body.code.as_deref();
    let kind = if is_wrong_region(status, code, body.message.as_deref()) {
        SourceErrorKind::Misconfigured
    } else {
        error_kind(status, code)
    };
    let mut message = format!(
        "{operation}: {}",
        advice(status, code, body.message.as_deref())
    );
    match (&body.message, &body.ec) {
        (Some(m), Some(ec)) => message.push_str(&format!(" (OSS: {m}; EC {ec})")),
        (Some(m), None) => message.push_str(&format!(" (OSS: {m})")),
        (None, Some(ec)) => message.push_str(&format!(" (EC {ec})")),
        (None, None) => {}
    }
    let mut err = SourceError::new(kind, message).with_status(status);
    if matches!(
        kind,
        SourceErrorKind::NotFound | SourceErrorKind::Denied | SourceErrorKind::Misconfigured
    ) {
        // The advice above is specific (which key, which credential, which region); the
        // engine's generic one would only repeat it less precisely.
        err = err.with_hint("");
    }
    if let Some(code) = code {
        err = err.with_code(code);
    }
    let request_id = body
        .request_id
        .as_deref()
        .or(request_id_header.map(str::trim).filter(|s| !s.is_empty()));
    if let Some(id) = request_id {
        err = err.with_request_id(id);
    }
    err
}
