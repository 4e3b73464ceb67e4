//! What a user gives: the SOURCE URL (taken verbatim) and the options curl and wget users
//! expect (`--header`, `--user-agent`, `--cacert`, basic auth from the URL or `~/.netrc`).
//!
//! The URL is split here into what is sent (the URL without its user-info, query string and
//! percent-encoding exactly as given), what authenticates (user-info or a `.netrc` entry,
//! sent as basic auth to the URL's own origin only), what names the object for checkpoints
//! (the path plus the query *without* its signing parameters, so a freshly signed URL of the
//! same object resumes the same download) and, for presigned URLs, when the signature
//! expires.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use resume_core::redact::{percent_decode_lossy, redact_url, unsigned_query};
use url::Url;

use crate::error::BuildError;

/// Default time allowed to establish a connection (TCP + TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest wait for the next bytes of an answer (not a whole-request timeout).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many redirects are followed for one request (as curl's and browsers' limits).
pub const MAX_REDIRECTS: usize = 10;

/// Header names the backend sets itself; `--header` may not replace them.
const RESERVED_HEADERS: &[&str] = &[
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
    "te",
    "upgrade",
];

/// Headers that authenticate: sent only to the origin of the URL the user gave, never to
/// another host a redirect leads to.
pub(crate) const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// Options for an HTTP(S) source. `Debug` never shows header values or passwords.
#[derive(Clone)]
pub struct HttpOptions {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) user_agent: String,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) netrc: Option<PathBuf>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Option<Duration>,
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are not shown: `Authorization` and `Cookie` are credentials.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpOptions")
            .field("headers", &names)
            .field("user_agent", &self.user_agent)
            .field("ca_file", &self.ca_file)
            .field("netrc", &self.netrc)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            headers: Vec::new(),
            user_agent: concat!("resume-get/", env!("CARGO_PKG_VERSION")).into(),
            ca_file: None,
            netrc: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
        }
    }
}

impl HttpOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// One more request header, from `K: V` as curl's `-H` takes it. Headers the backend sets
    /// itself (`Range`, `If-Match`, `Accept-Encoding`, `Host`, …) are refused.
    pub fn header_line(self, line: &str) -> Result<Self, BuildError> {
        let Some((name, value)) = line.split_once(':') else {
            return Err(BuildError::new(format!(
                "--header {:?} is not `Name: value`; write e.g. --header 'X-Api-Version: 2'",
                line.split(':').next().unwrap_or_default()
            )));
        };
        self.header(name.trim(), value.trim())
    }

    /// One more request header.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, BuildError> {
        if name.is_empty() || reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(BuildError::new(format!(
                "{name:?} is not a valid HTTP header name; use letters, digits and '-'"
            )));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(BuildError::new(format!(
                "header {name} is set by resume-get itself (it pins the download to one version \
                 and requests parts); drop it from --header"
            )));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            // The value is not echoed: it may be a token.
            return Err(BuildError::new(format!(
                "the value of header {name} is not valid in HTTP (visible ASCII only)"
            )));
        }
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// The `User-Agent` sent (default `resume-get/VERSION`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Trust only the certificates in this PEM file (as curl's `--cacert`): for servers with
    /// a private or self-signed certificate authority.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Take basic-auth credentials for the URL's host from this `.netrc` file when the URL
    /// has none.
    pub fn netrc_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.netrc = Some(path.into());
        self
    }

    /// Time allowed to establish a connection. Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The engine's idle timeout: the transport's own read timeout is set a little longer,
    /// so the engine's fires first. `None`: no transport read timeout.
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }
}

/// A user name and password, for basic auth. `Debug` shows the user only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BasicAuth {
    pub(crate) user: String,
    pub(crate) password: Option<String>,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The SOURCE URL, taken apart.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// What is requested: the URL without user-info, otherwise as given.
    pub(crate) url: Url,
    /// Basic auth from the URL's user-info.
    pub(crate) auth: Option<BasicAuth>,
    /// The object's key: path without its leading `/`, plus `?` and the query without its
    /// signing parameters when any remain. Percent-encoding as given.
    pub(crate) key: String,
    /// When the URL's signature expires, if it is a presigned URL that says so.
    pub(crate) expires: Option<SystemTime>,
}

