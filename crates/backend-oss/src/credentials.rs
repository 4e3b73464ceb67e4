//! Credentials (AccessKey pair, optional STS token and expiry) and where they come from.
//!
//! Secrets never appear in `Debug` output or in error messages: every type here that holds a
//! secret or a token prints `<redacted>` in its place.

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Environment variable holding the AccessKey ID (as the official SDKs read it).
pub const ENV_ACCESS_KEY_ID: &str = "OSS_ACCESS_KEY_ID";
/// Environment variable holding the AccessKey secret.
pub const ENV_ACCESS_KEY_SECRET: &str = "OSS_ACCESS_KEY_SECRET";
/// Environment variable holding the STS security token (optional).
pub const ENV_SESSION_TOKEN: &str = "OSS_SESSION_TOKEN";

const REDACTED: &str = "<redacted>";

/// An AccessKey pair, optionally with an STS security token and an expiry time.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    access_key_secret: String,
    security_token: Option<String>,
    expires_at: Option<SystemTime>,
}

impl Credentials {
    /// Long-lived AccessKey credentials (no token, no expiry).
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: None,
            expires_at: None,
        }
    }

    /// Adds an STS security token (sent as `x-oss-security-token` / `security-token`).
    /// An empty token means none.
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.security_token = (!token.is_empty()).then_some(token);
        self
    }

    /// Records when these credentials stop being valid (STS credentials expire).
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret. Use it only to compute a signature; never log it.
    pub fn access_key_secret(&self) -> &str {
        &self.access_key_secret
    }

    /// The STS token, if any. It is a bearer secret: never log it.
    pub fn security_token(&self) -> Option<&str> {
        self.security_token.as_deref()
    }

    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Whether both halves of the AccessKey pair are present.
    pub fn has_keys(&self) -> bool {
        !self.access_key_id.is_empty() && !self.access_key_secret.is_empty()
    }

    /// Whether the credentials are still valid at `now + headroom` (always true without
    /// expiry). Callers refresh when this turns false, before a request is signed, so that a
    /// request never leaves with credentials about to expire in flight.
    pub fn is_valid_at(&self, now: SystemTime, headroom: Duration) -> bool {
        match self.expires_at {
            None => true,
            Some(exp) => now.checked_add(headroom).is_some_and(|t| t < exp),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &REDACTED)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| REDACTED),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why credentials could not be obtained. Names what is missing, never a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    #[error("environment variable {var} is not set; export it with your OSS AccessKey")]
    MissingEnv { var: &'static str },
    #[error("environment variable {var} is set but empty; export it with your OSS AccessKey")]
    EmptyEnv { var: &'static str },
    #[error("environment variable {var} is not valid Unicode")]
    NotUnicodeEnv { var: &'static str },
    #[error("the credentials provider returned an empty AccessKey ID or secret")]
    Empty,
    #[error("the credentials provider returned credentials that expire within {headroom:?}")]
    Expired { headroom: Duration },
    #[error("the credentials provider failed: {message}")]
    Provider {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl CredentialsError {
    /// An error from a user-implemented provider. The message must not contain secrets.
    pub fn provider(message: impl Into<String>) -> Self {
        Self::Provider {
            message: message.into(),
            source: None,
        }
    }
}

/// Where credentials come from. Called before every signed request (and every retry), so an
/// implementation that fetches remotely should cache; see [`CachingProvider`].
#[async_trait::async_trait]
pub trait CredentialsProvider: Send + Sync + fmt::Debug {
    async fn credentials(&self) -> Result<Credentials, CredentialsError>;
}

#[async_trait::async_trait]
impl<T: CredentialsProvider + ?Sized> CredentialsProvider for Arc<T> {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        (**self).credentials().await
    }
}

#[async_trait::async_trait]
impl<T: CredentialsProvider + ?Sized> CredentialsProvider for Box<T> {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        (**self).credentials().await
    }
}

/// Fixed credentials: an AccessKey pair, or an STS triple.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    credentials: Credentials,
}

impl StaticCredentials {
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        Self {
            credentials: Credentials::new(access_key_id, access_key_secret),
        }
    }

    /// AccessKey pair plus STS security token.
    pub fn with_security_token(
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<String>,
        security_token: impl Into<String>,
    ) -> Self {
        Self {
            credentials: Credentials::new(access_key_id, access_key_secret)
                .with_security_token(security_token),
        }
    }
}

