//! Building an [`ObjectStoreSource`] from a URL, with configuration from the environment and
//! explicit options, and the HTTP client settings the engine needs.

use std::fmt;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::ObjectStoreSource;
use crate::azure_md5::AzureMd5;
use crate::error::redact;
use crate::gcs::Gcs;
use crate::request_log::{Capture, Logged};
use crate::s3::{RegionWatch, S3Hints};
use crate::s3_checksum::S3Checksums;

/// A URL or configuration that cannot be turned into a source. Never contains credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    message: String,
}

impl BuildError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: redact(&message.into()),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

/// S3 request addressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `https://endpoint/bucket/key` — what MinIO, moto and most S3-compatible servers expect.
    /// object_store's default.
    PathStyle,
    /// `https://bucket.endpoint/key` — AWS's preferred form.
    VirtualHosted,
}

/// How the HTTP client under a store behaves; see the crate docs for why the defaults are
/// what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSettings {
    /// Time to establish a TCP (+TLS) connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Whole-request timeout, body included. Default `None`: a part download that keeps
    /// receiving bytes is never cut off; the engine's idle-read timeout catches stalls.
    pub request_timeout: Option<Duration>,
    /// Longest wait for any single read from the socket. Default `None` (the engine's
    /// idle timeout covers it); set it as a backstop when the source is used without the
    /// engine.
    pub read_timeout: Option<Duration>,
    /// object_store's own retries of one request. Default 0: the engine retries per part,
    /// resuming a broken body at the byte where it broke, with its own bounded, jittered
    /// backoff. Retries here would multiply with the engine's.
    pub max_retries: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
            read_timeout: None,
            max_retries: 0,
        }
    }
}

/// `ClientOptions` for a store the engine reads from: no whole-request timeout, a connect
/// timeout, an optional read timeout (see [`ClientSettings`]).
pub fn engine_client_options(settings: &ClientSettings) -> ClientOptions {
    let mut o = ClientOptions::new().with_connect_timeout(settings.connect_timeout);
    o = match settings.request_timeout {
        Some(t) => o.with_timeout(t),
        None => o.with_timeout_disabled(),
    };
    if let Some(t) = settings.read_timeout {
        o = o.with_read_timeout(t);
    }
    o
}

/// `RetryConfig` for a store the engine reads from: `max_retries` from the settings (0 by
/// default); with retries, object_store's short backoff and a 3-minute retry deadline, which
/// then only limits object_store's own retries — never a healthy transfer, since it is not a
/// timeout but a bound on when a retry may still start.
pub fn engine_retry_config(settings: &ClientSettings) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: settings.max_retries,
        retry_timeout: Duration::from_secs(180),
    }
}

/// Options for [`from_url`]. Values never appear in `Debug` output.
///
/// Precedence, lowest first: the client settings of [`ClientSettings`], then the
/// environment (`AWS_*` for `s3://`, `GOOGLE_*` and `SERVICE_ACCOUNT` for `gs://`,
/// `AZURE_*` and `MSI_ENDPOINT` for `az://`; exactly the variables object_store's
/// `from_env` reads), then [`config`](Self::config) pairs, then the typed options.
#[derive(Clone, Default)]
pub struct StoreOptions {
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: bool,
    addressing: Option<Addressing>,
    config: Vec<(String, String)>,
    env: EnvSource,
    client: ClientSettings,
}

#[derive(Clone, Default)]
enum EnvSource {
    #[default]
    Process,
    Given(Vec<(String, String)>),
    None,
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("endpoint", &self.endpoint.as_deref().map(redact_endpoint))
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("addressing", &self.addressing)
            .field(
                "config_keys",
                &self.config.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field(
                "env",
                &match self.env {
                    EnvSource::Process => "process",
                    EnvSource::Given(_) => "given",
                    EnvSource::None => "none",
                },
            )
            .field("client", &self.client)
            .finish()
    }
}

