//! OSS request signing: V1 (`OSS`, HMAC-SHA1) and V4 (`OSS4-HMAC-SHA256`), each in header
//! and presigned-query form.
//!
//! Two layers:
//! - [`Signer`] signs a request for a client: give it the request's parts and the signing time,
//!   get back the headers to add ([`SignedHeaders`]) or the full query ([`PresignedQuery`]).
//! - Free functions compute each intermediate value ([`string_to_sign_v1`],
//!   [`canonical_request_v4`], [`string_to_sign_v4`], [`signature_v4`], …) so that a server
//!   that verifies signatures (the emulator) recomputes exactly what a client signed, from the
//!   parts of the incoming request ([`parse_query`](crate::encode::parse_query),
//!   [`parse_authorization`]).
//!
//! No HTTP types: requests are plain `(name, value)` pairs. Query pairs are *decoded*; the
//! signer encodes them as OSS specifies. Header names may have any case.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::config::Endpoint;
use crate::credentials::Credentials;
use crate::encode::{encode_component, encode_path, encode_query};

/// V4 algorithm name, in the `Authorization` header and `x-oss-signature-version`.
pub const ALGORITHM_V4: &str = "OSS4-HMAC-SHA256";
/// The payload hash used by every request this crate signs.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The product in the V4 scope.
pub const PRODUCT_OSS: &str = "oss";
/// The last element of the V4 scope.
pub const V4_REQUEST: &str = "aliyun_v4_request";
/// Longest lifetime of a V4 presigned URL.
pub const MAX_PRESIGN_EXPIRES_V4: Duration = Duration::from_secs(7 * 24 * 3600);

/// Query parameters V1 signs as sub-resources (the official v2 SDKs' list). Any query key
/// starting with `x-oss-` is signed too, and a request can name more
/// ([`SignableRequest::sub_resources`]).
pub const V1_SUB_RESOURCES: &[&str] = &[
    "acl",
    "append",
    "bucketInfo",
    "callback",
    "callback-var",
    "cloudboxes",
    "continuation-token",
    "delete",
    "location",
    "objectMeta",
    "partNumber",
    "position",
    "regionList",
    "resourceGroup",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "security-token",
    "sequential",
    "stat",
    "symlink",
    "tagging",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
];

const REDACTED: &str = "<redacted>";
/// Query keys and header names whose values are bearer secrets.
const TOKEN_NAMES: &[&str] = &["x-oss-security-token", "security-token"];

/// Which signature algorithm to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignatureVersion {
    /// `Authorization: OSS AK:SIG` (HMAC-SHA1). Legacy; no region needed.
    V1,
    /// `Authorization: OSS4-HMAC-SHA256 …` (HMAC-SHA256 over a canonical request). Default.
    #[default]
    V4,
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error(
        "credentials are incomplete: the AccessKey ID or secret is empty; set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET or pass them explicitly"
    )]
    MissingKeys,
    #[error(
        "credentials expired at {} (unix time); refresh them (STS credentials are short-lived)",
        unix_secs(*.expired_at)
    )]
    Expired { expired_at: SystemTime },
    #[error(
        "V4 signing needs a region (e.g. \"cn-hangzhou\"); the endpoint does not name one, so set it explicitly or use V1"
    )]
    MissingRegion,
    #[error("invalid region {0:?}: use the region id, e.g. \"cn-hangzhou\"")]
    InvalidRegion(String),
    #[error("the signing time must lie between 1970 and 9999")]
    InvalidTime,
    #[error("a presigned URL must live between 1 second and {max:?}, not {expires_in:?}")]
    InvalidExpiry { expires_in: Duration, max: Duration },
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The parts of a request that signatures cover.
///
/// `query` holds *decoded* pairs; `headers` any-case names. `additional_headers` (V4) names
/// extra headers to sign; names that are signed anyway (`x-oss-*`, `content-type`,
/// `content-md5`) or absent from `headers` are dropped. `sub_resources` (V1) names query
/// keys to sign beyond [`V1_SUB_RESOURCES`].
#[derive(Clone, Copy)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub additional_headers: &'a [String],
    pub sub_resources: &'a [String],
}

