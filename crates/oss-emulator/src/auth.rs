//! Signature verification: V1 and V4, header and presigned-query forms, STS tokens.
//!
//! Every value is recomputed with `backend_oss::sign`'s building blocks from the incoming
//! request's parts, so the emulator and the client agree by construction on everything but
//! the request itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_oss::sign::{
    ALGORITHM_V4, Authorization, CredentialScope, SignableRequest, canonical_request_v4,
    parse_authorization, parse_v4_datetime, signature_v1, signature_v4, signatures_equal,
    string_to_sign_v1, string_to_sign_v4,
};

use crate::config::AccessKey;
use crate::error::ApiError;

/// Query keys that V1 signs as sub-resources in the official SDKs (`oss2`) beyond
/// `backend_oss::sign::V1_SUB_RESOURCES`; a verifier must sign the union.
const EXTRA_V1_SUB_RESOURCES: &[&str] = &[
    "logging",
    "group",
    "link",
    "website",
    "objectInfo",
    "cors",
    "lifecycle",
    "qos",
    "referer",
    "live",
    "comp",
    "status",
    "vod",
    "startTime",
    "endTime",
    "encryption",
    "policy",
    "requestPayment",
    "qosInfo",
    "asyncFetch",
    "inventory",
    "inventoryId",
    "worm",
    "wormId",
    "wormExtend",
    "replication",
    "replicationLocation",
    "replicationProgress",
    "transferAcceleration",
    "cname",
    "metaQuery",
];

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// No credentials at all.
    Anonymous,
    /// `Authorization: OSS AK:SIG`.
    V1Header,
    /// `?OSSAccessKeyId=…&Expires=…&Signature=…`.
    V1Query,
    /// `Authorization: OSS4-HMAC-SHA256 …`.
    V4Header,
    /// `?x-oss-signature-version=OSS4-HMAC-SHA256&…`.
    V4Query,
    /// Signature checking is off.
    Unchecked,
}

/// The parts of an incoming request that signatures cover.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming<'a> {
    pub method: &'a str,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    /// Decoded query pairs.
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
}

/// A header's value (names compare case-insensitively, as HTTP's do).
pub(crate) fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A query parameter's (decoded) value; names compare exactly.
pub(crate) fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Incoming<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        header_value(self.headers, name)
    }

    fn query(&self, name: &str) -> Option<&str> {
        query_value(self.query, name)
    }
}

/// Which form of authentication a request attempts (before it is checked).
pub(crate) fn detect(req: &Incoming<'_>) -> AuthMethod {
    match req.header("authorization").map(str::trim) {
        Some(v) if v.starts_with(ALGORITHM_V4) => return AuthMethod::V4Header,
        Some(v) if v.starts_with("OSS ") => return AuthMethod::V1Header,
        _ => {}
    }
    if req.query("x-oss-signature-version").is_some() || req.query("x-oss-signature").is_some() {
        AuthMethod::V4Query
    } else if req.query("OSSAccessKeyId").is_some() || req.query("Signature").is_some() {
        AuthMethod::V1Query
    } else {
        AuthMethod::Anonymous
    }
}

/// What the verifier needs from the configuration.
#[derive(Debug)]
pub(crate) struct Verifier {
    pub keys: Vec<AccessKey>,
    pub region: Option<String>,
    pub max_skew: Duration,
    pub enabled: bool,
}

/// The outcome of a successful check.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub method: AuthMethod,
    pub access_key_id: Option<String>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn skew_error(request_time: &str, now: SystemTime) -> ApiError {
    ApiError::new(
        403,
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
        "0002-00000504",
    )
    .with("RequestTime", request_time)
    .with(
        "ServerTime",
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix(now))),
    )
}

fn mismatch(string_to_sign: &str, provided: &str, canonical: Option<&str>) -> ApiError {
    let mut e = ApiError::new(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        "0002-00000040",
    );
    if let Some(c) = canonical {
        e = e.with("CanonicalRequest", c);
    }
    e.with("StringToSign", string_to_sign)
        .with("SignatureProvided", provided)
}

fn expired_request(expires: u64, now: SystemTime) -> ApiError {
    ApiError::access_denied("Request has expired.")
        .with(
            "Expires",
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(expires)),
        )
        .with(
            "ServerTime",
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix(now))),
        )
}

impl Verifier {
    fn within_skew(&self, t: SystemTime, now: SystemTime) -> bool {
        let diff = match t.duration_since(now) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        diff <= self.max_skew
    }