impl StoreOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Endpoint override: an S3-compatible server (`http://127.0.0.1:9000`), an Azure
    /// endpoint or emulator, or a GCS base URL.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// S3 region (default: from the environment, else `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Allow plain `http://` endpoints (local servers). `http://` source URLs allow it
    /// implicitly: the scheme already says so.
    pub fn allow_http(mut self, yes: bool) -> Self {
        self.allow_http = yes;
        self
    }

    /// S3 addressing style (default: the environment's, else path-style).
    pub fn addressing(mut self, addressing: Addressing) -> Self {
        self.addressing = Some(addressing);
        self
    }

    /// Shorthand for [`Addressing::PathStyle`].
    pub fn path_style(self) -> Self {
        self.addressing(Addressing::PathStyle)
    }

    /// Shorthand for [`Addressing::VirtualHosted`].
    pub fn virtual_hosted(self) -> Self {
        self.addressing(Addressing::VirtualHosted)
    }

    /// Any object_store configuration key of the URL's store, e.g. `aws_access_key_id`,
    /// `aws_secret_access_key`, `google_service_account`, `azure_storage_account_key`,
    /// `proxy_url`. Unknown keys are an error at [`from_url`].
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Ignore the process environment.
    pub fn no_env(mut self) -> Self {
        self.env = EnvSource::None;
        self
    }

    /// Use these variables instead of the process environment (for tests and embedding).
    pub fn environment<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = EnvSource::Given(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// HTTP client behaviour (timeouts, object_store's own retries).
    pub fn client(mut self, settings: ClientSettings) -> Self {
        self.client = settings;
        self
    }

    fn env_vars(&self) -> Vec<(String, String)> {
        match &self.env {
            EnvSource::Process => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            EnvSource::Given(v) => v.clone(),
            EnvSource::None => Vec::new(),
        }
    }

    /// Environment variables with `prefix`, as object_store's `from_env` reads them
    /// (lower-cased names that parse as a key of the store; others are ignored).
    fn env_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.env_vars()
            .into_iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    }

    fn env_var(&self, name: &str) -> Option<String> {
        self.env_vars()
            .into_iter()
            .find_map(|(k, v)| (k == name).then_some(v))
    }
}

/// Installs rustls' ring provider as the process default unless one is installed already:
/// object_store's HTTP client (reqwest, built without a provider of its own so the workspace
/// uses ring only) takes the process default.
pub fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: one provider is in place.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// `scheme://host[:port]/path` of a URL, without user info, query or fragment.
fn display_url(u: &Url) -> String {
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}{}",
        u.scheme(),
        u.host_str().unwrap_or_default(),
        u.path()
    )
}

/// An endpoint for identities and `Debug`: [`display_url`] without a trailing `/`.
fn redact_endpoint(endpoint: &str) -> String {
    match Url::parse(endpoint) {
        Ok(u) => display_url(&u).trim_end_matches('/').to_owned(),
        Err(_) => "<unparseable endpoint>".into(),
    }
}

fn key_of(path: &Path, url: &str) -> Result<String, BuildError> {
    let key = path.as_ref().to_owned();
    if key.is_empty() {
        return Err(BuildError::new(format!(
            "{url} names no object (empty key)"
        )));
    }
    Ok(key)
}

fn store_err(what: &str, e: object_store::Error) -> BuildError {
    BuildError::new(format!("cannot configure the {what} store: {e}"))
}

/// Builds a source and the object key from a URL:
///
/// | URL | store | identity |
/// |---|---|---|
/// | `s3://bucket/key` (`s3a://`) | `AmazonS3` | `s3://bucket@<endpoint>` (`s3.<region>.amazonaws.com` by default) |
/// | `gs://bucket/key` | `GoogleCloudStorage` | `gs://bucket` (`@<base url>` if overridden) |
/// | `az://container/key` (account from `AZURE_STORAGE_ACCOUNT_NAME` / `azure_storage_account_name`), `az://container@account.blob.core.windows.net/key` (also `abfs[s]://`, `adl://`, `azure://`) | `MicrosoftAzure` | `az://account/container` (`@<endpoint>` if overridden) |
/// | `http(s)://host[:port]/path` | `HttpStore` rooted at the origin; key = path | `http(s)://host[:port]` |
/// | `file:///dir/file` | `LocalFileSystem` rooted at `/` | `file:///` |
///
/// `http(s)://` URLs always mean a plain HTTP server, also for cloud hosts: use `s3://`,
/// `gs://` or `az://` for signed access. Keys are percent-decoded from the URL path.
/// Credentials come from the environment or [`StoreOptions::config`], never from the URL's
/// user-info, and never appear in the identity or in errors.
pub fn from_url(
    url: &str,
    options: &StoreOptions,
) -> Result<(ObjectStoreSource, String), BuildError> {
    let (source, path, shown) = open_url(url, options)?;
    let key = key_of(&path, &shown)?;
    Ok((source, key))
}

