//! Request building, signing and sending: the one place an OSS request is made.
//!
//! Every request is signed afresh (each engine retry is a new call, so a retry never reuses a
//! stale `Date` or token), with credentials fetched from the provider and checked against the
//! configured headroom first. Failures are mapped onto the engine's taxonomy here, once:
//! transport failures before a response are `Transient`, error answers go through
//! [`crate::error`], and every error carries the request id when the server sent one.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use resume_core::{SourceError, SourceErrorKind, request_log};

use crate::config::Endpoint;
use crate::credentials::{CredentialsError, CredentialsProvider};
use crate::encode::encode_query;
use crate::error::{ErrorBody, source_error};
use crate::sign::{SignError, SignableRequest, Signer};

/// At most this much of an error answer's body is read.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;

/// The response header naming the request, for support tickets.
pub(crate) const REQUEST_ID: &str = "x-oss-request-id";

/// What a [`Client`](crate::Client) shares with its buckets: one pooled HTTP client, the
/// endpoint, the signer and the credentials provider.
pub(crate) struct Core {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoint: Endpoint,
    pub(crate) signer: Signer,
    pub(crate) credentials: Arc<dyn CredentialsProvider>,
    /// Credentials that expire within this are refused before a request is signed.
    pub(crate) headroom: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) user_agent: String,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint.to_string())
            .field("addressing_style", &self.endpoint.style())
            .field("region", &self.endpoint.region())
            .field("signature_version", &self.signer.version())
            .field("credentials", &self.credentials)
            .field("credentials_headroom", &self.headroom)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// One object request before signing. `query` and `headers` hold decoded values.
pub(crate) struct ObjectRequest<'a> {
    pub(crate) method: reqwest::Method,
    pub(crate) bucket: &'a str,
    /// Empty for a request on the bucket itself (ListObjectsV2): no object has an empty key.
    pub(crate) key: &'a str,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    /// What the request does, for messages: `GetObject oss://bucket/key bytes 0-99`.
    pub(crate) operation: &'a str,
}

impl Core {
    /// Signs `req` with fresh credentials and sends it. Returns the response whatever its
    /// status; fails only when no response arrived (or the request could not be built).
    pub(crate) async fn send(
        &self,
        req: &ObjectRequest<'_>,
    ) -> Result<reqwest::Response, SourceError> {
        let op = req.operation;
        let key = (!req.key.is_empty()).then_some(req.key);
        let mut url = match key {
            Some(key) => self.endpoint.object_url(req.bucket, key),
            None => self.endpoint.bucket_url(req.bucket),
        }
        .map_err(|e| SourceError::new(SourceErrorKind::Other, format!("{op}: {e}")))?;
        if !req.query.is_empty() {
            url.push('?');
            url.push_str(&encode_query(&req.query));
        }

        let creds = self
            .credentials
            .credentials()
            .await
            .map_err(|e| credentials_error(op, e))?;
        let now = SystemTime::now();
        if !creds.is_valid_at(now, self.headroom) {
            return Err(SourceError::new(
                SourceErrorKind::Denied,
                format!(
                    "{op}: the credentials expire within {:?}; refresh them (STS credentials are short-lived)",
                    self.headroom
                ),
            ));
        }
        let signable = SignableRequest::new(req.method.as_str(), Some(req.bucket), key)
            .query(&req.query)
            .headers(&req.headers);
        let signed = self
            .signer
            .sign_headers(&creds, &signable, now)
            .map_err(|e| sign_error(op, e))?;

        let mut headers = HeaderMap::with_capacity(req.headers.len() + 5);
        for (name, value) in req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())) {
            headers.append(header_name(op, name)?, header_value(op, name, value)?);
        }
        for (name, value) in signed.iter() {
            // Signed headers replace same-named ones, exactly as the signer assumed.
            headers.insert(header_name(op, name)?, header_value(op, name, value)?);
        }

        let method = req.method.as_str();
        request_log::headers(true, header_pairs(&headers));
        let sent = Instant::now();
        let response = self
            .http
            .request(req.method.clone(), &url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| {
                let e = match not_tls(&e) {
                    Some(tls) => self.tls_error(op, tls, e),
                    None => transport_error(op, e, None),
                };
                request_log::failure(method, &url, sent.elapsed(), &e);
                e
            })?;
        request_log::response(
            method,
            &url,
            response.status().as_u16(),
            request_id(response.headers()),
            sent.elapsed(),
        );
        request_log::headers(false, header_pairs(response.headers()));
        Ok(response)
    }
}

