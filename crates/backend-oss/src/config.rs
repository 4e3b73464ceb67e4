//! Endpoints: parsing, addressing style, region, and URL building.
//!
//! Three addressing styles exist:
//! - virtual-hosted, `https://BUCKET.oss-REGION.aliyuncs.com/KEY` (the default for
//!   `*.aliyuncs.com` hosts);
//! - path style, `https://HOST/BUCKET/KEY` (the default for IP addresses, `localhost` and any
//!   other host, e.g. an emulator; can be forced);
//! - CNAME, `https://DOMAIN/KEY`, a custom domain bound to one bucket.
//!
//! The style only changes the URL. Signatures always cover `/BUCKET/KEY`.

use std::fmt;
use std::net::Ipv4Addr;

use crate::encode::encode_path;

/// The longest object key OSS accepts, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1023;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// How the bucket is addressed in a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressingStyle {
    /// `https://BUCKET.HOST/KEY`.
    VirtualHosted,
    /// `https://HOST/BUCKET/KEY`.
    Path,
    /// `https://HOST/KEY`: the host is a custom domain bound to the bucket.
    Cname,
}

/// A problem with the endpoint, region, bucket name or object key.
///
/// Messages echo what was given (never credentials: an endpoint with `user:pass@` is reported
/// without them) and say what a valid value looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error(
        "invalid OSS endpoint {endpoint:?}: {reason} (expected e.g. \"https://oss-cn-hangzhou.aliyuncs.com\" or \"http://127.0.0.1:9000\")"
    )]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error(
        "invalid OSS region {region:?}: use the region id, e.g. \"cn-hangzhou\" (not \"oss-cn-hangzhou\")"
    )]
    InvalidRegion { region: String },
    #[error(
        "invalid bucket name {bucket:?}: {reason} (3-63 characters: lower-case letters, digits and '-', not starting or ending with '-')"
    )]
    InvalidBucket {
        bucket: String,
        reason: &'static str,
    },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
}

/// Where OSS is reached: scheme, host, port, addressing style and (V4) region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    scheme: Scheme,
    /// Lower-case host name, IPv4 address, or bracketed IPv6 address.
    host: String,
    port: Option<u16>,
    style: AddressingStyle,
    region: Option<String>,
}

impl Endpoint {
    /// Parses `[http://|https://]HOST[:PORT][/]`. Without a scheme, `https` is used.
    ///
    /// The style is virtual-hosted for `*.aliyuncs.com` hosts and path style for everything
    /// else (IP addresses, `localhost`, custom endpoints); [`Endpoint::with_style`] overrides
    /// it. The region is derived from standard OSS host names (`oss-cn-hangzhou.aliyuncs.com`,
    /// `oss-cn-hangzhou-internal.aliyuncs.com`, `cn-hangzhou.oss.aliyuncs.com` →
    /// `cn-hangzhou`); [`Endpoint::with_region`] sets it for other hosts (needed for V4).
    pub fn parse(input: &str) -> Result<Self, ConfigError> {
        let trimmed = input.trim();
        let invalid = |reason: &str| ConfigError::InvalidEndpoint {
            endpoint: sanitize_endpoint(trimmed),
            reason: reason.to_string(),
        };
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((s, rest)) => {
                let scheme = match s.to_ascii_lowercase().as_str() {
                    "https" => Scheme::Https,
                    "http" => Scheme::Http,
                    _ => return Err(invalid("the scheme must be http or https")),
                };
                (scheme, rest)
            }
            None => (Scheme::Https, trimmed),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if !(tail.is_empty() || tail == "/") {
            return Err(invalid(
                "it must not contain a path, query or fragment (give the bucket separately)",
            ));
        }
        if authority.contains('@') {
            return Err(invalid(
                "it must not contain user information; pass credentials separately",
            ));
        }
        let (host, port) = split_host_port(authority).map_err(invalid)?;
        let host = host.to_ascii_lowercase();
        validate_host(&host).map_err(invalid)?;
        let style = default_style(&host);
        let region = region_from_host(&host);
        Ok(Self {
            scheme,
            host,
            port,
            style,
            region,
        })
    }

    /// Sets the region used by V4 signing (e.g. `cn-hangzhou`), overriding a derived one.
    pub fn with_region(mut self, region: &str) -> Result<Self, ConfigError> {
        if !is_valid_region(region) {
            return Err(ConfigError::InvalidRegion {
                region: region.to_string(),
            });
        }
        self.region = Some(region.to_string());
        Ok(self)
    }

