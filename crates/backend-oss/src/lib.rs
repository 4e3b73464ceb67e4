#![forbid(unsafe_code)]
//! Alibaba Cloud OSS backend: a [`Client`] that reads objects over HTTP(S) and a [`Bucket`]
//! that implements [`resume_core::RangeSource`], plus the seed's `download_file` call shape.
//!
//! - [`client`]: [`Client`] / [`ClientBuilder`] (endpoint, region, addressing style,
//!   credentials, signature version, timeouts), [`Bucket`] and its [`ReadOptions`] (version id,
//!   requester pays, traffic limit, extra headers), [`ObjectInfo`].
//! - `reader` (private): HEAD and ranged GET, mapped onto the engine's contract.
//! - `core` (private): request building, signing (fresh on every request) and sending over
//!   one pooled HTTP/1.1 `reqwest` client (rustls, no decompression, no retries of its own).
//! - [`download`]: `bucket.download_file(key, path, part_size, &[options])` on top of
//!   [`resume_core::Downloader`].
//! - [`config`]: endpoints (virtual-hosted, path style, CNAME), region, URL building.
//! - [`credentials`]: AccessKey / STS credentials, providers (static, environment, caching).
//! - [`sign`]: V1 and V4 signatures, header and presigned-query forms, plus the building
//!   blocks a verifying server recomputes.
//! - [`error`]: OSS error documents and their mapping onto [`resume_core::SourceErrorKind`].
//! - [`encode`]: OSS's percent-encoding rules.
//!
//! Secrets (AccessKey secret, STS token) never appear in `Debug` output or error messages.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use backend_oss::{Credentials, Endpoint, SignableRequest, SignatureVersion, Signer};
//!
//! let endpoint = Endpoint::parse("https://oss-cn-hangzhou.aliyuncs.com")?;
//! assert_eq!(
//!     endpoint.object_url("my-bucket", "abc/efg/123 4.jpg")?,
//!     "https://my-bucket.oss-cn-hangzhou.aliyuncs.com/abc/efg/123%204.jpg"
//! );
//!
//! let signer = Signer::for_endpoint(SignatureVersion::V4, &endpoint)?;
//! let creds = Credentials::new("ak", "sk");
//! let headers = vec![("Range".to_string(), "bytes=0-99".to_string())];
//! let req = SignableRequest::new("GET", Some("my-bucket"), Some("abc/efg/123 4.jpg"))
//!     .headers(&headers);
//! let time = UNIX_EPOCH + Duration::from_secs(1_702_743_657);
//! let signed = signer.sign_headers(&creds, &req, time)?;
//! assert!(signed
//!     .authorization()
//!     .starts_with("OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature="));
//! assert_eq!(signed.get("x-oss-date"), Some("20231216T162057Z"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod client;
pub mod config;
mod core;
pub mod credentials;
pub mod download;
pub mod encode;
pub mod error;
pub mod list;
mod reader;
pub mod sign;

pub use client::{
    Bucket, Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_CREDENTIALS_HEADROOM,
    DEFAULT_READ_TIMEOUT, Error, ObjectInfo, ReadOptions, TRAFFIC_LIMIT_MAX, TRAFFIC_LIMIT_MIN,
    transport_read_timeout,
};
pub use download::{DownloadOption, ProgressListener};
pub use list::OssLister;
pub use reader::parse_content_range;

pub use config::{AddressingStyle, ConfigError, Endpoint, Scheme};
pub use credentials::{
    CachingProvider, Credentials, CredentialsError, CredentialsProvider, EnvCredentials,
    StaticCredentials,
};
pub use error::{ErrorBody, error_kind, source_error};
pub use sign::{
    Authorization, PresignedQuery, SignError, SignableRequest, SignatureVersion, SignedHeaders,
    Signer,
};