/// The store a URL names and the path in it (possibly empty), without requiring an object
/// key: [`from_url`] for one object, [`lister_from_url`](crate::lister_from_url) for a prefix.
/// The third value is the URL as messages may show it (redacted).
pub(crate) fn open_url(
    url: &str,
    options: &StoreOptions,
) -> Result<(ObjectStoreSource, Path, String), BuildError> {
    ensure_crypto_provider();
    let parsed = Url::parse(url).map_err(|e| {
        BuildError::new(format!(
            "not a URL: {}: {e}",
            resume_core::redact::redact_url(url)
        ))
    })?;
    // Credentials go in the store's options or environment, never in the endpoint: a password
    // there would travel in every request's URL and every message that quotes one.
    if let Some(endpoint) = &options.endpoint
        && let Ok(e) = Url::parse(endpoint)
        && (!e.username().is_empty() || e.password().is_some())
    {
        return Err(BuildError::new(format!(
            "the endpoint {} contains user information, which is not supported: give the \
             endpoint as scheme://host[:port] and credentials through the environment (e.g. \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
            resume_core::redact::redact_url(endpoint)
        )));
    }
    let shown = display_url(&parsed);
    let path = Path::from_url_path(parsed.path())
        .map_err(|e| BuildError::new(format!("bad object path in {shown}: {e}")))?;
    // Stores address objects by bucket and path only: a query (a presigned URL's
    // signature, a version parameter) would be dropped silently and another request sent
    // than the one named. Versions are `Downloader::version_id`.
    if parsed.query().is_some() {
        return Err(BuildError::new(format!(
            "{shown} has a query string, which is not supported (for a presigned S3 URL use \
             s3://bucket/key with credentials; for a version, the downloader's version id)"
        )));
    }
    let client = engine_client_options(&options.client);
    let retry = engine_retry_config(&options.client);

    let mut azure_md5 = None;
    let mut gcs_json = None;
    let (store, identity, hints): Built = match parsed.scheme() {
        "s3" | "s3a" => s3(&parsed, options, client, retry)?,
        "gs" => {
            let (store, identity, json) = gcs(&parsed, options, client, retry)?;
            gcs_json = Some(json);
            (store, identity, None)
        }
        "az" | "abfs" | "abfss" | "adl" | "azure" => {
            let (store, identity, md5) = azure(&parsed, options, client, retry)?;
            azure_md5 = md5;
            (store, identity, None)
        }
        "http" | "https" => {
            let origin = parsed.origin().ascii_serialization();
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(BuildError::new(format!(
                    "{shown}: credentials in an http(s) URL are not supported"
                )));
            }
            let mut b = HttpBuilder::new()
                .with_url(&origin)
                .with_client_options(client)
                .with_retry(retry)
                .with_http_connector(Logged::reqwest());
            if parsed.scheme() == "http" || options.allow_http {
                b = b.with_config(ClientConfigKey::AllowHttp, "true");
            }
            for (k, v) in &options.config {
                let key = k
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|e| BuildError::new(format!("option {k:?} for an HTTP store: {e}")))?;
                b = b.with_config(key, v);
            }
            let store = b.build().map_err(|e| store_err("HTTP", e))?;
            (Arc::new(store), origin, None)
        }
        "file" => {
            if parsed.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(BuildError::new(format!(
                    "{shown}: file URLs name a local path (file:///path), not a host"
                )));
            }
            (
                Arc::new(LocalFileSystem::new()),
                "file:///".to_owned(),
                None,
            )
        }
        other => {
            return Err(BuildError::new(format!(
                "unsupported scheme {other:?} in {shown}: use s3://, gs://, az://, http(s):// \
                 or file://"
            )));
        }
    };
    let mut source = ObjectStoreSource::new(store, identity);
    if let Some(md5) = azure_md5 {
        source = source.with_azure_md5(md5);
    }
    if let Some(json) = gcs_json {
        source = source.with_gcs(json);
    }
    if let Some((h, checksums)) = hints {
        source = source.with_s3_hints(h);
        if let Some(c) = checksums {
            source = source.with_s3_checksums(c);
        }
    }
    Ok((source, path, shown))
}

