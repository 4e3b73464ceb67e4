//! SOURCE URL → a backend's `RangeSource` and the object key.
//!
//! `oss://` goes to backend-oss, `http(s)://` to backend-http (presigned URLs, redirects,
//! servers without HEAD or ranges), every other scheme to backend-object-store. This module
//! only chooses and configures a backend; it never talks to a store itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use backend_http::HttpOptions;
use backend_object_store::{StoreOptions, from_url, lister_from_url};
use backend_oss::sign::SignError;
use backend_oss::{Client, Endpoint, EnvCredentials, SignatureVersion};
use resume_core::RangeSource;
use resume_core::redact::redact_url;

use crate::args::{DownloadOpts, SignatureArg};
use crate::batch::OpenedPrefix;
use crate::exit;

/// A source that cannot be opened, with the exit code it deserves.
#[derive(Debug)]
pub struct OpenError {
    pub message: String,
    pub exit_code: u8,
}

fn usage(message: String) -> OpenError {
    OpenError {
        message,
        exit_code: exit::USAGE,
    }
}

pub type Opened = (Arc<dyn RangeSource>, String);

/// Opens `url` as a prefix to download recursively (`-r`): a lister, the source that reads
/// what it lists (one store, one identity), and the prefix.
///
/// Listing is a backend concern (`resume_core::Lister`): `oss://` lists with backend-oss's
/// `OssLister` (ListObjectsV2), object_store's schemes with
/// `backend_object_store::lister_from_url`.
pub fn open_prefix(url: &str, opts: &DownloadOpts) -> Result<OpenedPrefix, OpenError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let shown = redact_url(url);
    match scheme.as_deref() {
        Some("http" | "https") => Err(usage(format!(
            "{shown}: an HTTP server cannot list its files, so -r cannot download a folder from \
             it; download each URL on its own"
        ))),
        Some("s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "adl" | "file") => {
            let (source, lister, prefix) =
                lister_from_url(url, &store_options(opts)).map_err(|e| usage(e.to_string()))?;
            Ok((Arc::new(lister), Arc::new(source), prefix))
        }
        Some("oss") => open_oss_prefix(url, opts),
        Some(other) => Err(usage(format!(
            "unsupported source scheme {other:?} in {shown:?}; use oss://, s3://, gs://, az:// \
             or file://"
        ))),
        None => Err(usage(format!(
            "source {shown:?} is not a URL; use e.g. oss://bucket/prefix/, s3://bucket/prefix/ \
             or file:///path/"
        ))),
    }
}

/// HTTP clients by origin (scheme, host, port), shared by the sources of a list's URLs
/// (`--files-from`): the URLs of one host reuse its connections.
#[derive(Debug, Default)]
pub struct HttpClients(Mutex<HashMap<String, backend_http::HttpClient>>);

impl HttpClients {
    /// The client for `url`'s origin, built with `options` the first time.
    fn for_url(
        &self,
        url: &str,
        options: &HttpOptions,
    ) -> Result<backend_http::HttpClient, OpenError> {
        // scheme://host:port, without user-info (credentials stay per source, not per client).
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let origin = format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        );
        let mut clients = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&origin) {
            return Ok(c.clone());
        }
        let client = backend_http::HttpClient::new(options).map_err(|e| usage(e.to_string()))?;
        clients.insert(origin, client.clone());
        Ok(client)
    }
}

/// Opens `url` with the command line's options.
pub fn open(url: &str, opts: &DownloadOpts) -> Result<Opened, OpenError> {
    open_sharing(url, opts, None)
}

/// [`open`]; an http(s):// URL sends through the client `clients` keeps for its origin.
pub fn open_sharing(
    url: &str,
    opts: &DownloadOpts,
    clients: Option<&HttpClients>,
) -> Result<Opened, OpenError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    // Messages show the URL redacted: it may carry a password or a signature.
    let shown = redact_url(url);
    if let (Some(v), Some(s @ ("http" | "https" | "file"))) = (&opts.version_id, scheme.as_deref())
    {
        // object_store would drop the version and serve the current content.
        return Err(usage(format!(
            "--version-id {v:?} cannot be used with a {s}:// source: {} has no object \
             versions, so the current content would be downloaded instead; drop --version-id, \
             or use the store's own scheme (oss://, s3://, gs://, az://)",
            if s == "file" {
                "a local file"
            } else {
                "an HTTP server"
            }
        )));
    }
    if let Some(scheme) = scheme.as_deref() {
        refuse_folder(scheme, url, &shown)?;
    }
    match scheme.as_deref() {
        Some("oss") => open_oss(url, opts),
        Some("http" | "https") => open_http(url, opts, clients),
        Some("s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "adl" | "file") => {
            open_object_store(url, opts)
        }
        Some(other) => Err(usage(format!(
            "unsupported source scheme {other:?} in {shown:?}; use oss://, s3://, gs://, az://, \
             http(s):// or file://"
        ))),
        None => Err(usage(format!(
            "source {shown:?} is not a URL; use e.g. oss://bucket/key, s3://bucket/key, \
             https://host/path or file:///path"
        ))),
    }
}