impl Core {
    /// A TLS failure that retrying cannot fix: the server does not speak TLS at all (a plain
    /// HTTP server behind an `https://` endpoint, or an endpoint typed without a scheme, which
    /// means `https://`), or its certificate is not trusted. Not `Transient`: the same answer
    /// would come back on every retry.
    fn tls_error(&self, op: &str, tls: TlsProblem, err: reqwest::Error) -> SourceError {
        let authority = self.endpoint.authority();
        match tls {
            TlsProblem::NotTls => SourceError::new(
                SourceErrorKind::Misconfigured,
                format!(
                    "{op}: the server at {authority} does not speak TLS (HTTPS); it answered \
                     like a plain HTTP server"
                ),
            )
            .with_hint(format!(
                "if it is a plain HTTP server (a local emulator usually is), use --endpoint \
                 http://{authority} (an endpoint without a scheme means https://)"
            ))
            .with_source(err),
            TlsProblem::Certificate(cause) => SourceError::new(
                SourceErrorKind::Other,
                format!("{op}: the TLS certificate of {authority} is not accepted ({cause})"),
            )
            .with_hint(
                "check the endpoint's host name, or use a server whose certificate a public \
                 authority signed",
            )
            .with_source(err),
        }
    }
}

/// Why a TLS handshake failed in a way no retry fixes.
#[derive(Debug)]
enum TlsProblem {
    /// The server's answer is not TLS at all.
    NotTls,
    /// The certificate was refused; rustls's reason.
    Certificate(String),
}

/// The TLS failure behind `err`, if it is one no retry fixes. rustls's error sits deep in
/// the chain, inside `io::Error`s (two, with hyper-rustls), whose `source()` skips the error
/// they wrap: each one is opened with `get_ref`.
fn not_tls(err: &reqwest::Error) -> Option<TlsProblem> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    // Bounded: error chains are short; a cyclic one must not hang the download.
    for _ in 0..32 {
        let e = next?;
        match e.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidMessage(_)) => return Some(TlsProblem::NotTls),
            Some(e @ rustls::Error::InvalidCertificate(_)) => {
                return Some(TlsProblem::Certificate(e.to_string()));
            }
            _ => {}
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => e.source(),
        };
    }
    None
}

/// `(name, value)` pairs for the request log.
fn header_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &[u8])> {
    headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()))
}

fn header_name(op: &str, name: &str) -> Result<HeaderName, SourceError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        SourceError::new(
            SourceErrorKind::Other,
            format!("{op}: {name:?} is not a valid HTTP header name"),
        )
    })
}

fn header_value(op: &str, name: &str, value: &str) -> Result<HeaderValue, SourceError> {
    // The value is not echoed: it may be a token.
    HeaderValue::from_str(value).map_err(|_| {
        SourceError::new(
            SourceErrorKind::Other,
            format!("{op}: the value of header {name} is not valid in HTTP (visible ASCII only)"),
        )
    })
}

/// The `x-oss-request-id` of a response, if any.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A header's value as text, if present and visible ASCII.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The engine's error for an OSS error answer: reads at most [`MAX_ERROR_BODY`] bytes of the
/// body (HEAD answers have none: their document is in the base64 `x-oss-err` header), parses
/// the `<Error>` document and maps status + code.
pub(crate) async fn error_from_response(op: &str, mut response: reqwest::Response) -> SourceError {
    let status = response.status().as_u16();
    let header_id = request_id(response.headers()).map(str::to_owned);
    let x_oss_err = header_str(response.headers(), "x-oss-err").map(str::to_owned);
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ERROR_BODY - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            // A broken error body still leaves the status to go by.
            Ok(None) | Err(_) => break,
        }
    }
    let parsed = ErrorBody::from_response(&body, x_oss_err.as_deref());
    source_error(op, status, &parsed, header_id.as_deref())
}

/// The engine's error for a transport failure: connection refused or reset, DNS, TLS,
/// timeouts and cut bodies are all `Transient` (the engine bounds its retries).
pub(crate) fn transport_error(
    op: &str,
    err: reqwest::Error,
    request_id: Option<&str>,
) -> SourceError {
    let (kind, what) = if err.is_builder() {
        (SourceErrorKind::Other, "the request could not be built")
    } else if err.is_timeout() {
        (SourceErrorKind::Transient, "timed out")
    } else if err.is_connect() {
        (SourceErrorKind::Transient, "could not connect")
    } else if err.is_body() || err.is_decode() {
        (SourceErrorKind::Transient, "the body was cut short")
    } else {
        (SourceErrorKind::Transient, "the connection failed")
    };
    // The innermost cause says what happened ("Connection refused", "connection reset").
    let mut cause: &dyn std::error::Error = &err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let message = format!("{op}: {what} ({cause})");
    // reqwest's message names the URL, which holds no secret (requests are signed in headers).
    let mut e = SourceError::new(kind, message).with_source(err);
    if let Some(id) = request_id {
        e = e.with_request_id(id);
    }
    e
}

fn credentials_error(op: &str, err: CredentialsError) -> SourceError {
    let kind = match err {
        // A refreshing provider (STS, a metadata service) may fail for a moment.
        CredentialsError::Provider { .. } => SourceErrorKind::Transient,
        _ => SourceErrorKind::Denied,
    };
    SourceError::new(kind, format!("{op}: no usable credentials: {err}"))
}

fn sign_error(op: &str, err: SignError) -> SourceError {
    let kind = match err {
        SignError::MissingKeys | SignError::Expired { .. } => SourceErrorKind::Denied,
        _ => SourceErrorKind::Other,
    };
    SourceError::new(kind, format!("{op}: cannot sign the request: {err}"))
}