/// object_store's default instance metadata endpoint (EC2 IMDS).
const DEFAULT_METADATA_ENDPOINT: &str = "http://169.254.169.254";

/// Whether a store built from `b` gets its credentials from the instance metadata service:
/// object_store's last resort, when no keys, web identity or container credentials are
/// configured and requests are signed at all.
fn asks_instance_metadata(b: &AmazonS3Builder) -> bool {
    let set = |k: AmazonS3ConfigKey| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
    let skip = b
        .get_config_value(&AmazonS3ConfigKey::SkipSignature)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    !(skip
        || set(AmazonS3ConfigKey::AccessKeyId)
        || set(AmazonS3ConfigKey::SecretAccessKey)
        || (set(AmazonS3ConfigKey::WebIdentityTokenFile) && set(AmazonS3ConfigKey::RoleArn))
        || set(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
        || set(AmazonS3ConfigKey::ContainerCredentialsFullUri))
}

/// A store, its identity, and for S3 what its errors need explaining and how to ask for its
/// checksums.
type Built = (
    Arc<dyn ObjectStore>,
    String,
    Option<(S3Hints, Option<S3Checksums>)>,
);

fn s3(
    url: &Url,
    options: &StoreOptions,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<Built, BuildError> {
    let bucket = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| BuildError::new("an s3:// URL needs a bucket: s3://bucket/key"))?
        .to_owned();
    let mut b = AmazonS3Builder::new()
        .with_client_options(client)
        .with_retry(retry);
    for (k, v) in options
        .env_with_prefix("AWS_")
        .into_iter()
        .filter_map(|(k, v)| Some((k.parse::<AmazonS3ConfigKey>().ok()?, v)))
    {
        b = b.with_config(k, v);
    }
    for (k, v) in &options.config {
        let key: AmazonS3ConfigKey = k
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| BuildError::new(format!("option {k:?} for S3: {e}")))?;
        b = b.with_config(key, v);
    }
    if let Some(e) = &options.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(r) = &options.region {
        b = b.with_region(r);
    }
    if options.allow_http {
        b = b.with_allow_http(true);
    }
    match options.addressing {
        Some(Addressing::PathStyle) => b = b.with_virtual_hosted_style_request(false),
        Some(Addressing::VirtualHosted) => b = b.with_virtual_hosted_style_request(true),
        None => {}
    }
    b = b.with_bucket_name(&bucket);
    let region = b
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = match b.get_config_value(&AmazonS3ConfigKey::Endpoint) {
        Some(e) => redact_endpoint(&e),
        None => format!("s3.{region}.amazonaws.com"),
    };
    let seen_region = Arc::new(Mutex::new(None));
    let last_client = Arc::new(Mutex::new(None));
    b = b.with_http_connector(Capture {
        inner: Logged(RegionWatch {
            seen: seen_region.clone(),
        }),
        last_client: last_client.clone(),
    });
    let value = |k: AmazonS3ConfigKey| b.get_config_value(&k);
    let is_true = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    // The URL object_store prefixes keys with (its builder's rule; S3 Express zonal endpoints,
    // which it derives itself, are not asked for checksums).
    let virtual_hosted = is_true(value(AmazonS3ConfigKey::VirtualHostedStyleRequest));
    let bucket_endpoint = match (
        value(AmazonS3ConfigKey::S3Endpoint).or_else(|| value(AmazonS3ConfigKey::Endpoint)),
        virtual_hosted,
    ) {
        (Some(e), true) => Some(e),
        (Some(e), false) => Some(format!("{}/{bucket}", e.trim_end_matches('/'))),
        (None, _) if is_true(value(AmazonS3ConfigKey::S3Express)) => None,
        (None, true) => Some(format!("https://{bucket}.s3.{region}.amazonaws.com")),
        (None, false) => Some(format!("https://s3.{region}.amazonaws.com/{bucket}")),
    };
    let skip_signature = is_true(value(AmazonS3ConfigKey::SkipSignature));
    let request_payer = value(AmazonS3ConfigKey::RequestPayer)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("requester"));
    let hints = S3Hints {
        bucket: bucket.clone(),
        region,
        imds: asks_instance_metadata(&b).then(|| {
            b.get_config_value(&AmazonS3ConfigKey::MetadataEndpoint)
                .unwrap_or_else(|| DEFAULT_METADATA_ENDPOINT.to_owned())
        }),
        seen_region,
    };
    let store = b.build().map_err(|e| store_err("S3", e))?;
    let checksums = bucket_endpoint.map(|bucket_endpoint| S3Checksums {
        http: last_client,
        bucket_endpoint,
        region: hints.region.clone(),
        credentials: (!skip_signature).then(|| store.credentials().clone()),
        request_payer,
    });
    Ok((
        Arc::new(store),
        format!("s3://{bucket}@{endpoint}"),
        Some((hints, checksums)),
    ))
}