/// A key ending in `/` names a folder (a prefix, or the empty "folder marker" object some
/// consoles create), not an object: downloading it would write an empty file named after the
/// folder. Refused before any request. HTTP URLs are exempt: there a path ending in `/` is an
/// ordinary resource (an index page).
fn refuse_folder(scheme: &str, url: &str, shown: &str) -> Result<(), OpenError> {
    if matches!(scheme, "http" | "https") {
        return Ok(());
    }
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let (_, rest) = path.split_once("://").unwrap_or(("", path));
    // `oss://bucket/` (no key at all) is reported as such by the backend's own check.
    let key = rest.split_once('/').map_or("", |(_, key)| key);
    if path.ends_with('/') && (scheme == "file" || !key.is_empty()) {
        return Err(usage(format!(
            "{shown} ends in \"/\": it names a folder, not an object, so there is nothing to \
             download; name one object in it, or download the whole folder with -r \
             (resume-get -r SOURCE DEST_DIR)"
        )));
    }
    Ok(())
}

/// Splits `oss://bucket/key` (the key taken verbatim: OSS keys are not URL-encoded here).
pub fn split_oss_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .get(6..)
        .filter(|_| url[..6].eq_ignore_ascii_case("oss://"))
        .ok_or_else(|| format!("{:?} is not an oss:// URL", redact_url(url)))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!(
            "{:?} names no bucket; use oss://BUCKET/KEY",
            redact_url(url)
        ));
    }
    if key.is_empty() {
        return Err(format!(
            "{:?} names no object key; use oss://BUCKET/KEY",
            redact_url(url)
        ));
    }
    Ok((bucket, key))
}

fn open_oss(url: &str, opts: &DownloadOpts) -> Result<Opened, OpenError> {
    let (bucket, key) = split_oss_url(url).map_err(usage)?;
    Ok((Arc::new(oss_bucket(bucket, opts)?), key.to_owned()))
}

/// `oss://BUCKET/PREFIX` (the prefix may be empty: the whole bucket) as a lister, its bucket
/// and the prefix.
fn open_oss_prefix(url: &str, opts: &DownloadOpts) -> Result<OpenedPrefix, OpenError> {
    let rest = url.get(6..).unwrap_or("");
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(usage(format!(
            "{:?} names no bucket; use oss://BUCKET/PREFIX/",
            redact_url(url)
        )));
    }
    let bucket = oss_bucket(bucket, opts)?;
    Ok((
        Arc::new(bucket.lister()),
        Arc::new(bucket),
        prefix.to_owned(),
    ))
}

/// The bucket named, with the command line's endpoint, region, signature and credentials.
fn oss_bucket(bucket: &str, opts: &DownloadOpts) -> Result<backend_oss::Bucket, OpenError> {
    let endpoint = opts
        .endpoint
        .clone()
        .or_else(|| std::env::var("OSS_ENDPOINT").ok().filter(|s| !s.is_empty()))
        .ok_or_else(|| {
            usage(
                "no OSS endpoint: pass --endpoint (e.g. https://oss-cn-hangzhou.aliyuncs.com) \
                 or set OSS_ENDPOINT"
                    .into(),
            )
        })?;
    // Fail before any request when the credentials are not there at all.
    let env = EnvCredentials::new();
    env.load().map_err(|e| OpenError {
        message: format!(
            "{e}; OSS sources need OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET (plus \
             OSS_SESSION_TOKEN for STS credentials)"
        ),
        exit_code: exit::DENIED,
    })?;
    let mut builder = Client::builder()
        .endpoint(endpoint.clone())
        .env_credentials_from(env)
        .read_timeout(Some(opts.transfer.timeout))
        .signature_version(match opts.signature {
            SignatureArg::V1 => SignatureVersion::V1,
            SignatureArg::V4 => SignatureVersion::V4,
        });
    let region = opts
        .region
        .clone()
        .or_else(|| std::env::var("OSS_REGION").ok().filter(|s| !s.is_empty()));
    if let Some(region) = region {
        builder = builder.region(region);
    }
    let client = builder.build().map_err(|e| {
        let mut message = format!("cannot use OSS settings: {e}");
        if matches!(e, backend_oss::Error::Sign(SignError::MissingRegion))
            && is_loopback_or_ip(&endpoint)
        {
            message.push_str(LOCAL_REGION_HINT);
        }
        usage(message)
    })?;
    client
        .bucket(bucket)
        .map_err(|e| usage(format!("cannot use bucket {bucket:?}: {e}")))
}