impl<'a> SignableRequest<'a> {
    /// A request with no query, headers or extras.
    pub fn new(method: &'a str, bucket: Option<&'a str>, key: Option<&'a str>) -> Self {
        Self {
            method,
            bucket,
            key,
            query: &[],
            headers: &[],
            additional_headers: &[],
            sub_resources: &[],
        }
    }

    pub fn query(mut self, query: &'a [(String, String)]) -> Self {
        self.query = query;
        self
    }

    pub fn headers(mut self, headers: &'a [(String, String)]) -> Self {
        self.headers = headers;
        self
    }

    pub fn additional_headers(mut self, names: &'a [String]) -> Self {
        self.additional_headers = names;
        self
    }

    pub fn sub_resources(mut self, names: &'a [String]) -> Self {
        self.sub_resources = names;
        self
    }

    /// Values of header `lower_name` (already lower case), in order.
    fn header_values(&self, lower_name: &str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(lower_name))
            .map(|(_, v)| v.as_str())
    }

    fn first_header(&self, lower_name: &str) -> Option<&'a str> {
        self.header_values(lower_name).next()
    }
}

impl fmt::Debug for SignableRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignableRequest")
            .field("method", &self.method)
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("query", &Redacted(self.query))
            .field("headers", &Redacted(self.headers))
            .field("additional_headers", &self.additional_headers)
            .field("sub_resources", &self.sub_resources)
            .finish()
    }
}

/// Debug view of pairs with token values replaced.
struct Redacted<'a>(&'a [(String, String)]);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, v)| {
                let secret = TOKEN_NAMES.iter().any(|t| k.eq_ignore_ascii_case(t));
                (k.as_str(), if secret { REDACTED } else { v.as_str() })
            }))
            .finish()
    }
}

/// Headers to add to a request signed in header form: `authorization`, `date`, and for V4
/// `x-oss-date` and `x-oss-content-sha256`; `x-oss-security-token` with STS credentials.
/// Names are lower case. `Debug` redacts the token.
#[derive(Clone)]
pub struct SignedHeaders {
    headers: Vec<(String, String)>,
    string_to_sign: String,
    canonical_request: Option<String>,
}

impl SignedHeaders {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of one added header (lower-case name).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn authorization(&self) -> &str {
        self.get("authorization").unwrap_or_default()
    }

    /// What was signed, for comparing with a `SignatureDoesNotMatch` answer. It can contain
    /// the STS token (V1): do not log it.
    pub fn string_to_sign(&self) -> &str {
        &self.string_to_sign
    }

    /// The V4 canonical request (contains the STS token if any: do not log it).
    pub fn canonical_request(&self) -> Option<&str> {
        self.canonical_request.as_deref()
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.headers
    }
}

impl fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("headers", &Redacted(&self.headers))
            .finish_non_exhaustive()
    }
}

/// The full query of a presigned URL: the request's own pairs plus the authentication ones,
/// decoded and sorted by key. `Debug` redacts the token.
#[derive(Clone)]
pub struct PresignedQuery {
    pairs: Vec<(String, String)>,
    string_to_sign: String,
    canonical_request: Option<String>,
}