/// A GCS store, its identity, and how to speak its JSON API (which stats, reads and lists:
/// `gcs.rs`).
fn gcs(
    url: &Url,
    options: &StoreOptions,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<(Arc<dyn ObjectStore>, String, Gcs), BuildError> {
    let bucket = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| BuildError::new("a gs:// URL needs a bucket: gs://bucket/key"))?
        .to_owned();
    let last_client = Arc::new(Mutex::new(None));
    let mut b = GoogleCloudStorageBuilder::new()
        .with_client_options(client)
        .with_retry(retry)
        .with_http_connector(Capture {
            inner: Logged::reqwest(),
            last_client: last_client.clone(),
        });
    if let Some(sa) = options.env_var("SERVICE_ACCOUNT") {
        b = b.with_service_account_path(sa);
    }
    for (k, v) in options
        .env_with_prefix("GOOGLE_")
        .into_iter()
        .filter_map(|(k, v)| Some((k.parse::<GoogleConfigKey>().ok()?, v)))
    {
        b = b.with_config(k, v);
    }
    for (k, v) in &options.config {
        let key: GoogleConfigKey = k
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| BuildError::new(format!("option {k:?} for GCS: {e}")))?;
        b = b.with_config(key, v);
    }
    if let Some(e) = &options.endpoint {
        b = b.with_config(GoogleConfigKey::BaseUrl, e);
    }
    if options.allow_http {
        b = b.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
    }
    b = b.with_bucket_name(&bucket);
    let base = b.get_config_value(&GoogleConfigKey::BaseUrl);
    let identity = match &base {
        Some(base) => format!("gs://{bucket}@{}", redact_endpoint(base)),
        None => format!("gs://{bucket}"),
    };
    let skip_signature = b
        .get_config_value(&GoogleConfigKey::SkipSignature)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let store = b.build().map_err(|e| store_err("GCS", e))?;
    let json = Gcs {
        http: last_client,
        // object_store's default (a service account key's `gcs_base_url` is not honoured
        // here: give it as the endpoint).
        base_url: base.unwrap_or_else(|| "https://storage.googleapis.com".to_owned()),
        bucket,
        credentials: (!skip_signature).then(|| store.credentials().clone()),
    };
    Ok((Arc::new(store), identity, json))
}

/// An Azure store, its identity, and how to read its blobs' `Content-MD5`.
type BuiltAzure = (Arc<dyn ObjectStore>, String, Option<AzureMd5>);

