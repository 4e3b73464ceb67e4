//! `object_store::Error` → the engine's [`SourceErrorKind`].
//!
//! object_store maps a few HTTP statuses to their own variants (404 → `NotFound`, 401 →
//! `Unauthenticated`, 403 → `PermissionDenied`, 412 → `Precondition`, 304 → `NotModified`)
//! and wraps everything else — other statuses after its own retries, transport failures,
//! malformed responses — in `Generic`. `Generic` is therefore classified by what it wraps:
//! the HTTP status in the retry error's text, a transport error (`HttpError`), an I/O error,
//! or the range errors object_store raises itself. Anything left over is `Transient`: the
//! engine's retries are bounded, and a persistent failure still ends with its message.

use std::error::Error as StdError;

use object_store::client::HttpError;
use resume_core::{SourceError, SourceErrorKind};

/// Which request failed, for the message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Stat,
    Read,
    Body,
    /// Listing a prefix (the "key" is the prefix).
    List,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Stat => "stat of",
            Op::Read => "ranged read of",
            Op::Body => "reading the body of",
            Op::List => "listing of the prefix",
        }
    }
}

/// Maps `err`, raised while doing `op` on `key`, to a [`SourceError`] the engine acts on.
/// The message is the whole error chain with every URL in it redacted ([`redact`]).
pub(crate) fn map_error(err: &object_store::Error, op: Op, key: &str) -> SourceError {
    let text = without_timings(&redact(&chain_text(err)));
    let status = find_status(&text);
    let kind = match (op, err) {
        // A body that fails part-way is always worth resuming where it broke.
        (Op::Body, _) => SourceErrorKind::Transient,
        (_, object_store::Error::NotFound { .. }) => SourceErrorKind::NotFound,
        (
            _,
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. },
        ) => SourceErrorKind::Denied,
        (_, object_store::Error::Precondition { .. }) => SourceErrorKind::Changed,
        (_, object_store::Error::Generic { .. }) => classify_generic(err, status, &text),
        // NotModified (we never send If-None-Match), AlreadyExists, InvalidPath,
        // NotSupported, NotImplemented, configuration and join errors: retrying won't help.
        _ => SourceErrorKind::Other,
    };
    let tls = tls_problem(err);
    let kind = match tls {
        Some(TlsProblem::NotTls) => SourceErrorKind::Misconfigured,
        Some(TlsProblem::Certificate) => SourceErrorKind::Other,
        None => kind,
    };
    let mut message = format!("{} {key:?} failed: {text}", op.verb());
    if tls == Some(TlsProblem::NotTls) {
        message.push_str(
            " (the server does not speak TLS: it answered an https:// request like a plain \
             HTTP server; if it is one, give the endpoint as http://HOST:PORT — an endpoint \
             without a scheme means https://)",
        );
    }
    if text.contains(HTTP_NOT_ALLOWED) {
        message.push_str(
            " (a plain http:// endpoint needs allow_http: StoreOptions::allow_http(true) or \
             the store's allow_http option)",
        );
    }
    if status == Some(501) {
        message.push_str(
            " (the server does not implement this request, e.g. HEAD or a ranged GET, so it \
             cannot serve a resumable download)",
        );
    }
    let mut e = SourceError::new(kind, message);
    if let Some(s) = status {
        e = e.with_status(s);
    }
    if let Some(code) = xml_tag(&text, "Code") {
        e = e.with_code(code);
    }
    if let Some(id) = xml_tag(&text, "RequestId") {
        e = e.with_request_id(id);
    }
    e
}

/// A TLS failure no retry fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsProblem {
    /// The server's answer is not TLS at all (a plain HTTP server behind `https://`).
    NotTls,
    /// The server's certificate was refused.
    Certificate,
}

/// The TLS failure behind `err`, if it is one no retry fixes. rustls's error sits deep in the
/// chain, inside `io::Error`s, whose `source()` skips the error they wrap: each one is opened
/// with `get_ref`. (backend-oss has the same check for its own client.)
fn tls_problem(err: &(dyn StdError + 'static)) -> Option<TlsProblem> {
    let mut next = Some(err);
    // Bounded: error chains are short; a cyclic one must not hang the download.
    for _ in 0..32 {
        let e = next?;
        match e.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidMessage(_)) => return Some(TlsProblem::NotTls),
            Some(rustls::Error::InvalidCertificate(_)) => return Some(TlsProblem::Certificate),
            _ => {}
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => e.source(),
        };
    }
    None
}

/// reqwest's refusal of an `http://` URL by a client built without `allow_http`.
const HTTP_NOT_ALLOWED: &str = "URL scheme is not allowed";