/// Appended to "V4 needs a region" when the endpoint is loopback or an IP address: most
/// often a local OSS emulator, whose region a new user cannot guess.
const LOCAL_REGION_HINT: &str = "; this endpoint is a local or IP address: the OSS emulator \
     (`oss-emulator`) and `resume-get demo` use region cn-hangzhou, so for them pass \
     --region cn-hangzhou (or set OSS_REGION=cn-hangzhou)";

/// Whether `endpoint`'s host is `localhost` or an IP literal (v4 or v6, any address).
fn is_loopback_or_ip(endpoint: &str) -> bool {
    let Ok(endpoint) = Endpoint::parse(endpoint) else {
        return false;
    };
    let host = endpoint.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok()
}

fn open_http(
    url: &str,
    opts: &DownloadOpts,
    clients: Option<&HttpClients>,
) -> Result<Opened, OpenError> {
    let mut options = HttpOptions::new().read_timeout(Some(opts.transfer.timeout));
    for line in &opts.http.headers {
        options = options
            .header_line(line)
            .map_err(|e| usage(e.to_string()))?;
    }
    if let Some(ua) = &opts.http.user_agent {
        options = options.user_agent(ua.clone());
    }
    if let Some(ca) = &opts.http.cacert {
        options = options.ca_file(ca.clone());
    }
    if opts.http.netrc {
        let path = std::env::var_os("NETRC")
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".netrc")))
            .ok_or_else(|| usage("--netrc: neither NETRC nor HOME is set".into()))?;
        options = options.netrc_file(path);
    }
    let opened = match clients {
        Some(c) => backend_http::open_with(url, &options, &c.for_url(url, &options)?),
        None => backend_http::open(url, &options),
    };
    let (source, key) = opened.map_err(|e| usage(e.to_string()))?;
    Ok((Arc::new(source), key))
}

/// The name a key gives a file in a DEST directory (and in checksum files): its last path
/// segment; for an http(s):// source without the query, percent-decoded as wget does (when
/// that is valid UTF-8 without a `/`).
pub fn file_name(url: &str, key: &str) -> String {
    let is_http = url
        .split_once("://")
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    let path = if is_http {
        key.split('?').next().unwrap_or(key)
    } else {
        key
    };
    let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    if !is_http {
        return name.to_owned();
    }
    let decoded = percent_encoding::percent_decode_str(name).decode_utf8();
    match decoded {
        Ok(d) if !d.contains('/') && !d.contains('\0') => d.into_owned(),
        _ => name.to_owned(),
    }
}

fn open_object_store(url: &str, opts: &DownloadOpts) -> Result<Opened, OpenError> {
    let (source, key) = from_url(url, &store_options(opts)).map_err(|e| usage(e.to_string()))?;
    Ok((Arc::new(source), key))
}

/// The object_store settings the command line gives.
fn store_options(opts: &DownloadOpts) -> StoreOptions {
    let mut options = StoreOptions::new();
    if let Some(endpoint) = &opts.endpoint {
        // Without a scheme, https:// as for OSS endpoints (object_store cannot sign a request
        // to a URL without one).
        let endpoint = if endpoint.contains("://") {
            endpoint.clone()
        } else {
            format!("https://{endpoint}")
        };
        // S3-compatible servers behind a custom endpoint (MinIO, moto) want path-style.
        options = options
            .endpoint(endpoint.clone())
            .allow_http(endpoint.starts_with("http://"))
            .path_style();
    }
    if let Some(region) = &opts.region {
        options = options.region(region.clone());
    }
    options
}

/// `key` as a person knows it: a `file://` key is the path without its leading `/` (the
/// store is rooted at `/`), so messages naming the key get it back.
pub fn shown_key(url: &str, key: &str) -> String {
    if url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("file://"))
    {
        format!("/{key}")
    } else {
        key.to_owned()
    }
}