impl Target {
    pub(crate) fn parse(raw: &str) -> Result<Self, BuildError> {
        let shown = redact_url(raw);
        let mut url = Url::parse(raw)
            .map_err(|e| BuildError::new(format!("{shown} is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BuildError::new(format!(
                "{shown} is not an http:// or https:// URL"
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(BuildError::new(format!("{shown} names no host")));
        }
        let auth = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let user = percent_decode_lossy(url.username());
            let password = url.password().map(percent_decode_lossy);
            // Cannot fail for http(s) URLs with a host.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            Some(BasicAuth { user, password })
        };
        url.set_fragment(None);
        let key = key_of(&url);
        let expires = url.query().and_then(expiry);
        Ok(Self {
            url,
            auth,
            key,
            expires,
        })
    }
}

/// The key naming `url`'s object: path without the leading `/`, plus the unsigned query.
pub(crate) fn key_of(url: &Url) -> String {
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    match url.query().map(unsigned_query) {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

/// When a presigned URL's signature expires, from its query: OSS V1 and S3 SigV2 `Expires`
/// (Unix time), OSS V4 `x-oss-date` + `x-oss-expires`, S3 `X-Amz-Date` + `X-Amz-Expires`,
/// GCS `X-Goog-Date` + `X-Goog-Expires` (basic ISO 8601 + seconds), Azure SAS `se`
/// (extended ISO 8601).
pub(crate) fn expiry(query: &str) -> Option<SystemTime> {
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                percent_decode_lossy(k).to_ascii_lowercase(),
                percent_decode_lossy(v),
            )
        })
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    for prefix in ["x-oss-", "x-amz-", "x-goog-"] {
        if let (Some(date), Some(secs)) = (
            get(&format!("{prefix}date")),
            get(&format!("{prefix}expires")),
        ) {
            let start = parse_iso8601(date)?;
            return start.checked_add(Duration::from_secs(secs.trim().parse().ok()?));
        }
    }
    if let Some(se) = get("se")
        && get("sig").is_some()
    {
        return parse_iso8601(se);
    }
    let secs: u64 = get("expires")?.trim().parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// `20240101T000000Z`, `2024-01-01T00:00:00Z`, `2024-01-01T00:00Z` or `2024-01-01` (UTC).
pub(crate) fn parse_iso8601(s: &str) -> Option<SystemTime> {
    let digits: String = s
        .trim()
        .trim_end_matches('Z')
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    if !s.trim().is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| digits.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = match digits.len() {
        8 => (0, 0, 0),
        12 => (num(8..10)?, num(10..12)?, 0),
        14 => (num(8..10)?, num(10..12)?, num(12..14)?),
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as i64, d as i64);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + sec;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The credentials for `host` in a `.netrc` file (`machine HOST login USER password PW`, or a
/// `default` entry), as curl and wget read it. A missing file is an error naming it.
pub(crate) fn netrc_lookup(path: &Path, host: &str) -> Result<Option<BasicAuth>, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        BuildError::new(format!(
            "cannot read the netrc file {}: {e}; create it or drop --netrc",
            path.display()
        ))
    })?;
    Ok(parse_netrc(&text, host))
}

