#![forbid(unsafe_code)]
//! HTTP(S) as a first-class source: [`HttpSource`] implements [`resume_core::RangeSource`]
//! for any web server, CDN or presigned object-store URL (OSS V1/V4, S3, GCS, Azure SAS).
//!
//! - [`config`]: the SOURCE URL taken apart (sent verbatim; key without signing parameters;
//!   expiry of a presigned URL; basic auth from user-info or `.netrc`) and [`HttpOptions`].
//! - `client` (private): the pooled `reqwest` client (rustls, HTTP/2 by ALPN, no
//!   decompression, no retries) and redirects, followed so that credentials never cross
//!   origins.
//! - `stat` (private): `HEAD`, or a first ranged `GET` when `HEAD` is refused, whose body is
//!   kept for the first part.
//! - `reader` (private): ranged `GET`s pinned by a strong `If-Match` or by
//!   `If-Unmodified-Since` plus a check of every answer's `Last-Modified`.
//! - `digest` (private): `Repr-Digest`, `Digest`, `Content-MD5` → published checksums.
//! - [`error`]: answers and transport failures → the engine's error kinds.
//!
//! No message, log line or `Debug` output shows a password, a signature or a token.

mod client;
pub mod config;
mod digest;
pub mod error;
mod reader;
mod stat;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use resume_core::redact::{is_signed_query, redact_url};
use resume_core::{ByteStream, RangeRead, RangeSource, ReadConditions, SourceError};
use url::Url;

pub use config::HttpOptions;
pub use error::BuildError;

use client::{Answer, Sender};
use config::Target;
use error::Signed;

/// An HTTP(S) URL as a [`RangeSource`]. Cheap to share; safe to call concurrently.
pub struct HttpSource {
    sender: Sender,
    target: Target,
    identity: String,
    /// Where a redirect chain ended for a start URL: parts go there directly.
    resolved: Mutex<HashMap<Url, Url>>,
    /// The body of the ranged `GET` a `stat` used instead of a refused `HEAD`, kept for the
    /// first read of the object's first bytes.
    stash: Mutex<Option<stat::Stash>>,
    /// Opaque tags (`"…"`, without `W/`) the server sent as weak: never sent in `If-Match`.
    weak: Mutex<HashSet<String>>,
}

impl fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSource")
            .field("url", &redact_url(self.target.url.as_str()))
            .field("key", &self.target.key)
            .field("auth", &self.sender.auth)
            .field(
                "headers",
                &self
                    .sender
                    .headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A pooled HTTP client (its connections, TLS settings and timeouts) built from
/// [`HttpOptions`], to share between the sources of many URLs ([`open_with`]): a list of URLs
/// on one host then reuses connections instead of opening one (and a TLS handshake) per URL.
/// Cheap to clone. Credentials and headers stay per source, never in the client.
#[derive(Clone)]
pub struct HttpClient(reqwest::Client);

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// The client `options` describe (nothing is sent).
    pub fn new(options: &HttpOptions) -> Result<Self, BuildError> {
        client::build_http(options).map(Self)
    }
}

/// Opens `url` (http:// or https://) with `options`: the source, and the key that names the
/// object (the path without its leading `/`, plus the query without signing parameters).
/// Nothing is sent.
pub fn open(url: &str, options: &HttpOptions) -> Result<(HttpSource, String), BuildError> {
    open_inner(url, options, None)
}

/// [`open`], sending through `client` (built with the same `options`), shared with other
/// sources.
pub fn open_with(
    url: &str,
    options: &HttpOptions,
    client: &HttpClient,
) -> Result<(HttpSource, String), BuildError> {
    open_inner(url, options, Some(client))
}