impl From<Credentials> for StaticCredentials {
    fn from(credentials: Credentials) -> Self {
        Self { credentials }
    }
}

#[async_trait::async_trait]
impl CredentialsProvider for StaticCredentials {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        if !self.credentials.has_keys() {
            return Err(CredentialsError::Empty);
        }
        Ok(self.credentials.clone())
    }
}

type Lookup = dyn Fn(&str) -> Option<OsString> + Send + Sync;

/// Reads `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET` and (optionally) `OSS_SESSION_TOKEN`
/// on every call, so a rotated environment is picked up.
#[derive(Clone)]
pub struct EnvCredentials {
    lookup: Arc<Lookup>,
}

impl EnvCredentials {
    /// Reads the process environment.
    pub fn new() -> Self {
        Self {
            lookup: Arc::new(|name| std::env::var_os(name)),
        }
    }

    /// Reads variables through `lookup` instead of the process environment (for tests and for
    /// embedding applications with their own configuration source).
    pub fn with_lookup(lookup: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Arc::new(lookup),
        }
    }

    fn var(&self, var: &'static str) -> Result<Option<String>, CredentialsError> {
        match (self.lookup)(var) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| CredentialsError::NotUnicodeEnv { var }),
        }
    }

    fn required(&self, var: &'static str) -> Result<String, CredentialsError> {
        match self.var(var)? {
            None => Err(CredentialsError::MissingEnv { var }),
            Some(v) if v.trim().is_empty() => Err(CredentialsError::EmptyEnv { var }),
            Some(v) => Ok(v.trim().to_string()),
        }
    }

    /// Reads the variables now.
    pub fn load(&self) -> Result<Credentials, CredentialsError> {
        let id = self.required(ENV_ACCESS_KEY_ID)?;
        let secret = self.required(ENV_ACCESS_KEY_SECRET)?;
        let creds = Credentials::new(id, secret);
        Ok(match self.var(ENV_SESSION_TOKEN)? {
            Some(token) => creds.with_security_token(token.trim()),
            None => creds,
        })
    }
}

impl Default for EnvCredentials {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EnvCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvCredentials")
            .field(
                "vars",
                &[ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SESSION_TOKEN],
            )
            .finish()
    }
}

#[async_trait::async_trait]
impl CredentialsProvider for EnvCredentials {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        self.load()
    }
}

/// Caches another provider's credentials and refreshes them when they would expire within
/// `headroom`. Concurrent callers wait for one refresh instead of each starting one.
pub struct CachingProvider<P> {
    inner: P,
    headroom: Duration,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl<P: CredentialsProvider> CachingProvider<P> {
    /// Refreshes when the cached credentials expire within `headroom` (e.g. 5 minutes).
    pub fn new(inner: P, headroom: Duration) -> Self {
        Self {
            inner,
            headroom,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// [`CredentialsProvider::credentials`] with an explicit clock.
    pub async fn credentials_at(&self, now: SystemTime) -> Result<Credentials, CredentialsError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && c.is_valid_at(now, self.headroom)
        {
            return Ok(c.clone());
        }
        let fresh = self.inner.credentials().await?;
        if !fresh.has_keys() {
            return Err(CredentialsError::Empty);
        }
        if !fresh.is_valid_at(now, self.headroom) {
            *cached = None;
            return Err(CredentialsError::Expired {
                headroom: self.headroom,
            });
        }
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

impl<P: fmt::Debug> fmt::Debug for CachingProvider<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cache holds secrets; only say whether something is cached.
        let cached = match self.cached.try_lock() {
            Ok(g) => Some(g.is_some()),
            Err(_) => None,
        };
        f.debug_struct("CachingProvider")
            .field("inner", &self.inner)
            .field("headroom", &self.headroom)
            .field("cached", &cached)
            .finish()
    }
}

#[async_trait::async_trait]
impl<P: CredentialsProvider> CredentialsProvider for CachingProvider<P> {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        self.credentials_at(SystemTime::now()).await
    }
}
