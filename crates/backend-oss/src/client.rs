//! The public client: [`Client`] (one endpoint, credentials, signer and pooled HTTP
//! connections), its [`ClientBuilder`], and [`Bucket`] (one bucket, with the [`ReadOptions`]
//! every request to it carries). `Bucket` implements [`resume_core::RangeSource`]
//! (in `reader.rs`) and the seed's `download_file` (in `download.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use resume_core::{Algorithm, Checksum, ObjectMeta, Origin};

use crate::config::{AddressingStyle, ConfigError, Endpoint, validate_bucket};
use crate::core::Core;
use crate::credentials::{CachingProvider, CredentialsProvider, EnvCredentials, StaticCredentials};
use crate::sign::{SignError, SignatureVersion, Signer};

/// Lowest `x-oss-traffic-limit` OSS accepts, in bit/s (100 KiB/s).
pub const TRAFFIC_LIMIT_MIN: u64 = 819_200;
/// Highest `x-oss-traffic-limit` OSS accepts, in bit/s (100 MiB/s).
pub const TRAFFIC_LIMIT_MAX: u64 = 838_860_800;

/// Default time allowed to establish a connection (TCP + TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest wait for the next bytes of an answer (headers or body). Not a
/// whole-request timeout: a multi-GB body takes as long as it keeps moving.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP transport's read timeout for a client whose [`ClientBuilder::read_timeout`] is
/// `t`: `t` plus a quarter (at least 1 s), so the engine's idle timeout of `t` fires first.
pub fn transport_read_timeout(t: Duration) -> Duration {
    t.saturating_add((t / 4).max(Duration::from_secs(1)))
}

/// Default margin: credentials expiring within it are refreshed (or refused) before signing.
pub const DEFAULT_CREDENTIALS_HEADROOM: Duration = Duration::from_secs(5 * 60);

/// Why a client or bucket could not be configured. Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad endpoint, region, bucket name or key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The signer cannot be set up (e.g. V4 without a region).
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A missing or invalid setting, in words.
    #[error("{0}")]
    Invalid(String),
    /// The HTTP client could not be built (e.g. no TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

enum CredentialSource {
    Static(StaticCredentials),
    Env(EnvCredentials),
    Provider(Arc<dyn CredentialsProvider>),
}

/// Configures a [`Client`]; start with [`Client::builder`].
pub struct ClientBuilder {
    endpoint: Option<String>,
    region: Option<String>,
    style: Option<AddressingStyle>,
    credentials: Option<CredentialSource>,
    signature_version: SignatureVersion,
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
    user_agent: String,
    headroom: Duration,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials: &dyn fmt::Debug = match &self.credentials {
            None => &"none",
            Some(CredentialSource::Static(s)) => s,
            Some(CredentialSource::Env(e)) => e,
            Some(CredentialSource::Provider(p)) => p,
        };
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("style", &self.style)
            .field("credentials", credentials)
            .field("signature_version", &self.signature_version)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("user_agent", &self.user_agent)
            .field("credentials_headroom", &self.headroom)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            style: None,
            credentials: None,
            signature_version: SignatureVersion::V4,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            user_agent: concat!("resume-get-backend-oss/", env!("CARGO_PKG_VERSION")).into(),
            headroom: DEFAULT_CREDENTIALS_HEADROOM,
        }
    }
}

impl ClientBuilder {
    /// `[http://|https://]HOST[:PORT]`, e.g. `https://oss-cn-hangzhou.aliyuncs.com` or
    /// `http://127.0.0.1:9000`. See [`Endpoint::parse`] for the default addressing style and
    /// the derived region.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The V4 signing region (`cn-hangzhou`), for endpoints it cannot be derived from.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Forces an addressing style (virtual-hosted needs a DNS name, not an IP).
    pub fn addressing_style(mut self, style: AddressingStyle) -> Self {
        self.style = Some(style);
        self
    }

    /// The endpoint is a custom domain bound to one bucket (CNAME): URLs are `HOST/KEY`.
    pub fn cname(self, is_cname: bool) -> Self {
        if is_cname {
            self.addressing_style(AddressingStyle::Cname)
        } else {
            self
        }
    }