fn classify_generic(err: &object_store::Error, status: Option<u16>, text: &str) -> SourceErrorKind {
    if let Some(status) = status {
        return match status {
            404 => SourceErrorKind::NotFound,
            401 | 403 => SourceErrorKind::Denied,
            412 => SourceErrorKind::Changed,
            416 => SourceErrorKind::InvalidRange,
            // 501 Not Implemented and 505 HTTP Version Not Supported describe the server, not
            // a moment of it: asking again gets the same answer.
            501 | 505 => SourceErrorKind::Other,
            408 | 429 | 500..=599 => SourceErrorKind::Transient,
            _ => SourceErrorKind::Other,
        };
    }
    // A configuration problem surfacing at request time: retrying cannot fix it.
    if text.contains(HTTP_NOT_ALLOWED) {
        return SourceErrorKind::Other;
    }
    // object_store's own range checks (InMemory, LocalFileSystem, and a response whose
    // Content-Range does not fit the object): "Wanted range starting at N, but object was
    // only M bytes long" / "Requested range was invalid".
    if text.contains("Wanted range starting at") || text.contains("Requested range was invalid") {
        return SourceErrorKind::InvalidRange;
    }
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<HttpError>().is_some() {
            // Connect, request, timeout, interrupted, truncated or undecodable body.
            return SourceErrorKind::Transient;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::NotFound => SourceErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => SourceErrorKind::Denied,
                _ => SourceErrorKind::Transient,
            };
        }
        cur = e.source();
    }
    // A response without the headers object_store needs (a 206 without a usable
    // Content-Range, a HEAD without Content-Length…) will not grow them on retry.
    const MALFORMED: [&str; 6] = [
        "Content-Range header",
        "CONTENT_RANGE header",
        "Header missing from response",
        "Invalid content length",
        "Invalid last modified",
        "Received header containing non-ASCII data",
    ];
    if MALFORMED.iter().any(|m| text.contains(m)) {
        return SourceErrorKind::Other;
    }
    SourceErrorKind::Transient
}

/// Whether `err` says the server answered a ranged GET with the whole object (HTTP 200
/// instead of 206). object_store refuses such a response before we see it: the S3, GCS and
/// Azure clients with "Received non-partial response when range requested", the HTTP store
/// with `NotSupported` "Range request not supported by …".
pub(crate) fn is_range_ignored(err: &object_store::Error) -> bool {
    let text = chain_text(err);
    text.contains("Received non-partial response when range requested")
        || text.contains("Range request not supported")
}