    /// Finds the key and checks its token and expiry.
    fn key(&self, id: &str, token: Option<&str>, now: SystemTime) -> Result<&AccessKey, ApiError> {
        let Some(key) = self.keys.iter().find(|k| k.id == id) else {
            return Err(ApiError::new(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                "0002-00000902",
            )
            .with("OSSAccessKeyId", id));
        };
        let token_ok = match (&key.security_token, token) {
            (None, None) => true,
            (Some(want), Some(got)) => signatures_equal(want, got),
            _ => false,
        };
        if !token_ok {
            return Err(ApiError::new(
                403,
                "InvalidAccessKeyId",
                "The security token you provided is invalid.",
                "0002-00000903",
            )
            .with("OSSAccessKeyId", id));
        }
        if key.expires_at.is_some_and(|t| t <= now) {
            return Err(if key.security_token.is_some() {
                ApiError::new(
                    403,
                    "SecurityTokenExpired",
                    "The security token you provided has expired.",
                    "0002-00000904",
                )
            } else {
                ApiError::new(
                    403,
                    "InvalidAccessKeyId",
                    "The OSS Access Key Id you provided is disabled.",
                    "0002-00000905",
                )
                .with("OSSAccessKeyId", id)
            });
        }
        Ok(key)
    }

    fn check_region(&self, scope: &CredentialScope) -> Result<(), ApiError> {
        if scope.product != "oss" {
            return Err(ApiError::invalid_argument(format!(
                "Invalid signing product in the credential: {:?}; it must be \"oss\".",
                scope.product
            )));
        }
        match &self.region {
            Some(r) if *r != scope.region => Err(ApiError::invalid_argument(format!(
                "Invalid signing region in the credential: {:?}; this endpoint expects {r:?}.",
                scope.region
            ))),
            _ => Ok(()),
        }
    }