    /// A long-lived AccessKey pair.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<String>,
    ) -> Self {
        self.credentials = Some(CredentialSource::Static(StaticCredentials::new(
            access_key_id,
            access_key_secret,
        )));
        self
    }

    /// STS credentials: AccessKey pair plus security token (fixed; for refreshing ones use
    /// [`credentials_provider`](Self::credentials_provider)).
    pub fn sts_credentials(
        mut self,
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<String>,
        security_token: impl Into<String>,
    ) -> Self {
        self.credentials = Some(CredentialSource::Static(
            StaticCredentials::with_security_token(
                access_key_id,
                access_key_secret,
                security_token,
            ),
        ));
        self
    }

    /// Reads `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET` and `OSS_SESSION_TOKEN` before
    /// every request (so a rotated environment is picked up).
    pub fn env_credentials(self) -> Self {
        self.env_credentials_from(EnvCredentials::new())
    }

    /// Like [`env_credentials`](Self::env_credentials) with a custom variable lookup.
    pub fn env_credentials_from(mut self, env: EnvCredentials) -> Self {
        self.credentials = Some(CredentialSource::Env(env));
        self
    }

    /// Credentials from a provider (e.g. one that refreshes STS credentials). The client
    /// caches them and asks the provider again when they would expire within the
    /// [headroom](Self::credentials_headroom).
    pub fn credentials_provider(mut self, provider: impl CredentialsProvider + 'static) -> Self {
        self.credentials = Some(CredentialSource::Provider(Arc::new(provider)));
        self
    }

    /// Credentials expiring within this margin are refreshed before a request is signed, and
    /// refused if the provider cannot do better. Default: 5 minutes.
    pub fn credentials_headroom(mut self, headroom: Duration) -> Self {
        self.headroom = headroom;
        self
    }

    /// V4 (`OSS4-HMAC-SHA256`, the default; needs a region) or V1 (`OSS`, HMAC-SHA1).
    pub fn signature_version(mut self, version: SignatureVersion) -> Self {
        self.signature_version = version;
        self
    }

    /// Time allowed to establish a connection. Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest wait for the next bytes of an answer (`None`: wait forever). It resets on
    /// every read, so it never limits how long a moving body may take. Downloads through
    /// [`Bucket::download_file`] and [`Bucket::downloader`] use it as the engine's idle
    /// timeout; the HTTP transport's own read timeout is then a backstop set a little later
    /// ([`transport_read_timeout`]), so that a stall is reported by the engine, which names
    /// the part and the byte it stalled at. Default: 60 s.
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let endpoint = self.endpoint.ok_or_else(|| {
            Error::Invalid(
                "no OSS endpoint given; set one, e.g. \"https://oss-cn-hangzhou.aliyuncs.com\""
                    .into(),
            )
        })?;
        let mut endpoint = Endpoint::parse(&endpoint)?;
        if let Some(region) = &self.region {
            endpoint = endpoint.with_region(region)?;
        }
        if let Some(style) = self.style {
            endpoint = endpoint.with_style(style)?;
        }
        let signer = Signer::for_endpoint(self.signature_version, &endpoint)?;
        let credentials: Arc<dyn CredentialsProvider> = match self.credentials {
            None => {
                return Err(Error::Invalid(
                    "no credentials given; pass an AccessKey pair, STS credentials, a provider, \
                     or read them from OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET \
                     (env_credentials)"
                        .into(),
                ));
            }
            Some(CredentialSource::Static(s)) => Arc::new(s),
            Some(CredentialSource::Env(e)) => Arc::new(e),
            Some(CredentialSource::Provider(p)) => Arc::new(CachingProvider::new(p, self.headroom)),
        };
        if self.connect_timeout.is_zero() || self.read_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::Invalid("timeouts must be positive durations".into()));
        }

        install_crypto_provider();
        let mut http = reqwest::Client::builder()
            .http1_only()
            // No transparent decompression: bytes are counted and hashed as stored.
            .no_gzip()
            .no_brotli()
            .no_zstd()
            .no_deflate()
            // A redirect would be followed unsigned; report it instead.
            .redirect(reqwest::redirect::Policy::none())
            // The engine owns retries.
            .retry(reqwest::retry::never())
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(self.user_agent.clone());
        if let Some(t) = self.read_timeout {
            http = http.read_timeout(transport_read_timeout(t));
        }
        let http = http.build().map_err(Error::Http)?;
        Ok(Client {
            core: Arc::new(Core {
                http,
                endpoint,
                signer,
                credentials,
                headroom: self.headroom,
                connect_timeout: self.connect_timeout,
                read_timeout: self.read_timeout,
                user_agent: self.user_agent,
            }),
        })
    }
}