impl PresignedQuery {
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The first value of query key `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The encoded query string, without `?`.
    pub fn to_query_string(&self) -> String {
        encode_query(&self.pairs)
    }

    /// What was signed (can contain the STS token: do not log it).
    pub fn string_to_sign(&self) -> &str {
        &self.string_to_sign
    }

    /// The V4 canonical request (can contain the STS token: do not log it).
    pub fn canonical_request(&self) -> Option<&str> {
        self.canonical_request.as_deref()
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }
}

impl fmt::Debug for PresignedQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresignedQuery")
            .field("pairs", &Redacted(&self.pairs))
            .finish_non_exhaustive()
    }
}

/// Signs requests with one algorithm (and, for V4, one region). Holds no credentials: they
/// are passed per call, so a refreshed token is used as soon as it is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    version: SignatureVersion,
    region: Option<String>,
    product: String,
}

impl Signer {
    /// A V1 signer.
    pub fn v1() -> Self {
        Self {
            version: SignatureVersion::V1,
            region: None,
            product: PRODUCT_OSS.to_string(),
        }
    }

    /// A V4 signer for `region` (e.g. `cn-hangzhou`).
    pub fn v4(region: &str) -> Result<Self, SignError> {
        let valid = !region.is_empty()
            && !region.starts_with("oss-")
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(SignError::InvalidRegion(region.to_string()));
        }
        Ok(Self {
            version: SignatureVersion::V4,
            region: Some(region.to_string()),
            product: PRODUCT_OSS.to_string(),
        })
    }

    /// A signer of `version` using the endpoint's region (V4 fails without one).
    pub fn for_endpoint(version: SignatureVersion, endpoint: &Endpoint) -> Result<Self, SignError> {
        match version {
            SignatureVersion::V1 => Ok(Self::v1()),
            SignatureVersion::V4 => Self::v4(endpoint.region().ok_or(SignError::MissingRegion)?),
        }
    }

    /// Replaces the V4 scope's product (`oss` by default).
    pub fn with_product(mut self, product: impl Into<String>) -> Self {
        self.product = product.into();
        self
    }

    pub fn version(&self) -> SignatureVersion {
        self.version
    }

    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    pub fn product(&self) -> &str {
        &self.product
    }

    /// Signs `req` in header form at `time`. Returns the headers to add (they replace any
    /// same-named headers in `req`); the caller sends every header of `req` unchanged.
    pub fn sign_headers(
        &self,
        creds: &Credentials,
        req: &SignableRequest<'_>,
        time: SystemTime,
    ) -> Result<SignedHeaders, SignError> {
        check_credentials(creds, time)?;
        let http_date = http_date(time)?;
        let mut added: Vec<(String, String)> = Vec::new();
        match self.version {
            SignatureVersion::V1 => {
                added.push(("date".into(), http_date.clone()));
            }
            SignatureVersion::V4 => {
                added.push(("x-oss-date".into(), v4_datetime(time)?));
                added.push(("date".into(), http_date.clone()));
                added.push(("x-oss-content-sha256".into(), UNSIGNED_PAYLOAD.into()));
            }
        }
        if let Some(token) = creds.security_token() {
            added.push(("x-oss-security-token".into(), token.to_string()));
        }
        let headers = merge_headers(req.headers, &added);
        let req = SignableRequest {
            headers: &headers,
            ..*req
        };
        let (authorization, string_to_sign, canonical_request) = match self.version {
            SignatureVersion::V1 => {
                let sts = string_to_sign_v1(&req, &http_date);
                let sig = signature_v1(creds.access_key_secret(), &sts);
                (format!("OSS {}:{sig}", creds.access_key_id()), sts, None)
            }
            SignatureVersion::V4 => {
                let region = self.region.as_deref().ok_or(SignError::MissingRegion)?;
                let datetime = v4_datetime(time)?;
                let date = &datetime[..8];
                let scope = scope_v4(date, region, &self.product);
                let additional = additional_headers_v4(req.headers, req.additional_headers);
                let canonical = canonical_request_v4(&req);
                let sts = string_to_sign_v4(&datetime, &scope, &canonical);
                let sig =
                    signature_v4(creds.access_key_secret(), date, region, &self.product, &sts);
                let mut auth = format!(
                    "{ALGORITHM_V4} Credential={}/{scope}",
                    creds.access_key_id()
                );
                if !additional.is_empty() {
                    auth.push_str(",AdditionalHeaders=");
                    auth.push_str(&additional.join(";"));
                }
                auth.push_str(",Signature=");
                auth.push_str(&sig);
                (auth, sts, Some(canonical))
            }
        };
        added.push(("authorization".into(), authorization));
        Ok(SignedHeaders {
            headers: added,
            string_to_sign,
            canonical_request,
        })
    }

    /// Signs `req` in query form (a presigned URL) at `time`, valid for `expires_in`.
    ///
    /// V1: `Expires` is `time + expires_in` (unix seconds). V4: `x-oss-date` is `time` and
    /// `x-oss-expires` is `expires_in` (at most 7 days). The headers of `req` that the
    /// algorithm signs (`content-type`, `content-md5`, `x-oss-*`, V4 additional headers) must
    /// be sent with the URL.
    pub fn presign(
        &self,
        creds: &Credentials,
        req: &SignableRequest<'_>,
        time: SystemTime,
        expires_in: Duration,
    ) -> Result<PresignedQuery, SignError> {
        check_credentials(creds, time)?;
        let max = match self.version {
            SignatureVersion::V1 => Duration::from_secs(u32::MAX as u64),
            SignatureVersion::V4 => MAX_PRESIGN_EXPIRES_V4,
        };
        if expires_in.as_secs() == 0 || expires_in > max {
            return Err(SignError::InvalidExpiry { expires_in, max });
        }
        let mut query: Vec<(String, String)> = req.query.to_vec();
        let (string_to_sign, canonical_request) = match self.version {
            SignatureVersion::V1 => {
                let expires = time
                    .checked_add(Duration::from_secs(expires_in.as_secs()))
                    .ok_or(SignError::InvalidTime)?;
                http_date(expires)?; // range check
                let expires = unix_secs(expires).to_string();
                if let Some(token) = creds.security_token() {
                    query.push(("security-token".into(), token.to_string()));
                }
                let sts = string_to_sign_v1(
                    &SignableRequest {
                        query: &query,
                        ..*req
                    },
                    &expires,
                );
                let sig = signature_v1(creds.access_key_secret(), &sts);
                query.push(("OSSAccessKeyId".into(), creds.access_key_id().to_string()));
                query.push(("Expires".into(), expires));
                query.push(("Signature".into(), sig));
                (sts, None)
            }
            SignatureVersion::V4 => {
                let region = self.region.as_deref().ok_or(SignError::MissingRegion)?;
                let datetime = v4_datetime(time)?;
                let date = datetime[..8].to_string();
                let scope = scope_v4(&date, region, &self.product);
                let additional = additional_headers_v4(req.headers, req.additional_headers);
                if let Some(token) = creds.security_token() {
                    query.push(("x-oss-security-token".into(), token.to_string()));
                }
                query.push(("x-oss-signature-version".into(), ALGORITHM_V4.into()));
                query.push(("x-oss-date".into(), datetime.clone()));
                query.push(("x-oss-expires".into(), expires_in.as_secs().to_string()));
                query.push((
                    "x-oss-credential".into(),
                    format!("{}/{scope}", creds.access_key_id()),
                ));
                if !additional.is_empty() {
                    query.push(("x-oss-additional-headers".into(), additional.join(";")));
                }
                let canonical = canonical_request_v4(&SignableRequest {
                    query: &query,
                    ..*req
                });
                let sts = string_to_sign_v4(&datetime, &scope, &canonical);
                let sig = signature_v4(
                    creds.access_key_secret(),
                    &date,
                    region,
                    &self.product,
                    &sts,
                );
                query.push(("x-oss-signature".into(), sig));
                (sts, Some(canonical))
            }
        };
        query.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(PresignedQuery {
            pairs: query,
            string_to_sign,
            canonical_request,
        })
    }
}

fn check_credentials(creds: &Credentials, time: SystemTime) -> Result<(), SignError> {
    if !creds.has_keys() {
        return Err(SignError::MissingKeys);
    }
    if let Some(exp) = creds.expires_at()
        && exp <= time
    {
        return Err(SignError::Expired { expired_at: exp });
    }
    Ok(())
}

/// `base` with every header named in `added` removed, then `added` appended.
fn merge_headers(base: &[(String, String)], added: &[(String, String)]) -> Vec<(String, String)> {
    base.iter()
        .filter(|(k, _)| !added.iter().any(|(a, _)| a.eq_ignore_ascii_case(k)))
        .chain(added.iter())
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// V1

/// V1 string to sign:
/// `VERB\nContent-MD5\nContent-Type\nDATE\nCanonicalizedOSSHeaders CanonicalizedResource`.
///
/// `date` is the `Date` header value (header form) or the `Expires` unix time (query form).
/// Query keys that are not sub-resources (`OSSAccessKeyId`, `Expires`, `Signature`, …) are
/// ignored, so a server can pass an incoming presigned request's query as it is.
pub fn string_to_sign_v1(req: &SignableRequest<'_>, date: &str) -> String {
    let mut out = String::new();
    out.push_str(&req.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(req.first_header("content-md5").unwrap_or(""));
    out.push('\n');
    out.push_str(req.first_header("content-type").unwrap_or(""));
    out.push('\n');
    out.push_str(date);
    out.push('\n');
    out.push_str(&canonical_headers(req, |name| name.starts_with("x-oss-")));
    out.push_str(&canonical_resource_v1(req));
    out
}

/// V1 canonicalized resource: `/BUCKET/KEY` (key not encoded) and `?` + sorted sub-resources.
pub fn canonical_resource_v1(req: &SignableRequest<'_>) -> String {
    let mut out = String::from("/");
    if let Some(bucket) = req.bucket {
        out.push_str(bucket);
        out.push('/');
    }
    if let Some(key) = req.key {
        out.push_str(key);
    }
    let mut params: Vec<(&str, &str)> = Vec::new();
    for (k, v) in req.query {
        let signed = V1_SUB_RESOURCES.contains(&k.as_str())
            || k.starts_with("x-oss-")
            || req.sub_resources.iter().any(|s| s == k);
        if signed && !params.iter().any(|(p, _)| p == k) {
            params.push((k, v));
        }
    }
    params.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        if !v.is_empty() {
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub fn signature_v1(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------------------------
// V4

/// `name:value\n` for every header `include` accepts, names lower-cased and sorted, values
/// trimmed and repeated headers joined with `,`.
fn canonical_headers(req: &SignableRequest<'_>, include: impl Fn(&str) -> bool) -> String {
    let mut names: Vec<String> = req
        .headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| include(k))
        .collect();
    names.sort();
    names.dedup();
    let mut out = String::new();
    for name in names {
        let values: Vec<&str> = req.header_values(&name).map(str::trim).collect();
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

/// Whether V4 signs header `lower_name` without being asked.
pub fn is_default_signed_header_v4(lower_name: &str) -> bool {
    lower_name.starts_with("x-oss-") || lower_name == "content-type" || lower_name == "content-md5"
}

/// The V4 additional headers actually signed: `requested` lower-cased, minus the
/// default-signed ones and those absent (or empty) in `headers`, sorted and deduplicated.
pub fn additional_headers_v4(headers: &[(String, String)], requested: &[String]) -> Vec<String> {
    let mut out: Vec<String> = requested
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .filter(|n| !is_default_signed_header_v4(n))
        .filter(|n| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .is_some_and(|(_, v)| !v.is_empty())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// V4 canonical URI: `/BUCKET/KEY` with everything but `A-Za-z0-9-._~/` as upper-case `%XX`.
/// `/BUCKET/` for a bucket request, `/` for a service request.
pub fn canonical_uri_v4(bucket: Option<&str>, key: Option<&str>) -> String {
    let mut uri = String::from("/");
    if let Some(bucket) = bucket {
        uri.push_str(bucket);
        uri.push('/');
    }
    if let Some(key) = key {
        uri.push_str(key);
    }
    encode_path(&uri)
}

/// V4 canonical query: each key and value encoded (`A-Za-z0-9-._~` kept), sorted, `k=v` or
/// `k` when the value is empty, joined with `&`. `x-oss-signature` is never included, so a
/// server can pass an incoming presigned request's decoded query as it is.
pub fn canonical_query_v4(query: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "x-oss-signature")
        .map(|(k, v)| (encode_component(k), encode_component(v)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (k, v) in encoded {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&k);
        if !v.is_empty() {
            out.push('=');
            out.push_str(&v);
        }
    }
    out
}

/// V4 canonical request:
/// `METHOD\nURI\nQUERY\nHEADERS\nADDITIONAL\nPAYLOAD-HASH` where HEADERS is the sorted
/// `name:value\n` list of `x-oss-*`, `content-type`, `content-md5` and the additional headers,
/// ADDITIONAL is [`additional_headers_v4`] joined with `;`, and PAYLOAD-HASH is the
/// `x-oss-content-sha256` header or `UNSIGNED-PAYLOAD`.
pub fn canonical_request_v4(req: &SignableRequest<'_>) -> String {
    let additional = additional_headers_v4(req.headers, req.additional_headers);
    let headers = canonical_headers(req, |name| {
        is_default_signed_header_v4(name) || additional.iter().any(|a| a == name)
    });
    let payload = req
        .first_header("x-oss-content-sha256")
        .filter(|v| !v.is_empty())
        .unwrap_or(UNSIGNED_PAYLOAD);
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        canonical_uri_v4(req.bucket, req.key),
        canonical_query_v4(req.query),
        headers,
        additional.join(";"),
        payload
    )
}

/// `DATE/REGION/PRODUCT/aliyun_v4_request`.
pub fn scope_v4(date: &str, region: &str, product: &str) -> String {
    format!("{date}/{region}/{product}/{V4_REQUEST}")
}

/// `OSS4-HMAC-SHA256\nDATETIME\nSCOPE\nhex(sha256(canonical_request))`.
pub fn string_to_sign_v4(datetime: &str, scope: &str, canonical_request: &str) -> String {
    let hash = Sha256::digest(canonical_request.as_bytes());
    format!("{ALGORITHM_V4}\n{datetime}\n{scope}\n{}", hex(&hash))
}

fn hmac_sha256(key: &[u8], data: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The V4 signing key: HMAC-SHA256 chain `"aliyun_v4"+secret` → date → region → product →
/// `aliyun_v4_request`.
pub fn signing_key_v4(secret: &str, date: &str, region: &str, product: &str) -> [u8; 32] {
    let k = hmac_sha256(format!("aliyun_v4{secret}").as_bytes(), date);
    let k = hmac_sha256(&k, region);
    let k = hmac_sha256(&k, product);
    hmac_sha256(&k, V4_REQUEST)
}

/// `hex(HMAC-SHA256(signing_key_v4(…), string_to_sign))`.
pub fn signature_v4(
    secret: &str,
    date: &str,
    region: &str,
    product: &str,
    string_to_sign: &str,
) -> String {
    let key = signing_key_v4(secret, date, region, product);
    hex(&hmac_sha256(&key, string_to_sign))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Time

/// Seconds since the epoch for which both date formats are defined (years 1970–9999).
const MAX_UNIX: u64 = 253_402_300_800;

fn checked_unix(time: SystemTime) -> Result<u64, SignError> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SignError::InvalidTime)?
        .as_secs();
    if secs >= MAX_UNIX {
        return Err(SignError::InvalidTime);
    }
    Ok(secs)
}

/// RFC 1123 date (`Wed, 28 Dec 2022 10:27:41 GMT`), as V1 signs and `Date` carries.
pub fn http_date(time: SystemTime) -> Result<String, SignError> {
    let secs = checked_unix(time)?;
    Ok(httpdate::fmt_http_date(
        UNIX_EPOCH + Duration::from_secs(secs),
    ))
}

/// V4 date-time, `YYYYMMDDTHHMMSSZ` in UTC; its first 8 characters are the scope date.
pub fn v4_datetime(time: SystemTime) -> Result<String, SignError> {
    let secs = checked_unix(time)?;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    Ok(format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// Parses a V4 date-time (`20231216T162057Z`), e.g. a presigned URL's `x-oss-date`.
pub fn parse_v4_datetime(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if y < 1970 || !(1..=12).contains(&mo) || d == 0 || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y as i64, mo, d);
    if civil_from_days(days) != (y as i64, mo, d) {
        return None; // e.g. February 30th
    }
    let secs = days as u64 * 86_400 + h as u64 * 3600 + mi as u64 * 60 + sec as u64;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------------------------
// Verification helpers

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Authorization {
    /// `OSS AK:SIGNATURE`.
    V1 {
        access_key_id: String,
        signature: String,
    },
    /// `OSS4-HMAC-SHA256 Credential=AK/DATE/REGION/PRODUCT/aliyun_v4_request,
    /// [AdditionalHeaders=a;b,]Signature=HEX`.
    V4 {
        credential: CredentialScope,
        additional_headers: Vec<String>,
        signature: String,
    },
}