/// `msg` with every mention of `key` as a person knows it (see [`shown_key`]): for a
/// `file://` source, `tmp/x` becomes `/tmp/x` wherever it is not already preceded by `/`.
pub fn with_shown_key(msg: &str, url: &str, key: &str) -> String {
    let shown = shown_key(url, key);
    if shown == key || key.is_empty() {
        return msg.to_owned();
    }
    let mut out = String::with_capacity(msg.len() + 8);
    let mut rest = msg;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i]);
        if out.ends_with('/') {
            out.push_str(key);
        } else {
            out.push_str(&shown);
        }
        rest = &rest[i + key.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_ip_endpoints_are_recognised() {
        for local in [
            "http://127.0.0.1:9000",
            "127.0.0.1",
            "http://localhost:8080",
            "http://[::1]:9000",
            "https://10.1.2.3",
            "http://LOCALHOST",
            "http://box.localhost:1",
        ] {
            assert!(is_loopback_or_ip(local), "{local}");
        }
        for remote in [
            "https://oss-cn-hangzhou.aliyuncs.com",
            "https://minio.example.com:9000",
            "not a url at all",
        ] {
            assert!(!is_loopback_or_ip(remote), "{remote}");
        }
    }

    #[test]
    fn file_keys_are_shown_with_their_leading_slash() {
        let url = "file:///tmp/sk/obj";
        assert_eq!(shown_key(url, "tmp/sk/obj"), "/tmp/sk/obj");
        assert_eq!(
            with_shown_key(
                "cannot read metadata of tmp/sk/obj: stat of \"tmp/sk/obj\" failed: Object at \
                 location /tmp/sk/obj not found",
                url,
                "tmp/sk/obj"
            ),
            "cannot read metadata of /tmp/sk/obj: stat of \"/tmp/sk/obj\" failed: Object at \
             location /tmp/sk/obj not found"
        );
        // Other schemes keep their keys as they are.
        assert_eq!(shown_key("oss://b/k", "k"), "k");
        assert_eq!(with_shown_key("k failed", "s3://b/k", "k"), "k failed");
    }

    #[test]
    fn keys_ending_in_a_slash_are_folders_not_objects() {
        for folder in [
            "oss://b/data/",
            "oss://b//",
            "s3://b/a/b/",
            "gs://b/x/",
            "az://c/dir/",
            "file:///tmp/dir/",
            "file:///",
        ] {
            let scheme = folder.split_once("://").unwrap().0;
            let e = refuse_folder(scheme, folder, folder).unwrap_err();
            assert_eq!(e.exit_code, exit::USAGE, "{folder}");
            assert!(
                e.message.contains("names a folder, not an object"),
                "{folder}"
            );
        }
        for object in [
            "oss://b/data",
            "oss://b/",
            "s3://b/a/b",
            "https://example.com/dir/",
            "http://127.0.0.1:8/",
            "file:///tmp/x",
        ] {
            let scheme = object.split_once("://").unwrap().0;
            assert!(refuse_folder(scheme, object, object).is_ok(), "{object}");
        }
    }

    #[test]
    fn http_file_names_leave_out_the_query_and_are_decoded() {
        assert_eq!(
            file_name("https://h/d/a%20b.iso?X-Amz-Signature=s", "d/a%20b.iso?v=1"),
            "a b.iso"
        );
        assert_eq!(file_name("http://h/d/", "d/"), "d");
        assert_eq!(file_name("http://h/x%2Fy", "x%2Fy"), "x%2Fy");
        // Other schemes keep their keys as they are, `?` and `%` included.
        assert_eq!(file_name("s3://b/k?x%20", "k?x%20"), "k?x%20");
    }

    #[test]
    fn oss_urls_split_into_bucket_and_verbatim_key() {
        assert_eq!(
            split_oss_url("oss://b/abc/efg/123.jpg"),
            Ok(("b", "abc/efg/123.jpg"))
        );
        assert_eq!(
            split_oss_url("OSS://b/a b+c%20.txt"),
            Ok(("b", "a b+c%20.txt"))
        );
        assert!(
            split_oss_url("oss://b")
                .unwrap_err()
                .contains("no object key")
        );
        assert!(
            split_oss_url("oss://b/")
                .unwrap_err()
                .contains("no object key")
        );
        assert!(split_oss_url("oss:///k").unwrap_err().contains("no bucket"));
        assert!(split_oss_url("s3://b/k").is_err());
    }
}