/// Makes ring the process's rustls crypto provider unless one is installed already (reqwest
/// is built without one, to keep aws-lc and OpenSSL out of the build).
fn install_crypto_provider() {
    // `Err` means a provider is installed already (perhaps the application's): keep it.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An OSS client: one endpoint, one signer, one credentials provider and one pool of
/// HTTP/1.1 connections, shared by every [`Bucket`] it hands out. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) core: Arc<Core>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl Client {
    /// A client for `endpoint` with an AccessKey pair, V4 signing and default timeouts: the
    /// seed's `oss.New(endpoint, id, secret)`.
    ///
    /// V4 needs a region: standard endpoints (`oss-cn-hangzhou.aliyuncs.com`) name it; for
    /// other endpoints use [`Client::builder`] with [`ClientBuilder::region`].
    pub fn new(
        endpoint: &str,
        access_key_id: &str,
        access_key_secret: &str,
    ) -> Result<Client, Error> {
        Self::builder()
            .endpoint(endpoint)
            .credentials(access_key_id, access_key_secret)
            .build()
    }

    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.core.endpoint
    }

    pub fn signature_version(&self) -> SignatureVersion {
        self.core.signer.version()
    }

    /// A handle on bucket `name` (checked against OSS's naming rules; nothing is sent).
    pub fn bucket(&self, name: &str) -> Result<Bucket, Error> {
        validate_bucket(name)?;
        Ok(Bucket {
            core: self.core.clone(),
            name: name.to_string(),
            options: Arc::new(ReadOptions::default()),
        })
    }
}

/// Options every request of a [`Bucket`] carries (HEAD and GET alike), signed by both
/// signature versions' rules.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Read this version (the `versionId` query parameter) when a call names none.
    pub version_id: Option<String>,
    /// `x-oss-request-payer: requester`: the requester pays for a requester-pays bucket.
    pub request_payer: bool,
    /// `x-oss-traffic-limit`, in bit/s, between [`TRAFFIC_LIMIT_MIN`] and
    /// [`TRAFFIC_LIMIT_MAX`].
    pub traffic_limit: Option<u64>,
    /// More headers. `x-oss-*` ones are signed (as OSS's rules require); names the client
    /// sets itself (`Authorization`, `Date`, `Range`, `If-Match`, `Host`, …) are refused.
    pub headers: Vec<(String, String)>,
}

impl fmt::Debug for ReadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are not shown: a user may pass anything there.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ReadOptions")
            .field("version_id", &self.version_id)
            .field("request_payer", &self.request_payer)
            .field("traffic_limit", &self.traffic_limit)
            .field("headers", &names)
            .finish()
    }
}

/// Headers the client sets itself; options may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "date",
    "host",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "accept-encoding",
    "content-length",
    "transfer-encoding",
    "connection",
    "x-oss-date",
    "x-oss-content-sha256",
    "x-oss-security-token",
    "x-oss-range-behavior",
    "x-oss-request-payer",
    "x-oss-traffic-limit",
];

impl ReadOptions {
    /// Checks every option; the message says what is wrong and what is allowed.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(limit) = self.traffic_limit
            && !(TRAFFIC_LIMIT_MIN..=TRAFFIC_LIMIT_MAX).contains(&limit)
        {
            return Err(Error::Invalid(format!(
                "traffic limit {limit} bit/s is outside what OSS accepts: \
                 {TRAFFIC_LIMIT_MIN}..={TRAFFIC_LIMIT_MAX} bit/s (100 KiB/s to 100 MiB/s)"
            )));
        }
        if let Some(v) = &self.version_id
            && v.is_empty()
        {
            return Err(Error::Invalid(
                "the version id is empty; omit it to read the current version".into(),
            ));
        }
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(Error::Invalid(format!(
                    "{name:?} is not a valid HTTP header name"
                )));
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err(Error::Invalid(format!(
                    "header {name} is set by the client itself and cannot be given as an option \
                     (use the version id, requester-pays and traffic-limit options instead)"
                )));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(Error::Invalid(format!(
                    "the value of header {name} is not valid in HTTP (visible ASCII only)"
                )));
            }
        }
        Ok(())
    }

    /// The headers these options add to a request.
    pub(crate) fn request_headers(&self) -> impl Iterator<Item = (String, String)> + '_ {
        let payer = self
            .request_payer
            .then(|| ("x-oss-request-payer".to_string(), "requester".to_string()));
        let limit = self
            .traffic_limit
            .map(|l| ("x-oss-traffic-limit".to_string(), l.to_string()));
        payer
            .into_iter()
            .chain(limit)
            .chain(self.headers.iter().cloned())
    }
}