/// The parts of a V4 credential, `AK/DATE/REGION/PRODUCT/aliyun_v4_request` (the
/// `Credential=` of the header form, `x-oss-credential` of the query form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub product: String,
}

impl CredentialScope {
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.rsplitn(5, '/');
        let terminator = parts.next()?;
        let product = parts.next()?;
        let region = parts.next()?;
        let date = parts.next()?;
        let access_key_id = parts.next()?;
        if terminator != V4_REQUEST
            || access_key_id.is_empty()
            || date.len() != 8
            || !date.bytes().all(|b| b.is_ascii_digit())
            || region.is_empty()
            || product.is_empty()
        {
            return None;
        }
        Some(Self {
            access_key_id: access_key_id.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            product: product.to_string(),
        })
    }

    /// `DATE/REGION/PRODUCT/aliyun_v4_request`.
    pub fn scope(&self) -> String {
        scope_v4(&self.date, &self.region, &self.product)
    }
}

/// Parses an `Authorization` header value; `None` if it is neither form. Spaces after the
/// commas of the V4 form are tolerated.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix(ALGORITHM_V4) {
        let rest = rest.strip_prefix(' ')?;
        let mut credential = None;
        let mut additional_headers = Vec::new();
        let mut signature = None;
        for field in rest.split(',') {
            let (k, v) = field.trim().split_once('=')?;
            match k {
                "Credential" => credential = Some(CredentialScope::parse(v)?),
                "AdditionalHeaders" => {
                    additional_headers = v
                        .split(';')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                "Signature" => signature = Some(v.to_string()),
                _ => return None,
            }
        }
        return Some(Authorization::V4 {
            credential: credential?,
            additional_headers,
            signature: signature.filter(|s| !s.is_empty())?,
        });
    }
    let rest = value.strip_prefix("OSS ")?;
    let (ak, sig) = rest.rsplit_once(':')?;
    if ak.is_empty() || sig.is_empty() {
        return None;
    }
    Some(Authorization::V1 {
        access_key_id: ak.to_string(),
        signature: sig.to_string(),
    })
}