fn parse_netrc(text: &str, host: &str) -> Option<BasicAuth> {
    let mut tokens = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace);
    let mut found: Option<BasicAuth> = None;
    let mut default: Option<BasicAuth> = None;
    // Which entry the `login` / `password` tokens belong to: this host's, `default`, or other.
    #[derive(PartialEq)]
    enum Entry {
        Ours,
        Default,
        Other,
    }
    let mut current = Entry::Other;
    while let Some(tok) = tokens.next() {
        match tok {
            "machine" => {
                current = match tokens.next() {
                    Some(m) if m.eq_ignore_ascii_case(host) && found.is_none() => Entry::Ours,
                    _ => Entry::Other,
                };
                if current == Entry::Ours {
                    found = Some(BasicAuth {
                        user: String::new(),
                        password: None,
                    });
                }
            }
            "default" => {
                current = Entry::Default;
                default = Some(BasicAuth {
                    user: String::new(),
                    password: None,
                });
            }
            "login" | "password" | "account" => {
                let value = tokens.next().unwrap_or_default().to_owned();
                let entry = match current {
                    Entry::Ours => found.as_mut(),
                    Entry::Default => default.as_mut(),
                    Entry::Other => None,
                };
                if let Some(e) = entry {
                    match tok {
                        "login" => e.user = value,
                        "password" => e.password = Some(value),
                        _ => {}
                    }
                }
            }
            // A macro runs to the next blank line; nothing in it is an entry.
            "macdef" => current = Entry::Other,
            _ => {}
        }
    }
    found.or(default).filter(|a| !a.user.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_kept_verbatim_and_keys_leave_out_signatures() {
        let t = Target::parse(
            "https://alice:p%40ss@b.oss-cn-hangzhou.aliyuncs.com/dir/a%20b+c.bin?\
             OSSAccessKeyId=AK&Expires=1700000000&Signature=ab%2Bc%2F%3D&x=%7E1#frag",
        )
        .unwrap();
        assert_eq!(
            t.url.as_str(),
            "https://b.oss-cn-hangzhou.aliyuncs.com/dir/a%20b+c.bin?\
             OSSAccessKeyId=AK&Expires=1700000000&Signature=ab%2Bc%2F%3D&x=%7E1"
        );
        assert_eq!(t.key, "dir/a%20b+c.bin?x=%7E1");
        assert_eq!(
            t.auth,
            Some(BasicAuth {
                user: "alice".into(),
                password: Some("p@ss".into())
            })
        );
        assert_eq!(
            t.expires,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        let plain = Target::parse("http://127.0.0.1:8080/f.iso").unwrap();
        assert_eq!((plain.key.as_str(), plain.expires), ("f.iso", None));
        assert!(Target::parse("ftp://h/x").is_err());
        let e = Target::parse("http://u:SECRETPW@[::1/x").unwrap_err();
        assert!(!e.to_string().contains("SECRETPW"), "{e}");
    }

    #[test]
    fn expiries_of_every_presigned_form() {
        let t = |q: &str| expiry(q).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        // 2024-01-01T00:00:00Z = 1704067200
        assert_eq!(
            t("x-oss-date=20240101T000000Z&x-oss-expires=60&x-oss-signature=s"),
            Some(1_704_067_260)
        );
        assert_eq!(
            t("X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-Signature=s"),
            Some(1_704_070_800)
        );
        assert_eq!(
            t("X-Goog-Date=20240101T000000Z&X-Goog-Expires=1"),
            Some(1_704_067_201)
        );
        assert_eq!(
            t("sv=2022-11-02&se=2024-01-01T00%3A00%3A00Z&sig=x"),
            Some(1_704_067_200)
        );
        assert_eq!(t("se=2024-01-01&sig=x"), Some(1_704_067_200));
        assert_eq!(t("Expires=1700000000&Signature=s"), Some(1_700_000_000));
        assert_eq!(t("se=2024-01-01"), None, "no SAS without sig");
        assert_eq!(t("a=b"), None);
        assert_eq!(parse_iso8601("2024-02-30T25:00:00Z"), None);
        assert_eq!(
            parse_iso8601("2000-03-01T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(951_868_800))
        );
    }

    #[test]
    fn netrc_entries_for_the_host_then_default() {
        let text = "# comment\nmachine other.example login o password op\n\
                    machine H.example.com\n  login alice\n  password s3cret\n\
                    default login anon password guest\n";
        assert_eq!(
            parse_netrc(text, "h.example.com"),
            Some(BasicAuth {
                user: "alice".into(),
                password: Some("s3cret".into())
            })
        );
        assert_eq!(
            parse_netrc(text, "x.example"),
            Some(BasicAuth {
                user: "anon".into(),
                password: Some("guest".into())
            })
        );
        assert_eq!(parse_netrc("machine a login u", "b"), None);
    }

    #[test]
    fn headers_the_backend_sets_are_refused_and_values_never_echoed() {
        let o = HttpOptions::new()
            .header_line("X-Api-Version: 2")
            .unwrap()
            .header_line("Authorization: Bearer TOKEN-abc")
            .unwrap();
        assert!(!format!("{o:?}").contains("TOKEN-abc"));
        for bad in [
            "Range: bytes=0-1",
            "if-match: x",
            "Accept-Encoding: gzip",
            "nocolon",
        ] {
            assert!(HttpOptions::new().header_line(bad).is_err(), "{bad}");
        }
        let e = HttpOptions::new()
            .header("X-Token", "bad\nTOKEN-xyz")
            .unwrap_err();
        assert!(!e.to_string().contains("TOKEN-xyz"), "{e}");
    }
}