fn open_inner(
    url: &str,
    options: &HttpOptions,
    client: Option<&HttpClient>,
) -> Result<(HttpSource, String), BuildError> {
    let target = Target::parse(url)?;
    let mut auth = target.auth.clone();
    if auth.is_none()
        && let Some(netrc) = &options.netrc
    {
        let host = target.url.host_str().unwrap_or_default();
        auth = config::netrc_lookup(netrc, host)?;
    }
    let http = match client {
        Some(c) => c.0.clone(),
        None => client::build_http(options)?,
    };
    let origin = target.url.origin();
    let sender = Sender::new(http, options, auth, origin.clone())?;
    let key = target.key.clone();
    Ok((
        HttpSource {
            sender,
            identity: origin.ascii_serialization(),
            target,
            resolved: Mutex::default(),
            stash: Mutex::default(),
            weak: Mutex::default(),
        },
        key,
    ))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HttpSource {
    /// The URL for `key`: the URL given (signature and all) for its own key, else the key
    /// under the same origin.
    fn url_for(&self, key: &str) -> Result<Url, SourceError> {
        if key == self.target.key {
            return Ok(self.target.url.clone());
        }
        let mut url = self.target.url.clone();
        url.set_query(None);
        let (path, query) = key.split_once('?').unwrap_or((key, ""));
        url.set_path(&format!("/{path}"));
        if !query.is_empty() {
            url.set_query(Some(query));
        }
        Ok(url)
    }

    fn signed(&self, url: &Url) -> Signed {
        let presigned = url.query().is_some_and(is_signed_query);
        Signed {
            presigned,
            expires: if presigned && *url == self.target.url {
                self.target.expires
            } else {
                None
            },
        }
    }

    /// Sends a request for `key`, to where its redirects ended last time if they did. A
    /// remembered target that now answers 403, 404 or 410 (an expired CDN or presigned
    /// target) is forgotten and the URL given resolved again.
    async fn request(
        &self,
        method: reqwest::Method,
        key: &str,
        extra: &reqwest::header::HeaderMap,
        op: &str,
    ) -> Result<(Answer, Url), SourceError> {
        let start = self.url_for(key)?;
        let remembered = lock(&self.resolved).get(&start).cloned();
        if let Some(target) = remembered {
            let answer = self.sender.send(method.clone(), &target, extra, op).await?;
            if !matches!(answer.response.status().as_u16(), 403 | 404 | 410) {
                return Ok((answer, start));
            }
            tracing::info!(
                operation = op,
                status = answer.response.status().as_u16(),
                "the redirect target refused the request; resolving the URL again"
            );
            lock(&self.resolved).remove(&start);
        }
        let answer = self.sender.send(method, &start, extra, op).await?;
        if answer.url != start && answer.response.status().is_success() {
            lock(&self.resolved).insert(start.clone(), answer.url.clone());
        }
        Ok((answer, start))
    }

    /// `W/"x"` → `"x"`, remembering that the server called it weak. Weakness is a property
    /// of when a server computed the tag (Apache: within a second of a change), not of the
    /// content: the same tag later sent strong names the same bytes, so a checkpoint taken
    /// under one resumes under the other.
    fn etag(&self, headers: &reqwest::header::HeaderMap) -> Option<String> {
        let raw = headers.get(reqwest::header::ETAG)?.to_str().ok()?.trim();
        if raw.is_empty() {
            return None;
        }
        match raw.strip_prefix("W/") {
            Some(tag) => {
                lock(&self.weak).insert(tag.to_owned());
                Some(tag.to_owned())
            }
            None => Some(raw.to_owned()),
        }
    }

    fn is_weak(&self, etag: &str) -> bool {
        lock(&self.weak).contains(etag)
    }

    /// `GET https://host/path?…&X-Amz-Signature=<redacted>`: for messages.
    fn describe(&self, method: &str, key: &str) -> String {
        let url = self
            .url_for(key)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| key.to_owned());
        format!("{method} {}", redact_url(&url))
    }
}

fn last_modified(headers: &reqwest::header::HeaderMap) -> Option<SystemTime> {
    headers
        .get(reqwest::header::LAST_MODIFIED)?
        .to_str()
        .ok()
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
}

#[async_trait::async_trait]
impl RangeSource for HttpSource {
    /// `http(s)://host[:port]`: the origin, never user-info or a query.
    fn identity(&self) -> String {
        self.identity.clone()
    }

    async fn stat(
        &self,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<resume_core::ObjectMeta, SourceError> {
        stat::stat(self, key, version_id).await
    }

    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        reader::read_range(self, key, range, conditions).await
    }
}

/// `body` cut to its first `len` bytes (it ends there, dropping the rest of the answer).
fn limit(body: ByteStream, len: u64) -> ByteStream {
    use futures::StreamExt as _;
    futures::stream::unfold((body, len), |(mut body, left)| async move {
        if left == 0 {
            return None;
        }
        match body.next().await? {
            Err(e) => Some((Err(e), (body, 0))),
            Ok(mut chunk) => {
                if chunk.len() as u64 > left {
                    chunk.truncate(left as usize);
                }
                let left = left - chunk.len() as u64;
                Some((Ok(chunk), (body, left)))
            }
        }
    })
    .boxed()
}