fn azure(
    url: &Url,
    options: &StoreOptions,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<BuiltAzure, BuildError> {
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| BuildError::new("an az:// URL needs a container: az://container/key"))?;
    // az://container/key, or az://container@account.blob.core.windows.net/key.
    let (container, account) = if url.username().is_empty() {
        (host.to_owned(), None)
    } else {
        let account = host.split('.').next().unwrap_or_default().to_owned();
        (url.username().to_owned(), Some(account))
    };
    let mut b = MicrosoftAzureBuilder::new()
        .with_client_options(client)
        .with_retry(retry);
    for (k, v) in options
        .env_with_prefix("AZURE_")
        .into_iter()
        .filter_map(|(k, v)| Some((k.parse::<AzureConfigKey>().ok()?, v)))
    {
        b = b.with_config(k, v);
    }
    if let Some(msi) = options.env_var("MSI_ENDPOINT") {
        b = b.with_msi_endpoint(msi);
    }
    for (k, v) in &options.config {
        let key: AzureConfigKey = k
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| BuildError::new(format!("option {k:?} for Azure: {e}")))?;
        b = b.with_config(key, v);
    }
    if let Some(e) = &options.endpoint {
        b = b.with_endpoint(e.clone());
    }
    if options.allow_http {
        b = b.with_allow_http(true);
    }
    if let Some(a) = &account {
        b = b.with_account(a);
    }
    // The builder parses the URL at build (it also knows the Fabric/dfs host forms).
    let mut stripped = url.clone();
    stripped.set_query(None);
    stripped.set_fragment(None);
    b = b
        .with_url(stripped.as_str())
        .with_container_name(&container);
    let account = b
        .get_config_value(&AzureConfigKey::AccountName)
        .unwrap_or_default();
    let endpoint = b.get_config_value(&AzureConfigKey::Endpoint);
    let emulator = b
        .get_config_value(&AzureConfigKey::UseEmulator)
        .is_some_and(|v| v == "true");
    let skip_signature = b
        .get_config_value(&AzureConfigKey::SkipSignature)
        .is_some_and(|v| v == "true");
    let last_client = Arc::new(Mutex::new(None));
    b = b.with_http_connector(Capture {
        inner: Logged::reqwest(),
        last_client: last_client.clone(),
    });
    let store = b.build().map_err(|e| store_err("Azure", e))?;
    // The container's URL as object_store forms a blob's (its builder's rule).
    let container_url = if emulator {
        let base = std::env::var("AZURITE_BLOB_STORAGE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:10000".into());
        let account = if account.is_empty() {
            "devstoreaccount1"
        } else {
            account.as_str()
        };
        url::Url::parse(&base).ok().and_then(|mut u| {
            u.path_segments_mut().ok()?.push(account).push(&container);
            Some(u)
        })
    } else {
        let base = endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        url::Url::parse(&base).ok().and_then(|mut u| {
            u.path_segments_mut().ok()?.push(&container);
            Some(u)
        })
    };
    let md5 = container_url.map(|container_url| AzureMd5 {
        http: last_client,
        container_url,
        account: account.clone(),
        credentials: (!skip_signature).then(|| store.credentials().clone()),
    });
    let mut identity = format!("az://{account}/{container}");
    if let Some(e) = endpoint {
        identity.push('@');
        identity.push_str(&redact_endpoint(&e));
    } else if emulator {
        identity.push_str("@emulator");
    }
    Ok((Arc::new(store), identity, md5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use resume_core::RangeSource;

    fn opts() -> StoreOptions {
        StoreOptions::new().environment([
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret-key"),
            ("AWS_REGION", "eu-west-1"),
            ("HOME", "/root"),
        ])
    }

    #[test]
    fn s3_urls_take_bucket_key_region_and_endpoint_and_keep_secrets_out() {
        let (src, key) = from_url("s3://my-bucket/a/b%20c/d.bin", &opts()).unwrap();
        assert_eq!(key, "a/b c/d.bin");
        assert_eq!(src.identity(), "s3://my-bucket@s3.eu-west-1.amazonaws.com");
        // User-info in the endpoint is refused, and not printed.
        let o = opts().endpoint("http://user:pw-s3cr3t-9x@127.0.0.1:9000");
        let err = from_url("s3://b/k", &o).unwrap_err().to_string();
        assert!(err.contains("user information"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        let o = opts()
            .endpoint("http://127.0.0.1:9000/?x=1")
            .allow_http(true)
            .path_style()
            .region("us-east-1");
        let (src, key) = from_url("s3://b/k", &o).unwrap();
        assert_eq!(key, "k");
        assert_eq!(src.identity(), "s3://b@http://127.0.0.1:9000");
        let shown = format!("{src:?} {o:?}");
        for secret in ["very-secret-key", "AKIDEXAMPLE", "pw", "user"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn explicit_config_overrides_the_environment_and_unknown_keys_are_errors() {
        let o = opts().config("aws_region", "ap-south-1");
        let (src, _) = from_url("s3://b/k", &o).unwrap();
        assert_eq!(src.identity(), "s3://b@s3.ap-south-1.amazonaws.com");
        let bad = opts().config("no_such_option", "1");
        let err = from_url("s3://b/k", &bad).unwrap_err();
        assert!(err.to_string().contains("no_such_option"), "{err}");
        // Without the environment there is no region: the default.
        let (src, _) = from_url("s3://b/k", &StoreOptions::new().no_env()).unwrap();
        assert_eq!(src.identity(), "s3://b@s3.us-east-1.amazonaws.com");
    }

    #[test]
    fn other_schemes() {
        let o = StoreOptions::new().no_env();
        let (src, key) = from_url("https://example.com:8443/dir/f%C3%BC.bin", &o).unwrap();
        assert_eq!(
            (src.identity().as_str(), key.as_str()),
            ("https://example.com:8443", "dir/fü.bin")
        );
        let (src, key) = from_url("http://127.0.0.1:8080/x", &o).unwrap();
        assert_eq!(
            (src.identity().as_str(), key.as_str()),
            ("http://127.0.0.1:8080", "x")
        );
        let (src, key) = from_url("file:///tmp/some/file.bin", &o).unwrap();
        assert_eq!(
            (src.identity().as_str(), key.as_str()),
            ("file:///", "tmp/some/file.bin")
        );
        let (src, key) = from_url(
            "gs://bkt/obj",
            &o.clone().config("google_skip_signature", "true"),
        )
        .unwrap();
        assert_eq!((src.identity().as_str(), key.as_str()), ("gs://bkt", "obj"));
        let az = o
            .clone()
            .config("azure_storage_account_name", "acct")
            .config("azure_skip_signature", "true");
        let (src, key) = from_url("az://cont/p/q", &az).unwrap();
        assert_eq!(
            (src.identity().as_str(), key.as_str()),
            ("az://acct/cont", "p/q")
        );
        let (src, key) = from_url(
            "az://cont@other.blob.core.windows.net/p",
            &o.clone().config("azure_skip_signature", "true"),
        )
        .unwrap();
        assert_eq!(
            (src.identity().as_str(), key.as_str()),
            ("az://other/cont", "p")
        );
        for bad in [
            "ftp://h/k",
            "s3://b/",
            "s3://b",
            "https://u:p@h/k",
            "https://h/k?X-Amz-Signature=SECRET",
            "s3://b/k?versionId=SECRET",
            "file://host/x",
            "nope",
        ] {
            let err = from_url(bad, &o).unwrap_err().to_string();
            assert!(!err.contains("u:p@") && !err.contains("SECRET"), "{err}");
            assert!(!err.contains("null"), "{err}");
        }
    }

    #[test]
    fn client_defaults_have_no_request_timeout_and_no_retries() {
        let s = ClientSettings::default();
        let c = engine_client_options(&s);
        assert_eq!(c.get_config_value(&ClientConfigKey::Timeout), None);
        assert_eq!(
            c.get_config_value(&ClientConfigKey::ConnectTimeout)
                .as_deref(),
            Some("5s")
        );
        assert_eq!(engine_retry_config(&s).max_retries, 0);
        let c = engine_client_options(&ClientSettings {
            request_timeout: Some(Duration::from_secs(600)),
            ..s
        });
        assert_eq!(
            c.get_config_value(&ClientConfigKey::Timeout).as_deref(),
            Some("10m")
        );
    }
}