/// One bucket of a [`Client`], with the [`ReadOptions`] its requests carry. Cheap to clone.
///
/// Implements [`resume_core::RangeSource`], so any [`resume_core::Downloader`] can download
/// from it; [`Bucket::download_file`] is the seed's call shape on top of that.
#[derive(Clone)]
pub struct Bucket {
    pub(crate) core: Arc<Core>,
    pub(crate) name: String,
    pub(crate) options: Arc<ReadOptions>,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .field("client", &self.core)
            .field("options", &self.options)
            .finish()
    }
}

impl Bucket {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn options(&self) -> &ReadOptions {
        &self.options
    }

    /// This bucket with `options` on every request (replacing the current ones).
    pub fn with_options(&self, options: ReadOptions) -> Result<Bucket, Error> {
        options.validate()?;
        Ok(Bucket {
            core: self.core.clone(),
            name: self.name.clone(),
            options: Arc::new(options),
        })
    }

    /// The URL of `key` (without query), as requests use it.
    pub fn object_url(&self, key: &str) -> Result<String, Error> {
        Ok(self.core.endpoint.object_url(&self.name, key)?)
    }

    /// An engine [`Downloader`](resume_core::Downloader) reading from this bucket, with the
    /// client's read timeout as its idle timeout.
    pub fn downloader(&self) -> resume_core::Downloader {
        let d = resume_core::Downloader::new(self.clone());
        match self.core.read_timeout {
            Some(t) => d.idle_timeout(t),
            None => d,
        }
    }
}

/// What a HEAD says about an object: the engine's [`ObjectMeta`] plus OSS specifics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    pub size: u64,
    /// Quoted, as sent.
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    /// `x-oss-version-id`.
    pub version_id: Option<String>,
    /// `x-oss-hash-crc64ecma`: whole-object CRC-64/XZ.
    pub crc64: Option<u64>,
    /// `Content-MD5` (decoded): the whole object's MD5, when the uploader gave one.
    pub content_md5: Option<[u8; 16]>,
    /// `x-oss-object-type`: `Normal`, `Multipart`, `Appendable`, `Symlink`.
    pub object_type: Option<String>,
    /// `x-oss-storage-class`: `Standard`, `IA`, `Archive`, …
    pub storage_class: Option<String>,
    pub content_type: Option<String>,
    /// `x-oss-request-id` of the HEAD.
    pub request_id: Option<String>,
}

impl ObjectInfo {
    /// Appendable objects change size and etag on every append; a download pins one state of
    /// the object with `If-Match` like any other, and restarts (or fails) if it is appended to.
    pub fn is_appendable(&self) -> bool {
        self.object_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("Appendable"))
    }

    /// The engine's view: what OSS published, as checksums of the whole object
    /// (`x-oss-hash-crc64ecma` as CRC-64/XZ, `Content-MD5` as MD5).
    pub fn meta(&self) -> ObjectMeta {
        let oss = || Origin::Store("OSS".into());
        let mut checksums = Vec::new();
        if let Some(crc) = self.crc64 {
            checksums.push(Checksum::crc(Algorithm::Crc64Xz, crc, oss()));
        }
        if let Some(md5) = self.content_md5
            && let Ok(c) = Checksum::new(Algorithm::Md5, md5.to_vec(), oss())
        {
            checksums.push(c);
        }
        ObjectMeta {
            size: self.size,
            etag: self.etag.clone(),
            last_modified: self.last_modified,
            version_id: self.version_id.clone(),
            checksums,
            checksum_note: None,
        }
    }
}

impl From<ObjectInfo> for ObjectMeta {
    fn from(info: ObjectInfo) -> Self {
        info.meta()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_read_timeout_backs_the_engine_idle_timeout_up_later() {
        let s = Duration::from_secs;
        assert_eq!(transport_read_timeout(s(2)), s(3));
        assert_eq!(transport_read_timeout(s(60)), s(75));
        assert_eq!(transport_read_timeout(Duration::MAX), Duration::MAX);
    }
}