    /// Checks the request's signature, if any. `Ok` with [`AuthMethod::Anonymous`] when it
    /// carries no credentials (the caller decides whether that is allowed).
    pub fn verify(&self, req: &Incoming<'_>, now: SystemTime) -> Result<Authenticated, ApiError> {
        let authorization = req.header("authorization").filter(|v| !v.trim().is_empty());
        let v1_query = req.query("OSSAccessKeyId").is_some() || req.query("Signature").is_some();
        let v4_query = req.query("x-oss-signature-version").is_some()
            || req.query("x-oss-signature").is_some()
            || req.query("x-oss-credential").is_some();
        if !self.enabled {
            return Ok(Authenticated {
                method: if authorization.is_some() || v1_query || v4_query {
                    AuthMethod::Unchecked
                } else {
                    AuthMethod::Anonymous
                },
                access_key_id: None,
            });
        }
        let extra: Vec<String> = EXTRA_V1_SUB_RESOURCES
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(value) = authorization {
            return match parse_authorization(value) {
                Some(Authorization::V1 {
                    access_key_id,
                    signature,
                }) => self.v1_header(req, &access_key_id, &signature, &extra, now),
                Some(Authorization::V4 {
                    credential,
                    additional_headers,
                    signature,
                }) => self.v4(
                    req,
                    AuthMethod::V4Header,
                    &credential,
                    &additional_headers,
                    &signature,
                    req.header("x-oss-date"),
                    req.header("x-oss-security-token"),
                    None,
                    now,
                ),
                _ => Err(ApiError::invalid_argument(
                    "Authorization header is invalid: expected \"OSS AK:SIGNATURE\" or \"OSS4-HMAC-SHA256 Credential=...,Signature=...\".",
                )),
            };
        }
        if v4_query {
            if req.query("x-oss-signature-version") != Some(ALGORITHM_V4) {
                return Err(ApiError::invalid_argument(
                    "x-oss-signature-version must be OSS4-HMAC-SHA256.",
                ));
            }
            let credential = req
                .query("x-oss-credential")
                .and_then(CredentialScope::parse)
                .ok_or_else(|| {
                    ApiError::invalid_argument(
                        "x-oss-credential is missing or invalid: expected AK/DATE/REGION/oss/aliyun_v4_request.",
                    )
                })?;
            let signature = req.query("x-oss-signature").unwrap_or_default();
            let additional: Vec<String> = req
                .query("x-oss-additional-headers")
                .map(|v| {
                    v.split(';')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let expires: u64 = req
                .query("x-oss-expires")
                .and_then(|v| v.parse().ok())
                .filter(|v| (1..=7 * 24 * 3600).contains(v))
                .ok_or_else(|| {
                    ApiError::invalid_argument(
                        "x-oss-expires is missing or invalid: seconds, 1 to 604800.",
                    )
                })?;
            return self.v4(
                req,
                AuthMethod::V4Query,
                &credential,
                &additional,
                signature,
                req.query("x-oss-date"),
                req.query("x-oss-security-token"),
                Some(expires),
                now,
            );
        }
        if v1_query {
            return self.v1_query(req, &extra, now);
        }
        Ok(Authenticated {
            method: AuthMethod::Anonymous,
            access_key_id: None,
        })
    }

    fn v1_header(
        &self,
        req: &Incoming<'_>,
        ak: &str,
        provided: &str,
        extra: &[String],
        now: SystemTime,
    ) -> Result<Authenticated, ApiError> {
        let date = req.header("date").unwrap_or("");
        let time_header = req.header("x-oss-date").unwrap_or(date);
        let Ok(t) = httpdate::parse_http_date(time_header) else {
            return Err(ApiError::access_denied(
                "OSS authentication requires a valid Date (RFC 1123).",
            ));
        };
        if !self.within_skew(t, now) {
            return Err(skew_error(time_header, now));
        }
        let key = self.key(ak, req.header("x-oss-security-token"), now)?;
        let sr = SignableRequest::new(req.method, req.bucket, req.key)
            .query(req.query)
            .headers(req.headers)
            .sub_resources(extra);
        let sts = string_to_sign_v1(&sr, date);
        if !signatures_equal(&signature_v1(&key.secret, &sts), provided) {
            tracing::debug!(access_key_id = ak, "V1 signature mismatch");
            return Err(mismatch(&sts, provided, None));
        }
        Ok(Authenticated {
            method: AuthMethod::V1Header,
            access_key_id: Some(ak.to_string()),
        })
    }

    fn v1_query(
        &self,
        req: &Incoming<'_>,
        extra: &[String],
        now: SystemTime,
    ) -> Result<Authenticated, ApiError> {
        let (Some(ak), Some(expires), Some(provided)) = (
            req.query("OSSAccessKeyId"),
            req.query("Expires"),
            req.query("Signature"),
        ) else {
            return Err(ApiError::access_denied(
                "A presigned V1 URL needs OSSAccessKeyId, Expires and Signature.",
            ));
        };
        let Ok(exp) = expires.parse::<u64>() else {
            return Err(ApiError::access_denied(
                "Expires must be a Unix time in seconds.",
            ));
        };
        let key = self.key(ak, req.query("security-token"), now)?;
        if unix(now) > exp {
            return Err(expired_request(exp, now));
        }
        let sr = SignableRequest::new(req.method, req.bucket, req.key)
            .query(req.query)
            .headers(req.headers)
            .sub_resources(extra);
        let sts = string_to_sign_v1(&sr, expires);
        if !signatures_equal(&signature_v1(&key.secret, &sts), provided) {
            tracing::debug!(access_key_id = ak, "V1 presigned signature mismatch");
            return Err(mismatch(&sts, provided, None));
        }
        Ok(Authenticated {
            method: AuthMethod::V1Query,
            access_key_id: Some(ak.to_string()),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn v4(
        &self,
        req: &Incoming<'_>,
        method: AuthMethod,
        credential: &CredentialScope,
        additional: &[String],
        provided: &str,
        datetime: Option<&str>,
        token: Option<&str>,
        expires: Option<u64>,
        now: SystemTime,
    ) -> Result<Authenticated, ApiError> {
        self.check_region(credential)?;
        let Some((datetime, t)) = datetime.and_then(|d| Some((d, parse_v4_datetime(d)?))) else {
            return Err(ApiError::access_denied(
                "V4 signing needs x-oss-date as YYYYMMDDTHHMMSSZ.",
            ));
        };
        if datetime[..8] != credential.date {
            return Err(ApiError::access_denied(
                "The date of the credential scope differs from x-oss-date.",
            ));
        }
        let key = self.key(&credential.access_key_id, token, now)?;
        match expires {
            Some(exp) => {
                let until = unix(t) + exp;
                if unix(now) > until {
                    return Err(expired_request(until, now));
                }
            }
            None => {
                if !self.within_skew(t, now) {
                    return Err(skew_error(datetime, now));
                }
            }
        }
        let sr = SignableRequest::new(req.method, req.bucket, req.key)
            .query(req.query)
            .headers(req.headers)
            .additional_headers(additional);
        let canonical = canonical_request_v4(&sr);
        let scope = credential.scope();
        let sts = string_to_sign_v4(datetime, &scope, &canonical);
        let expected = signature_v4(
            &key.secret,
            &credential.date,
            &credential.region,
            &credential.product,
            &sts,
        );
        if !signatures_equal(&expected, provided) {
            tracing::debug!(
                access_key_id = %credential.access_key_id,
                "V4 signature mismatch"
            );
            return Err(mismatch(&sts, provided, Some(&canonical)));
        }
        Ok(Authenticated {
            method,
            access_key_id: Some(credential.access_key_id.clone()),
        })
    }
}