/// The error and its sources, each once (object_store's `Display` often repeats its source).
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// The first "status code: NNN" in the text (object_store's `RequestError::Status`).
fn find_status(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    let digits = text.get(at..at + 3)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

/// The content of the first `<tag>…</tag>` in an XML error body (S3, Azure), if short.
fn xml_tag(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{tag}>"))?;
    let value = text[start..start + len].trim();
    (!value.is_empty() && value.len() <= 200 && !value.contains('<')).then(|| value.to_owned())
}

/// `text` with every URL in it redacted: user-info passwords and signing / token query
/// parameters (presigned URLs, SAS tokens) replaced, the rest kept for the reader. (object_store
/// already hides the URL of requests it marks sensitive.) The one redaction of the workspace:
/// [`resume_core::redact`].
pub(crate) fn redact(text: &str) -> String {
    resume_core::redact::redact_text(text)
}

/// `text` without object_store's request timings (`Error performing HEAD <url> in 8.179356ms
/// - …`): how long a failed request took is noise in a message about why it failed.
fn without_timings(text: &str) -> String {
    const UNITS: [&str; 6] = ["ns", "µs", "us", "ms", "s", "m"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" in ") {
        let after = &rest[i + 4..];
        let digits = after
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(after.len());
        let unit = UNITS.iter().find(|u| {
            after[digits..].starts_with(*u)
                && after[digits + u.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == ' ' || c == ',' || c == ':')
        });
        match unit {
            Some(u) if digits > 0 && out.len() + i > 0 && text.contains("Error performing") => {
                out.push_str(&rest[..i]);
                rest = &after[digits + u.len()..];
            }
            _ => {
                out.push_str(&rest[..i + 4]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timings_are_dropped_and_other_text_kept() {
        assert_eq!(
            without_timings(
                "Error performing HEAD http://127.0.0.1:1/x in 821.638µs - HTTP error: refused"
            ),
            "Error performing HEAD http://127.0.0.1:1/x - HTTP error: refused"
        );
        assert_eq!(
            without_timings("Error performing GET http://h/k in 1.139061ms - 404 Not Found"),
            "Error performing GET http://h/k - 404 Not Found"
        );
        // Without object_store's request error, " in " is ordinary prose.
        let prose = "the key in 2s folder was not found in 3 places";
        assert_eq!(without_timings(prose), prose);
    }

    #[derive(Debug)]
    struct Msg(&'static str);
    impl std::fmt::Display for Msg {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Msg {}

    fn generic(msg: &'static str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(Msg(msg)),
        }
    }

    #[test]
    fn not_implemented_is_not_retried_and_says_the_server_cannot_serve_it() {
        let e = map_error(
            &generic(
                "Error performing HEAD http://h/b/k in 1ms - Server returned non-2xx status code: \
                 501 Not Implemented: ",
            ),
            Op::Stat,
            "k",
        );
        assert_eq!(e.kind, SourceErrorKind::Other);
        assert!(!e.kind.is_retryable());
        assert!(e.to_string().contains("does not implement"), "{e}");
    }

    #[test]
    fn generic_errors_are_classified_by_the_status_they_carry() {
        let cases = [
            (
                "Error performing GET http://h/b/k in 3ms - Server returned non-2xx status code: 503 Service Unavailable: <Error><Code>SlowDown</Code><RequestId>r-1</RequestId></Error>",
                SourceErrorKind::Transient,
                Some(503),
            ),
            (
                "Server returned non-2xx status code: 416 Range Not Satisfiable: <Code>InvalidRange</Code>",
                SourceErrorKind::InvalidRange,
                Some(416),
            ),
            (
                "Server returned non-2xx status code: 429 Too Many Requests: ",
                SourceErrorKind::Transient,
                Some(429),
            ),
            (
                "Server returned non-2xx status code: 400 Bad Request: ",
                SourceErrorKind::Other,
                Some(400),
            ),
            (
                "Error performing HEAD http://h/b/k in 1ms - Server returned non-2xx status code: 501 Not Implemented: ",
                SourceErrorKind::Other,
                Some(501),
            ),
            (
                "Server returned non-2xx status code: 502 Bad Gateway: ",
                SourceErrorKind::Transient,
                Some(502),
            ),
            (
                "Server returned non-2xx status code: 412 Precondition Failed: ",
                SourceErrorKind::Changed,
                Some(412),
            ),
            (
                "Wanted range starting at 10, but object was only 5 bytes long",
                SourceErrorKind::InvalidRange,
                None,
            ),
            (
                "Content-Range header not present in partial response",
                SourceErrorKind::Other,
                None,
            ),
            (
                "Content-Length Header missing from response",
                SourceErrorKind::Other,
                None,
            ),
            ("something unexpected", SourceErrorKind::Transient, None),
        ];
        for (msg, kind, status) in cases {
            let e = map_error(&generic(msg), Op::Read, "k");
            assert_eq!((e.kind, e.status), (kind, status), "{msg}");
        }
        let e = map_error(&generic(cases[0].0), Op::Stat, "k");
        assert_eq!(e.code.as_deref(), Some("SlowDown"));
        assert_eq!(e.request_id.as_deref(), Some("r-1"));
    }

    #[test]
    fn typed_variants_map_directly_and_body_errors_are_always_transient() {
        let boxed = || Box::new(Msg("x")) as Box<dyn StdError + Send + Sync>;
        let p = || "k".to_string();
        let cases = [
            (
                object_store::Error::NotFound {
                    path: p(),
                    source: boxed(),
                },
                SourceErrorKind::NotFound,
            ),
            (
                object_store::Error::PermissionDenied {
                    path: p(),
                    source: boxed(),
                },
                SourceErrorKind::Denied,
            ),
            (
                object_store::Error::Unauthenticated {
                    path: p(),
                    source: boxed(),
                },
                SourceErrorKind::Denied,
            ),
            (
                object_store::Error::Precondition {
                    path: p(),
                    source: boxed(),
                },
                SourceErrorKind::Changed,
            ),
            (
                object_store::Error::NotModified {
                    path: p(),
                    source: boxed(),
                },
                SourceErrorKind::Other,
            ),
        ];
        for (err, kind) in &cases {
            assert_eq!(map_error(err, Op::Read, "k").kind, *kind, "{err}");
            assert_eq!(
                map_error(err, Op::Body, "k").kind,
                SourceErrorKind::Transient
            );
        }
        let io = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        };
        assert_eq!(map_error(&io, Op::Stat, "k").kind, SourceErrorKind::Denied);
    }

    #[test]
    fn secrets_in_urls_are_redacted_from_messages() {
        let text = "GET https://acct.blob.core.windows.net/c/k?sv=2020&sig=SECRET failed; \
                    also http://u:PASSW@h:1/p?X-Amz-Signature=abc&X-Amz-Security-Token=tok\"";
        let r = redact(text);
        for secret in ["SECRET", "PASSW", "abc", "tok"] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.contains("https://acct.blob.core.windows.net/c/k?sv=2020&sig=<redacted> failed"));
        assert!(r.contains(
            "http://u:<redacted>@h:1/p?X-Amz-Signature=<redacted>&X-Amz-Security-Token=<redacted>\""
        ));
        let e = map_error(
            &generic("Error performing GET http://u:PASSW@h/b/k?sig=SECRET in 1ms"),
            Op::Read,
            "k",
        );
        assert!(
            !e.to_string().contains("SECRET") && !e.to_string().contains("PASSW"),
            "{e}"
        );
    }

    #[test]
    fn ignored_range_is_recognised_in_both_wordings() {
        assert!(is_range_ignored(&generic(
            "Received non-partial response when range requested"
        )));
        let ns = object_store::Error::NotSupported {
            source: Box::new(Msg("Range request not supported by k")),
        };
        assert!(is_range_ignored(&ns));
        assert!(!is_range_ignored(&generic("status code: 500")));
    }
}
