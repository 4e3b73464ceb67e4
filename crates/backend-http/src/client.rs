//! The one place a request is sent: a pooled `reqwest` client (rustls with ring, HTTP/2 when
//! a TLS server offers it by ALPN, HTTP/1.1 keep-alive otherwise, no decompression, no
//! retries of its own) and redirects followed here, not by reqwest, so that credentials
//! never cross to another origin and the final URL can be remembered.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use resume_core::redact::redact_url;
use resume_core::request_log;
use resume_core::{SourceError, SourceErrorKind};
use url::Url;

use crate::config::{BasicAuth, CREDENTIAL_HEADERS, HttpOptions, MAX_REDIRECTS};
use crate::error::{BuildError, transport_error};

/// The transport's read timeout for an engine idle timeout of `t`: a little longer, so the
/// engine's fires first and says what stalled.
fn transport_read_timeout(t: Duration) -> Duration {
    t.saturating_add((t / 4).max(Duration::from_secs(1)))
}

/// Builds the pooled client for `options`.
pub(crate) fn build_http(options: &HttpOptions) -> Result<reqwest::Client, BuildError> {
    if options.connect_timeout.is_zero() || options.read_timeout.is_some_and(|t| t.is_zero()) {
        return Err(BuildError::new("timeouts must be positive durations"));
    }
    // Keep an application's provider if it installed one; else ring (no aws-lc, no OpenSSL).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        // Bytes are counted and hashed as the server stores them; `Accept-Encoding: identity`
        // is sent on every request and a coded body is refused.
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        // Followed in `send`: credentials must not cross origins, and the final URL is kept.
        .redirect(reqwest::redirect::Policy::none())
        // The engine owns retries.
        .retry(reqwest::retry::never())
        .connect_timeout(options.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(options.user_agent.clone());
    if let Some(t) = options.read_timeout {
        b = b.read_timeout(transport_read_timeout(t));
    }
    if let Some(path) = &options.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            BuildError::new(format!(
                "cannot read the --cacert file {}: {e}",
                path.display()
            ))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            BuildError::new(format!(
                "the --cacert file {} holds no PEM certificate ({e}); give the certificate \
                 authority's certificate in PEM form (-----BEGIN CERTIFICATE-----)",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(BuildError::new(format!(
                "the --cacert file {} holds no PEM certificate; give the certificate \
                 authority's certificate in PEM form (-----BEGIN CERTIFICATE-----)",
                path.display()
            )));
        }
        b = b.tls_certs_only(certs);
    }
    b.build()
        .map_err(|e| BuildError::new(format!("cannot build the HTTP client: {e}")))
}

/// Sends requests for one source: its client, the user's headers and the credentials that go
/// to the source URL's origin only.
#[derive(Debug)]
pub(crate) struct Sender {
    pub(crate) http: reqwest::Client,
    /// `--header`s; those in [`CREDENTIAL_HEADERS`] only to `origin`.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// Basic auth for `origin` (from the URL's user-info or `.netrc`).
    pub(crate) auth: Option<BasicAuth>,
    /// The origin of the URL the user gave.
    pub(crate) origin: url::Origin,
}

/// A final answer (not a redirect) and the URL that gave it.
pub(crate) struct Answer {
    pub(crate) response: Response,
    pub(crate) url: Url,
}

impl Sender {
    pub(crate) fn new(
        http: reqwest::Client,
        options: &HttpOptions,
        auth: Option<BasicAuth>,
        origin: url::Origin,
    ) -> Result<Self, BuildError> {
        let mut headers = Vec::with_capacity(options.headers.len());
        for (k, v) in &options.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| BuildError::new(format!("{k:?} is not a valid HTTP header name")))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                BuildError::new(format!("the value of header {k} is not valid in HTTP"))
            })?;
            if CREDENTIAL_HEADERS.contains(&name.as_str()) {
                // Kept out of reqwest's and hyper's debug output.
                value.set_sensitive(true);
            }
            headers.push((name, value));
        }
        Ok(Self {
            http,
            headers,
            auth,
            origin,
        })
    }

    /// Sends `method` to `url` with `extra` headers, following at most [`MAX_REDIRECTS`]
    /// redirects (301, 302, 303, 307, 308; a HEAD or GET stays one). The user's credentials
    /// (basic auth, `Authorization`, `Cookie` headers) go only to requests for the source
    /// URL's origin. Fails only when no final answer arrived.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &Url,
        extra: &HeaderMap,
        op: &str,
    ) -> Result<Answer, SourceError> {
        let mut url = url.clone();
        for hop in 0..=MAX_REDIRECTS {
            let same_origin = url.origin() == self.origin;
            let mut req = self.http.request(method.clone(), url.clone());
            for (name, value) in &self.headers {
                if same_origin || !CREDENTIAL_HEADERS.contains(&name.as_str()) {
                    req = req.header(name, value);
                }
            }
            // An explicit `Authorization` header wins over user-info and `.netrc` (as curl).
            let explicit = self
                .headers
                .iter()
                .any(|(n, _)| n == reqwest::header::AUTHORIZATION);
            if same_origin
                && !explicit
                && let Some(a) = &self.auth
            {
                req = req.basic_auth(&a.user, a.password.as_ref());
            }
            req = req
                .header(reqwest::header::ACCEPT_ENCODING, "identity")
                .headers(extra.clone());
            let request = req.build().map_err(|e| transport_error(op, e))?;
            // The request log every backend follows (`-v` lines, `-vv` headers).
            request_log::headers(
                true,
                request
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes())),
            );
            tracing::trace!(operation = op, url = %redact_url(url.as_str()), hop, "sending");
            let started = Instant::now();
            let response = match self.http.execute(request).await {
                Ok(r) => r,
                Err(e) => {
                    request_log::failure(method.as_str(), url.as_str(), started.elapsed(), &e);
                    return Err(transport_error(op, e));
                }
            };
            let status = response.status();
            let pairs = || {
                response
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes()))
            };
            request_log::response(
                method.as_str(),
                url.as_str(),
                status.as_u16(),
                request_log::request_id(pairs()).as_deref(),
                started.elapsed(),
            );
            request_log::headers(false, pairs());
            tracing::trace!(operation = op, status = status.as_u16(), version = ?response.version(), "answered");
            if !is_redirect(status) {
                return Ok(Answer { response, url });
            }
            let Some(location) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                // A redirect without a target is an answer like any other.
                return Ok(Answer { response, url });
            };
            let next = url.join(location.trim()).map_err(|e| {
                SourceError::new(
                    SourceErrorKind::Other,
                    format!(
                        "{op}: the server redirected to an invalid location {:?} ({e})",
                        redact_url(location)
                    ),
                )
                .with_status(status.as_u16())
            })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(SourceError::new(
                    SourceErrorKind::Other,
                    format!(
                        "{op}: the server redirected to {}, which is not http(s)",
                        redact_url(next.as_str())
                    ),
                )
                .with_status(status.as_u16()));
            }
            tracing::debug!(
                operation = op,
                status = status.as_u16(),
                to = %redact_url(next.as_str()),
                "following a redirect"
            );
            url = next;
        }
        Err(SourceError::new(
            SourceErrorKind::Other,
            format!(
                "{op}: more than {MAX_REDIRECTS} redirects (a redirect loop?), last to {}; \
                 check the URL",
                redact_url(url.as_str())
            ),
        ))
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}