    /// Forces an addressing style. Virtual-hosted style needs a DNS host name, not an IP.
    pub fn with_style(mut self, style: AddressingStyle) -> Result<Self, ConfigError> {
        if style == AddressingStyle::VirtualHosted && is_ip(&self.host) {
            return Err(ConfigError::InvalidEndpoint {
                endpoint: self.to_string(),
                reason:
                    "virtual-hosted style needs a DNS host name, not an IP address; use path style"
                        .to_string(),
            });
        }
        self.style = style;
        Ok(self)
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Lower-case host name, IPv4 address or bracketed IPv6 address, without the port.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    pub fn style(&self) -> AddressingStyle {
        self.style
    }

    /// The region id (`cn-hangzhou`), derived or given, if known.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// `HOST[:PORT]`.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The `Host` header value for requests to `bucket`.
    pub fn bucket_host(&self, bucket: &str) -> Result<String, ConfigError> {
        validate_bucket(bucket)?;
        Ok(match self.style {
            AddressingStyle::VirtualHosted => format!("{bucket}.{}", self.authority()),
            AddressingStyle::Path | AddressingStyle::Cname => self.authority(),
        })
    }

    /// The URL of the bucket itself, ending in `/`.
    pub fn bucket_url(&self, bucket: &str) -> Result<String, ConfigError> {
        let host = self.bucket_host(bucket)?;
        let prefix = match self.style {
            AddressingStyle::Path => format!("/{bucket}/"),
            _ => "/".to_string(),
        };
        Ok(format!("{}://{host}{prefix}", self.scheme.as_str()))
    }

    /// The request path for an object: `/KEY` or (path style) `/BUCKET/KEY`, the key
    /// percent-encoded (`A-Za-z0-9-._~/` kept), leading and doubled `/` preserved.
    pub fn object_path(&self, bucket: &str, key: &str) -> Result<String, ConfigError> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        let key = encode_path(key);
        Ok(match self.style {
            AddressingStyle::Path => format!("/{bucket}/{key}"),
            AddressingStyle::VirtualHosted | AddressingStyle::Cname => format!("/{key}"),
        })
    }

    /// The full URL of an object (without query).
    pub fn object_url(&self, bucket: &str, key: &str) -> Result<String, ConfigError> {
        let host = self.bucket_host(bucket)?;
        let path = self.object_path(bucket, key)?;
        Ok(format!("{}://{host}{path}", self.scheme.as_str()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())
    }
}

/// Derives the V4 region id from a standard OSS host name, or `None`.
///
/// `oss-cn-hangzhou.aliyuncs.com`, `oss-cn-hangzhou-internal.aliyuncs.com` and
/// `cn-hangzhou.oss.aliyuncs.com` give `cn-hangzhou`. Global endpoints
/// (`oss-accelerate.aliyuncs.com`, `oss-accelerate-overseas.aliyuncs.com`,
/// `oss-rg-*.aliyuncs.com`) and every other host give `None`: set the region explicitly.
pub fn region_from_host(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let rest = host.strip_suffix(".aliyuncs.com")?;
    let region = match rest.split('.').collect::<Vec<_>>().as_slice() {
        [label] => {
            let r = label.strip_prefix("oss-")?;
            let r = r.strip_suffix("-internal").unwrap_or(r);
            if r == "accelerate" || r.starts_with("accelerate-") || r.starts_with("rg-") {
                return None;
            }
            r.to_string()
        }
        [region, "oss"] | [region, "oss-internal"] => (*region).to_string(),
        _ => return None,
    };
    is_valid_region(&region).then_some(region)
}

/// Checks a bucket name against OSS's rules.
pub fn validate_bucket(bucket: &str) -> Result<(), ConfigError> {
    let err = |reason| {
        Err(ConfigError::InvalidBucket {
            bucket: bucket.to_string(),
            reason,
        })
    };
    if !(3..=63).contains(&bucket.len()) {
        return err("wrong length");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return err("it contains a character other than a-z, 0-9 and '-'");
    }
    if bucket.starts_with('-') || bucket.ends_with('-') {
        return err("it starts or ends with '-'");
    }
    Ok(())
}

/// Checks an object key: non-empty, at most [`MAX_KEY_LEN`] bytes, and without `.` or `..`
/// path segments (HTTP clients normalize those away, so the request would address another
/// object). Leading, trailing and repeated `/` are allowed and preserved.
pub fn validate_key(key: &str) -> Result<(), ConfigError> {
    let err = |reason| {
        Err(ConfigError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return err("it is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return err("it is longer than 1023 bytes");
    }
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return err(
            "it contains a '.' or '..' path segment, which HTTP clients rewrite; such keys cannot be addressed by URL",
        );
    }
    Ok(())
}

fn is_valid_region(region: &str) -> bool {
    !region.is_empty()
        && !region.starts_with('-')
        && !region.ends_with('-')
        && !region.starts_with("oss-")
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or("an IPv6 address is missing its ']'")?;
        let (host, after) = authority.split_at(close + 1);
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err("unexpected text after the IPv6 address"),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err("the port must be a number from 1 to 65535"),
        },
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    Ok((host, port))
}

fn validate_host(host: &str) -> Result<(), &'static str> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("bad IPv6 address")?;
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("bad IPv6 address");
        }
        return Ok(());
    }
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if host.len() > 253 || !host.split('.').all(ok_label) {
        return Err("the host must be a DNS name or an IP address");
    }
    Ok(())
}

fn is_ip(host: &str) -> bool {
    host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok()
}

fn default_style(host: &str) -> AddressingStyle {
    if is_ip(host) || host == "localhost" || host.ends_with(".localhost") {
        AddressingStyle::Path
    } else if host == "aliyuncs.com" || host.ends_with(".aliyuncs.com") {
        AddressingStyle::VirtualHosted
    } else {
        AddressingStyle::Path
    }
}

/// The endpoint as given, with a `user:password@` and any signature or token in a query
/// redacted, for error messages (the workspace's one redaction, [`resume_core::redact`]).
fn sanitize_endpoint(input: &str) -> String {
    resume_core::redact::redact_url(input)
}