/// Compares two signatures in time independent of where they differ.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_conversion_round_trips_across_leap_years() {
        for days in [0i64, 59, 60, 365, 10_956, 11_016, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn v4_datetime_formats_utc_and_parses_back() {
        let t = UNIX_EPOCH + Duration::from_secs(1_702_743_657);
        assert_eq!(v4_datetime(t).unwrap(), "20231216T162057Z");
        assert_eq!(parse_v4_datetime("20231216T162057Z"), Some(t));
        assert_eq!(parse_v4_datetime("20230230T000000Z"), None);
        assert_eq!(parse_v4_datetime("2023-12-16T16:20"), None);
        assert_eq!(parse_v4_datetime("20231216T246000Z"), None);
        assert_eq!(parse_v4_datetime("+0231216T162057Z"), None);
    }

    #[test]
    fn times_outside_1970_to_9999_are_rejected_not_panicking() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(http_date(before), Err(SignError::InvalidTime));
        let after = UNIX_EPOCH + Duration::from_secs(MAX_UNIX);
        assert_eq!(v4_datetime(after), Err(SignError::InvalidTime));
        assert_eq!(http_date(after), Err(SignError::InvalidTime));
    }

    #[test]
    fn signatures_equal_compares_exactly() {
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert!(!signatures_equal("abc", "ab"));
    }
}
