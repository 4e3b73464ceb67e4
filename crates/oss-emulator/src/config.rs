//! How an emulator is set up.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::error::EmulatorError;
use crate::fault::FaultPlan;

/// An access key the emulator accepts: a long-lived AccessKey pair, or STS credentials (an
/// AccessKey pair that is only valid together with its security token, until it expires).
///
/// `Debug` never shows the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) security_token: Option<String>,
    pub(crate) expires_at: Option<SystemTime>,
}

impl AccessKey {
    /// A long-lived AccessKey pair.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            security_token: None,
            expires_at: None,
        }
    }

    /// STS credentials: requests must carry `token` (`x-oss-security-token`, or
    /// `security-token` in a V1 presigned URL).
    pub fn sts(id: impl Into<String>, secret: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            security_token: Some(token.into()),
            ..Self::new(id, secret)
        }
    }

    /// After `at`, requests with this key fail with 403 (`SecurityTokenExpired` for STS
    /// credentials, `InvalidAccessKeyId` otherwise).
    pub fn expiring_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Parses `ID:SECRET` (the binary's `--access-key`). The secret may contain `:`.
    pub fn parse(s: &str) -> Result<Self, EmulatorError> {
        match s.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Self::new(id, secret)),
            _ => Err(EmulatorError::InvalidAccessKey(
                s.split(':').next().unwrap_or("").to_string(),
            )),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where objects live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Storage {
    /// In memory; gone when the emulator stops.
    #[default]
    Memory,
    /// In a directory (created if missing, reloaded at start); objects are streamed from
    /// their files, never loaded whole.
    Directory(PathBuf),
}

/// Everything an [`Emulator`](crate::Emulator) needs to start.
///
/// ```
/// use oss_emulator::{AccessKey, EmulatorConfig};
/// let config = EmulatorConfig::new()
///     .access_key(AccessKey::new("ak", "sk"))
///     .anonymous_read(true);
/// assert!(config.verify_signatures);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmulatorConfig {
    /// A loopback address; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    pub storage: Storage,
    pub access_keys: Vec<AccessKey>,
    /// Serve GET/HEAD of objects without credentials in every bucket (as if every bucket
    /// were `public-read`). Writes still need a signature.
    pub anonymous_read: bool,
    /// Check signatures (default). When off, every request is accepted.
    pub verify_signatures: bool,
    /// The V4 region requests must be signed for (`None`: any region). Default
    /// `cn-hangzhou`.
    pub region: Option<String>,
    /// Host names under which `BUCKET.<domain>` addresses a bucket (virtual-hosted style).
    /// Default `["localhost"]`. Other hosts (IPs, `localhost` itself) use path style.
    pub service_domains: Vec<String>,
    /// Largest accepted difference between a request's date and the emulator's clock.
    /// Default 15 minutes, as OSS.
    pub max_clock_skew: Duration,
    pub faults: FaultPlan,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            storage: Storage::Memory,
            access_keys: Vec::new(),
            anonymous_read: false,
            verify_signatures: true,
            region: Some("cn-hangzhou".to_string()),
            service_domains: vec!["localhost".to_string()],
            max_clock_skew: Duration::from_secs(15 * 60),
            faults: FaultPlan::default(),
        }
    }
}

impl EmulatorConfig {
    /// In-memory storage, `127.0.0.1:0`, signatures checked, no keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    pub fn directory(mut self, root: impl Into<PathBuf>) -> Self {
        self.storage = Storage::Directory(root.into());
        self
    }

    pub fn access_key(mut self, key: AccessKey) -> Self {
        self.access_keys.push(key);
        self
    }

    pub fn anonymous_read(mut self, on: bool) -> Self {
        self.anonymous_read = on;
        self
    }

    pub fn verify_signatures(mut self, on: bool) -> Self {
        self.verify_signatures = on;
        self
    }

    pub fn region(mut self, region: Option<&str>) -> Self {
        self.region = region.map(str::to_string);
        self
    }

    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }

    pub fn faults(mut self, plan: FaultPlan) -> Self {
        self.faults = plan;
        self
    }
}
