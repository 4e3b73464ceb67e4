//! Errors of the library API ([`EmulatorError`]) and OSS error answers ([`ApiError`]).

use std::borrow::Cow;
use std::path::PathBuf;

/// What went wrong starting or driving the emulator, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}; pick another address or port 0")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the emulator listens on loopback only, not {0}; use 127.0.0.1 (or ::1) with any port")]
    NotLoopback(std::net::SocketAddr),
    #[error("cannot start the emulator's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot {what} at {}: {source}; check the directory given as storage root", path.display())]
    Storage {
        path: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error(
        "metadata file {} is corrupt ({message}); remove it (and its .data file) or use a fresh storage root",
        path.display()
    )]
    CorruptMetadata { path: PathBuf, message: String },
    #[error("reading the object's data failed: {0}")]
    Read(std::io::Error),
    #[error(
        "invalid bucket name {0:?}: use 3-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
    )]
    InvalidBucketName(String),
    #[error("invalid object key {0:?}: use 1-1023 bytes, not starting with '/' or '\\'")]
    InvalidKey(String),
    #[error("bucket {0:?} does not exist; create it first (Emulator::create_bucket)")]
    NoSuchBucket(String),
    #[error("bucket {0:?} exists already")]
    BucketExists(String),
    #[error("object {0:?} does not exist (or its current version is a delete marker)")]
    NoSuchKey(String),
    #[error("version {version:?} of object {key:?} does not exist")]
    NoSuchVersion { key: String, version: String },
    #[error("fault plan {}: {message}; see the crate docs for the format", path.display())]
    FaultPlan { path: PathBuf, message: String },
    #[error("invalid access key {0:?}: use ID:SECRET with a non-empty ID and secret")]
    InvalidAccessKey(String),
}

/// An OSS error answer: status, `Code`, `Message`, `EC`, and extra XML fields.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: Cow<'static, str>,
    pub message: String,
    pub ec: &'static str,
    /// Extra `<Name>value</Name>` fields (`Key`, `StringToSign`, `Condition`, ...).
    pub extra: Vec<(&'static str, String)>,
    /// Extra response headers.
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(
        status: u16,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        ec: &'static str,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            ec,
            extra: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn no_such_bucket(bucket: &str) -> Self {
        Self::new(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist.",
            "0015-00000101",
        )
        .with("BucketName", bucket)
    }

    pub fn no_such_key(key: &str) -> Self {
        Self::new(
            404,
            "NoSuchKey",
            "The specified key does not exist.",
            "0026-00000001",
        )
        .with("Key", key)
    }

    pub fn no_such_version(key: &str, version: &str) -> Self {
        Self::new(
            404,
            "NoSuchVersion",
            "The specified version does not exist.",
            "0026-00000002",
        )
        .with("Key", key)
        .with("VersionId", version)
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(403, "AccessDenied", message, "0003-00000001")
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidArgument", message, "0016-00000001")
    }

    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            501,
            "NotImplemented",
            format!("{what} is not implemented by the OSS emulator."),
            "0000-00000001",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message, "0000-00000002")
    }

    /// The XML body, with `request_id` and `host_id`.
    pub fn to_xml(&self, request_id: &str, host_id: &str) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n");
        push_field(&mut s, "Code", &self.code);
        push_field(&mut s, "Message", &self.message);
        push_field(&mut s, "RequestId", request_id);
        push_field(&mut s, "HostId", host_id);
        for (k, v) in &self.extra {
            push_field(&mut s, k, v);
        }
        push_field(&mut s, "EC", self.ec);
        push_field(
            &mut s,
            "RecommendDoc",
            &format!("https://api.aliyun.com/troubleshoot?q={}", self.ec),
        );
        s.push_str("</Error>\n");
        s
    }
}

fn push_field(s: &mut String, name: &str, value: &str) {
    s.push_str("  <");
    s.push_str(name);
    s.push('>');
    s.push_str(&xml_escape(value));
    s.push_str("</");
    s.push_str(name);
    s.push_str(">\n");
}

/// Escapes text for an XML element.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_xml_parses_with_backend_oss() {
        let e = ApiError::no_such_key("a<b&c");
        let xml = e.to_xml("REQ1", "bkt.localhost");
        let body = backend_oss::ErrorBody::parse(xml.as_bytes());
        assert_eq!(body.code.as_deref(), Some("NoSuchKey"));
        assert_eq!(body.request_id.as_deref(), Some("REQ1"));
        assert_eq!(body.host_id.as_deref(), Some("bkt.localhost"));
        assert_eq!(body.ec.as_deref(), Some("0026-00000001"));
        assert!(xml.contains("<Key>a&lt;b&amp;c</Key>"));
    }
}
